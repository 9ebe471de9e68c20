"""The REST's pool of confirmed publishers: a bounded wait for a free connection."""

import time

import pytest

from imagescan.broker import BrokerUnavailable
from imagescan.config import Settings
from imagescan.publishers import PublisherPool


def test_an_upload_waits_a_bounded_time_when_every_connection_is_held():
    pool = PublisherPool(Settings(network_timeout=0.3), size=1)
    held = pool._idle.get()  # a stalled upload holds the only connection
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="busy"):
        pool.publish("analyze", sha256="0" * 64)
    assert time.monotonic() - started < 2
    pool._idle.put(held)
    assert pool.first is held
