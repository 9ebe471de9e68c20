"""The one back-off policy: pauses double up to a ceiling, and a stop request ends the waiting."""

from __future__ import annotations

import pytest
from tenacity import RetryError

from imagescan import backoff


def test_pauses_double_up_to_the_ceiling():
    assert [backoff.pause(n, first=0.5, most=10) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_retries_the_named_errors_with_growing_pauses_then_returns():
    slept, calls = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionError("away")
        return "done"

    retrying = backoff.policy(ConnectionError, first=0.2, most=0.5, sleep=slept.append)
    assert retrying(flaky) == "done"
    assert slept == [0.2, 0.4, 0.5]


def test_other_errors_are_not_retried():
    retrying = backoff.policy(ConnectionError, first=0.2, most=5, sleep=pytest.fail)
    with pytest.raises(KeyError):
        retrying(lambda: {}["missing"])


def test_a_stop_request_ends_the_waiting():
    stopping = []

    def away():
        stopping.append(1)
        raise ConnectionError("away")

    retrying = backoff.policy(ConnectionError, first=0.2, most=5, stop=lambda: len(stopping) >= 2,
                              sleep=lambda _: None)
    with pytest.raises(RetryError) as error:
        retrying(away)
    assert isinstance(error.value.last_attempt.exception(), ConnectionError) and len(stopping) == 2
