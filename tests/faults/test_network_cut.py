"""A silent network cut to RabbitMQ (packets dropped, no reset): the REST answers 503 in bounded time.

Needs root for iptables; the rules match only this test's broker port and are removed after.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.faults.conftest import assert_none_lost, refused_while_down, upload
from tests.imagefactory import jpeg

pytestmark = [pytest.mark.faults, pytest.mark.netns]


def _iptables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, timeout=30,
                          check=False)


@pytest.fixture
def drop_port():
    """drop_port(port): drop every packet to and from a local TCP port until the test ends."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        pytest.skip("needs root and iptables")
    if _iptables("-L", "OUTPUT", "-n").returncode != 0:
        pytest.skip("iptables is not usable here (no NET_ADMIN)")
    rules: list[tuple[str, ...]] = []

    def drop(port: int) -> None:
        for rule in (("OUTPUT", "-o", "lo", "-p", "tcp", "--dport", str(port), "-j", "DROP"),
                     ("OUTPUT", "-o", "lo", "-p", "tcp", "--sport", str(port), "-j", "DROP")):
            assert _iptables("-I", *rule).returncode == 0
            rules.append(rule)

    def restore() -> None:
        while rules:
            _iptables("-D", *rules.pop())

    drop.restore = restore
    yield drop
    restore()


def test_publish_to_a_silently_cut_broker_fails_fast_and_recovers(stack, drop_port, record_property):
    stack = stack()
    client = stack.client
    accepted = [upload(client, jpeg(seed=80), "before-cut.jpg")]  # the publisher is connected now

    drop_port(stack.rabbit.port)
    took = refused_while_down(client, jpeg(seed=81), "during-cut.jpg", within=60)
    print(f"network cut: upload answered 503 after {took:.1f}s")

    drop_port.restore()
    accepted.append(upload(client, jpeg(seed=82), "after-cut.jpg"))
    stack.start_worker()
    assert_none_lost(record_property, "network cut", client, accepted)
