"""The one place that makes a Redis client: one Redis, a Sentinel-watched master, or a Cluster.

Every service, command and test gets its client from :func:`connect_redis`; what the client is
follows the settings:

* ``REDIS_URL=redis+cluster://[:password@]host:port[,host:port...]`` or ``REDIS_CLUSTER=1``
  (then ``REDIS_HOST:REDIS_PORT`` is the node asked first): a ``redis.cluster.RedisCluster``,
  which learns the slot map from any node and follows MOVED/ASK redirections and failovers;
* ``REDIS_SENTINELS``: the master the Sentinels name, followed across failovers;
* otherwise ``REDIS_URL`` (``redis://`` or ``rediss://``) or ``REDIS_HOST``/``REDIS_PORT``.

The code above this module does not care which: every script and transaction touches keys of
one hash slot (see :mod:`imagescan.keys`), which one Redis accepts as well as a cluster.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import redis
import redis.cluster
import redis.exceptions
import redis.sentinel

from .config import ConfigError, Settings

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")

# What "Redis is unreachable for now" looks like, also while a cluster fails over: callers
# retry these with back-off (a cluster answers CLUSTERDOWN/TRYAGAIN until a replica took over).
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterDownError,
              redis.exceptions.TryAgainError)


def reply_text(value) -> str:
    """A Redis reply as text: bytes decoded, a missing value (None) as ''."""
    return value.decode() if isinstance(value, bytes) else (value or "")


def is_cluster(client) -> bool:
    """True for a Redis Cluster client (or one of its pipelines)."""
    return isinstance(client, redis.cluster.RedisCluster)


def run_script(client, script: str, keys: list[str], args: list) -> object:
    """EVAL a Lua script on a client or a pipeline of either kind (a cluster pipeline has no
    eval() and cannot load scripts ahead; EVAL by name it does send, to the keys' node)."""
    return client.execute_command("EVAL", script, len(keys), *keys, *args)


def _common_options(settings: Settings) -> dict:
    return {
        "password": settings.redis_password or None,
        "socket_timeout": settings.network_timeout,
        "socket_connect_timeout": settings.network_timeout,
        "health_check_interval": 30,
        "retry_on_timeout": False,
    }


def cluster_seeds(url: str) -> tuple[list[tuple[str, int]], str | None, bool]:
    """(host, port) seed nodes, password and TLS of a `redis+cluster://` URL."""
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    password = unquote(credentials.partition(":")[2]) if credentials else None
    seeds = []
    for item in (item.strip() for item in hosts.split(",") if item.strip()):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "6379")
        if not host or not port.isdigit():
            raise ConfigError(f"REDIS_URL must be redis+cluster://HOST:PORT[,HOST:PORT...], got {item!r}")
        seeds.append((host, int(port)))
    if not seeds:
        raise ConfigError("REDIS_URL names no cluster node")
    return seeds, password, parts.scheme.startswith("rediss")


def wants_cluster(settings: Settings) -> bool:
    return settings.redis_cluster or urlsplit(settings.redis_url).scheme in CLUSTER_SCHEMES


def _connect_cluster(settings: Settings) -> redis.cluster.RedisCluster:
    options = _common_options(settings)
    if urlsplit(settings.redis_url).scheme in CLUSTER_SCHEMES:
        seeds, password, tls = cluster_seeds(settings.redis_url)
        options["password"] = password or options["password"]
        options["ssl"] = tls
    else:
        seeds = [(settings.redis_host, settings.redis_port)]
    # A cluster has no databases but 0. The client re-reads the slot map after a failover; the
    # callers' back-off (REDIS_DOWN) covers the seconds before a replica is promoted.
    return redis.cluster.RedisCluster(
        startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in seeds], **options,
    )


def connect_redis(settings: Settings):
    """The client the settings ask for (see the module's docstring)."""
    if wants_cluster(settings):
        return _connect_cluster(settings)
    options = {"db": settings.redis_db, **_common_options(settings)}
    if settings.redis_sentinels:
        # Every new connection asks the Sentinels for the current master, so after a failover
        # the client follows the promoted replica; a connection to a demoted master fails
        # (READONLY) and is replaced.
        sentinel = redis.sentinel.Sentinel(
            list(settings.redis_sentinels),
            socket_timeout=settings.network_timeout,
            socket_connect_timeout=settings.network_timeout,
        )
        return sentinel.master_for(settings.redis_sentinel_master, **options)
    if settings.redis_url:
        return redis.Redis.from_url(settings.redis_url, **{k: v for k, v in options.items()
                                                          if v is not None and k != "db"})
    return redis.Redis(host=settings.redis_host, port=settings.redis_port, **options)
