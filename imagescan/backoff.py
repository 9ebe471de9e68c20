"""Waiting out an unavailable dependency: one back-off policy, from tenacity, for every retry.

Each pause doubles from `first` up to `most` seconds. Redis calls in the worker, the worker's
broker connection, the logs service, the log-bus thread and the worker's supervisor all wait
this way; only the numbers differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_never, wait_exponential


def pause(attempt: int, *, first: float, most: float) -> float:
    """Seconds to wait after the `attempt`-th failure in a row (1: the first)."""
    return wait_exponential(multiplier=first, max=most)(SimpleNamespace(attempt_number=attempt))


def policy(errors, *, first: float, most: float, stop: Callable[[], bool] | None = None,
           sleep: Callable[[float], object] = time.sleep,
           before_sleep: Callable[[RetryCallState], None] | None = None, **options) -> Retrying:
    """Retry while `errors` are raised, until `stop()` is true (then tenacity's RetryError)."""
    return Retrying(
        retry=retry_if_exception_type(errors),
        wait=wait_exponential(multiplier=first, max=most),
        stop=stop_never if stop is None else (lambda _state: stop()),
        sleep=sleep,
        before_sleep=before_sleep,
        **options,
    )
