"""The logs service's metric: messages printed, by the service and level words of their routing key.

The first word of a routing key is the publishing host (a pod name): left out of the labels,
since pods come and go and each would add series for ever.
"""

from __future__ import annotations

import re

from prometheus_client import Counter

from imagescan import topology

MESSAGES = Counter("imagescan_logs_messages", "Log messages printed, by the service and level in their routing key",
                   ["service", "level"])
_SERVICE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def count_message(routing_key: str) -> None:
    words = routing_key.rsplit(".", 2)
    service, level = (words[1], words[2]) if len(words) == 3 else ("other", "other")
    MESSAGES.labels(service if _SERVICE.match(service) else "other",
                    level if level in topology.LOG_LEVELS else "other").inc()
