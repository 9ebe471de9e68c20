"""API keys for the image-service routes (`x-api-key` header).

- No key configured (API_KEY empty): the protected routes answer 503, because the service is
  not set up to serve them; nothing a client sends can change that.
- Header missing: 403. Header present but wrong: 401.
- A client (by IP address as the app sees it) that sent MAX_FAILURES wrong keys within
  FAILURE_WINDOW_SECONDS gets 429 with Retry-After until the window ends, even with a right key,
  so keys cannot be guessed quickly.
The given key is compared with every configured key in constant time (hmac.compare_digest).
"""

from __future__ import annotations

import functools
import hmac

import redis
from flask import request

from imagescan import keys

from .errors import ApiError, unavailable
from .services import current

HEADER = "x-api-key"
MAX_FAILURES = 20
FAILURE_WINDOW_SECONDS = 60


def key_matches(given: str, configured: tuple[str, ...]) -> bool:
    given_bytes = given.encode("utf-8", "surrogatepass")
    matched = False
    for key in configured:  # no early exit: the time taken does not tell which key matched
        matched |= hmac.compare_digest(given_bytes, key.encode("utf-8", "surrogatepass"))
    return matched


def _client() -> str:
    return request.remote_addr or "unknown"


def _check_not_locked_out(client_redis: redis.Redis, client: str) -> None:
    key = keys.auth_failures(client)
    failures = client_redis.get(key)
    if failures is not None and int(failures) >= MAX_FAILURES:
        ttl = client_redis.ttl(key)
        retry_after = ttl if ttl and ttl > 0 else FAILURE_WINDOW_SECONDS
        raise ApiError(429, "too many wrong API keys from this address; retry later",
                       headers={"Retry-After": str(retry_after)})


def _count_failure(client_redis: redis.Redis, client: str) -> None:
    key = keys.auth_failures(client)
    pipe = client_redis.pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, FAILURE_WINDOW_SECONDS, nx=True)  # the window starts at the first failure
    pipe.execute()


def check_api_key() -> None:
    """Raise the ApiError that answers a request without a valid key; return if it has one."""
    configured = current().settings.api_keys
    if not configured:
        raise ApiError(503, "no API key is configured on the server (set API_KEY); "
                            "the image-service routes are disabled")
    client_redis = current().redis
    client = _client()
    try:
        _check_not_locked_out(client_redis, client)
        given = request.headers.get(HEADER)
        if given is None:
            raise ApiError(403, f"missing {HEADER} header")
        if not key_matches(given, configured):
            _count_failure(client_redis, client)
            raise ApiError(401, f"invalid {HEADER}")
    except redis.RedisError:
        raise unavailable("storage") from None


def require_api_key(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        check_api_key()
        return view(*args, **kwargs)

    return wrapper
