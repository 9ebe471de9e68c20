"""API keys (`x-api-key` header), in one of two modes chosen by the AUTH setting.

`AUTH=seed` (the default, the seed APIs' behaviour): only the image-service routes and the
erasure route take a key, one of the API_KEY values, and every other route is open.
`AUTH=keys`: every route but PUBLIC_PATHS takes a scoped key (imagescan.apikeys); the scope a
route needs is SCOPE_OVERRIDES[endpoint], else by method (GET: read, POST/PUT: upload,
DELETE: admin). A key lacking the scope gets 403 naming it (`required_scope`).

In both modes:
- Seed mode, no key configured (API_KEY empty): the protected routes answer 503, because the service is
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
from flask import Flask, g, request

from imagescan import apikeys, keys

from .errors import ApiError, unavailable
from .services import current

HEADER = "x-api-key"
MAX_FAILURES = 20
FAILURE_WINDOW_SECONDS = 60
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# The web console's pages and files hold no data (a browser cannot send a header when it opens
# a page); what they show comes from API calls, which carry the key.
PUBLIC_BLUEPRINTS = frozenset({"console"})
SCOPES_BY_METHOD = {"GET": ("read",), "HEAD": ("read",), "POST": ("upload",), "PUT": ("upload",),
                    "PATCH": ("upload",), "DELETE": ("admin",)}
SCOPE_OVERRIDES = {
    "faces.match": ("faces",),
    "jobs.job_output": ("read", "faces"),  # the output has the face boxes drawn on it
}


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
    """A route that takes a key in seed mode too (with AUTH=keys, every route is checked anyway)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current().settings.auth == "seed":
            check_api_key()
            g.caller = f"API_KEY holder at {_client()}"
        return view(*args, **kwargs)

    return wrapper


def required_scopes(endpoint: str | None, method: str) -> tuple[str, ...]:
    return SCOPE_OVERRIDES.get(endpoint or "", SCOPES_BY_METHOD.get(method, ("admin",)))


def check_scoped_key(needed: tuple[str, ...]) -> apikeys.ApiKey:
    """The caller's key when it is live and has every needed scope; else the ApiError answering it."""
    client_redis, client = current().redis, _client()
    try:
        _check_not_locked_out(client_redis, client)
        given = request.headers.get(HEADER)
        if given is None:
            raise ApiError(403, f"missing {HEADER} header: this service needs an API key "
                                f"with the {'+'.join(needed)} scope", required_scope=",".join(needed))
        key = apikeys.lookup(client_redis, given)
        if key is None:
            _count_failure(client_redis, client)
            raise ApiError(401, f"invalid {HEADER}")
    except redis.RedisError:
        raise unavailable("storage") from None
    missing = [scope for scope in needed if scope not in key.scopes]
    if missing:
        raise ApiError(403, f"this API key lacks the {'+'.join(missing)} scope this route needs",
                       required_scope=",".join(needed))
    return key


def caller_has_scope(scope: str) -> bool:
    """Seed mode: every caller (the routes are open); keys mode: the caller's key has the scope."""
    if current().settings.auth == "seed":
        return True
    key = g.get("api_key")
    return key is not None and scope in key.scopes


def who() -> str:
    """The caller, as the audit log names it: a key id or the API_KEY holder, and the address."""
    return g.get("caller") or f"anonymous at {_client()}"


def install_access_control(app: Flask) -> None:
    @app.before_request
    def _check_key():
        if current().settings.auth != "keys" or request.method == "OPTIONS":
            return
        if (request.path in PUBLIC_PATHS or request.blueprint in PUBLIC_BLUEPRINTS
                or request.routing_exception is not None):
            return  # health probes and metrics scrapers carry no key; unknown routes are 404 anyway
        key = check_scoped_key(required_scopes(request.endpoint, request.method))
        g.api_key = key
        g.caller = f"key {key.key_id} ({key.label or 'no label'}) at {_client()}"
