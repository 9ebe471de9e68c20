"""Settings from environment variables. The only module that reads the environment.

Each setting is declared once, in `SETTINGS`: its field, its variable, its type, its default,
its smallest value and what it means. The `Settings` dataclass and `Settings.from_env` are
both built from that table, so adding a setting is one line there (and one in the README's
configuration table, which a test checks).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import field, fields, make_dataclass
from typing import Any, NamedTuple


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


class Addresses(tuple):
    """The type of a HOST[:PORT],... setting: (host, port) pairs."""


class Setting(NamedTuple):
    name: str  # the Settings field
    env: str  # the environment variable
    type: type  # int, float, bool, str or tuple (a comma-separated list)
    default: Any  # a value, or a function called for it (e.g. the host's name)
    minimum: float | None = None  # smallest number accepted (None: no bound)
    help: str = ""
    choices: tuple[str, ...] = ()  # the accepted words (compared after normalise)
    normalise: Callable[[str], str] | None = None  # applied to a text value before it is checked
    secret: bool = False  # kept out of repr()
    default_port: int = 0  # Addresses: the port of an item that names none


# A tenth of dlib's 150-pixel face chip: moved further, the chip loses part of the face.
MAX_FACE_ENCODING_SHIFT = 15

SETTINGS: tuple[Setting, ...] = (
    Setting("port", "PORT", int, 5000, 1, "REST listening port"),
    Setting("redis_host", "REDIS_HOST", str, "localhost"),
    Setting("redis_port", "REDIS_PORT", int, 6379, 1),
    Setting("redis_db", "REDIS_DB", int, 0, 0),
    Setting("redis_password", "REDIS_PASSWORD", str, "", secret=True),
    Setting("redis_sentinels", "REDIS_SENTINELS", Addresses, (), default_port=26379,
            help="Sentinels to ask for the Redis master, HOST[:PORT],... (empty: REDIS_HOST directly)"),
    Setting("redis_sentinel_master", "REDIS_SENTINEL_MASTER", str, "imagescan"),
    Setting("redis_cluster", "REDIS_CLUSTER", bool, False,
            help="REDIS_HOST:REDIS_PORT is a node of a Redis Cluster (see README, Redis Cluster)"),
    Setting("redis_url", "REDIS_URL", str, "", secret=True,
            help="redis://, rediss:// or redis+cluster://HOST:PORT[,HOST:PORT...] (empty: REDIS_HOST...)"),
    Setting("rabbitmq_host", "RABBITMQ_HOST", str, "localhost"),
    Setting("rabbitmq_port", "RABBITMQ_PORT", int, 5672, 1),
    Setting("rabbitmq_user", "RABBITMQ_USER", str, "guest"),
    Setting("rabbitmq_password", "RABBITMQ_PASSWORD", str, "guest", secret=True),
    Setting("rabbitmq_vhost", "RABBITMQ_VHOST", str, "/"),
    Setting("rabbitmq_hosts", "RABBITMQ_HOSTS", Addresses, (), default_port=5672,
            help="nodes of a RabbitMQ cluster, HOST[:PORT],..., tried in turn (empty: RABBITMQ_HOST)"),
    Setting("max_upload_mb", "MAX_UPLOAD_MB", int, 100, 1, "largest request body (and fetched URL)"),
    Setting("max_image_pixels", "MAX_IMAGE_PIXELS", int, 100_000_000, 1, "largest image we decode"),
    Setting("max_attempts", "MAX_ATTEMPTS", int, 3, 1, "deliveries before a message is dead-lettered"),
    Setting("analyzers", "ANALYZERS", tuple, ("plates", "faces", "exif"),
            help="the analyzers a worker runs on each image, in this order (entry-point names)"),
    Setting("plate_engine", "PLATE_ENGINE", str, "rapidocr"),
    Setting("plate_region", "PLATE_REGION", str, "auto"),
    Setting("face_engine", "FACE_ENGINE", str, "dlib"),
    Setting("face_tolerance", "FACE_TOLERANCE", float, 0.49, help="largest distance of the same face"),
    Setting("face_max_side", "FACE_MAX_SIDE", int, 1280, 64, "faces are found on a copy this long"),
    Setting("face_encoding_shift", "FACE_ENCODING_SHIFT", int, 3, 0,
            "pixels each aligned face chip is moved for the averaged encoding (0: 1/4 of the CPU, lower recall)"),
    Setting("face_search", "FACE_SEARCH", str, "local", choices=("local", "tier"),
            help="local: each worker holds every face encoding; tier: ask the face-search tier"),
    Setting("face_tier_urls", "FACE_TIER_URLS", tuple, (),
            help="FACE_SEARCH=tier: one http://HOST:PORT per shard of the face-search tier"),
    Setting("face_tier_timeout", "FACE_TIER_TIMEOUT", float, 10.0, 0.1, "seconds a tier shard has to answer"),
    Setting("face_tier_shard", "FACE_TIER_SHARD", int, -1, -1,
            "the tier shard this process is (-1: the number ending HOSTNAME, as in a StatefulSet)"),
    Setting("face_tier_shards", "FACE_TIER_SHARDS", int, 1, 1, "shards in the face-search tier"),
    Setting("face_tier_port", "FACE_TIER_PORT", int, 8090, 1, "a tier shard's listening port"),
    Setting("face_tier_dir", "FACE_TIER_DIR", str, "/var/lib/imagescan/facetier",
            help="where a tier shard keeps its snapshot"),
    Setting("face_tier_snapshot_seconds", "FACE_TIER_SNAPSHOT_SECONDS", float, 600.0, 1.0,
            "a tier shard saves its snapshot this often (and when stopped)"),
    Setting("face_ivf_from", "FACE_IVF_FROM", int, 200_000, 0,
            "a tier shard moves to an IVF index at this many faces (0: exact search always)"),
    Setting("face_ivf_probes", "FACE_IVF_PROBES", int, 128, 1, "IVF lists probed per query"),
    Setting("face_ivf_lists", "FACE_IVF_LISTS", int, 0, 0, "IVF lists (0: 2*sqrt(10 * FACE_IVF_FROM))"),
    Setting("blob_store", "BLOB_STORE", str, "redis", choices=("dir", "s3", "redis")),
    Setting("blob_dir", "BLOB_DIR", str, ""),
    Setting("s3_bucket", "S3_BUCKET", str, ""),
    Setting("s3_prefix", "S3_PREFIX", str, "", help="key prefix of every object"),
    Setting("s3_endpoint_url", "S3_ENDPOINT_URL", str, "", help="empty: AWS itself; else an S3-compatible store"),
    Setting("s3_region", "S3_REGION", str, ""),
    Setting("api_keys", "API_KEY", tuple, (), help="comma-separated keys", secret=True),
    Setting("allow_private_urls", "ALLOW_PRIVATE_URLS", bool, False),
    Setting("url_fetch_timeout", "URL_FETCH_TIMEOUT", float, 10.0),
    Setting("url_fetch_concurrency", "URL_FETCH_CONCURRENCY", int, 4, 1,
            "/scan/url fetches at once per REST process; more get 503"),
    Setting("log_level", "LOG_LEVEL", str, "INFO", normalise=str.upper),
    Setting("hostname", "HOSTNAME", str, socket.gethostname, help="first word of the log routing keys"),
    Setting("worker_health_file", "WORKER_HEALTH_FILE", str, "/tmp/imagescan-worker.alive"),
    Setting("worker_max_images", "WORKER_MAX_IMAGES", int, 0, 0,
            "recycle the worker process after this many images (0: never)"),
    Setting("worker_max_rss_mb", "WORKER_MAX_RSS_MB", int, 0, 0,
            "recycle the worker process above this resident size (0: never)"),
    Setting("network_timeout", "NETWORK_TIMEOUT", float, 5.0, help="seconds to connect to Redis and RabbitMQ"),
    Setting("proxy_hops", "PROXY_HOPS", int, 0, 0, "trusted proxies in front of the REST"),
    Setting("metrics_port", "METRICS_PORT", int, 0, 0, "worker and logs serve /metrics here (0: not served)"),
    Setting("metrics_dir", "METRICS_DIR", str, "", help="multiprocess metric files (empty: a temporary one)"),
    Setting("auth", "AUTH", str, "seed", choices=("seed", "keys"), normalise=str.lower,
            help="seed: only the image-service routes take API_KEY; keys: scoped keys everywhere"),
    Setting("retention_days", "RETENTION_DAYS", int, 0, 0, "erase images older than this (0: never)"),
    Setting("retention_interval", "RETENTION_INTERVAL", float, 600.0, help="seconds between retention passes"),
    Setting("rest_decode_slots", "REST_DECODE_SLOTS", int, 2, 1, "large uploads decoded at once per process"),
    Setting("gunicorn_workers", "GUNICORN_WORKERS", int, 2, 1, "REST processes"),
    Setting("gunicorn_threads", "GUNICORN_THREADS", int, 8, 1, "threads per REST process"),
    Setting("gunicorn_graceful_timeout", "GUNICORN_GRACEFUL_TIMEOUT", int, 30, 1,
            "seconds a stopping REST process lets requests in flight finish"),
)

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_REDIS_SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")



def _number(setting: Setting, raw: str, kind: type):
    try:
        value = kind(raw)
    except ValueError:
        article = "an integer" if kind is int else "a number"
        raise ConfigError(f"{setting.env} must be {article}, got {raw!r}") from None
    if setting.minimum is not None and value < setting.minimum:
        raise ConfigError(f"{setting.env} must be at least {setting.minimum}, got {value}")
    return value


def _boolean(setting: Setting, raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"{setting.env} must be 1/0, true/false, yes/no or on/off, got {raw!r}")


def _text(setting: Setting, raw: str) -> str:
    value = setting.normalise(raw) if setting.normalise else raw
    if setting.choices and value not in setting.choices:
        words = " or ".join(repr(choice) for choice in setting.choices)
        raise ConfigError(f"{setting.env} must be {words}, got {raw!r}")
    return value


def _parse(setting: Setting, raw: str):
    """The value of one variable set to `raw` (not empty), or a ConfigError naming it."""
    if setting.type in (int, float):
        return _number(setting, raw, setting.type)
    if setting.type is bool:
        return _boolean(setting, raw)
    if setting.type is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if setting.type is Addresses:
        return _addresses(setting, raw)
    return _text(setting, raw)


def _addresses(setting: Setting, raw: str) -> tuple[tuple[str, int], ...]:
    pairs = []
    for item in (item.strip() for item in raw.split(",") if item.strip()):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", str(setting.default_port))
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{setting.env} must be HOST:PORT,HOST:PORT,..., got {item!r}")
        pairs.append((host, int(port)))
    return tuple(pairs)


def _default(setting: Setting):
    return setting.default() if callable(setting.default) else setting.default


def _field(setting: Setting):
    kind = {tuple: tuple[str, ...], Addresses: tuple[tuple[str, int], ...]}.get(setting.type, setting.type)
    if callable(setting.default):
        spec = field(default_factory=setting.default, repr=not setting.secret)
    else:
        spec = field(default=setting.default, repr=not setting.secret)
    return setting.name, kind, spec


class _SettingsBehaviour:
    """What `Settings` does beyond holding the values declared in SETTINGS."""

    @property
    def rabbitmq_addresses(self) -> tuple[tuple[str, int], ...]:
        return self.rabbitmq_hosts or ((self.rabbitmq_host, self.rabbitmq_port),)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @classmethod
    def from_env(cls, env=None):
        """The settings the environment asks for; ConfigError names the first bad variable."""
        env = os.environ if env is None else env
        values = {}
        for setting in SETTINGS:
            raw = env.get(setting.env)
            values[setting.name] = _default(setting) if raw in (None, "") else _parse(setting, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Rules that span settings or ranges the table cannot say."""
        if self.blob_store == "dir" and not self.blob_dir:
            raise ConfigError("BLOB_STORE=dir needs BLOB_DIR")
        for setting in SETTINGS:
            if setting.choices and getattr(self, setting.name) not in setting.choices:
                words = " or ".join(repr(choice) for choice in setting.choices)
                raise ConfigError(f"{setting.env} must be {words}, got {getattr(self, setting.name)!r}")
        if self.retention_interval <= 0:
            raise ConfigError(f"RETENTION_INTERVAL must be positive, got {self.retention_interval}")
        if self.blob_store == "s3" and not self.s3_bucket:
            raise ConfigError("BLOB_STORE=s3 needs S3_BUCKET")
        if self.redis_url and self.redis_url.split("://")[0] not in _REDIS_SCHEMES:
            raise ConfigError(f"REDIS_URL must start with {', '.join(s + '://' for s in _REDIS_SCHEMES)}")
        if self.face_search == "tier" and not self.face_tier_urls:
            raise ConfigError("FACE_SEARCH=tier needs FACE_TIER_URLS")
        if not self.face_tier_shard < self.face_tier_shards <= 64:  # 64: the face partitions
            raise ConfigError(f"FACE_TIER_SHARD must be below FACE_TIER_SHARDS, which is at most 64 "
                              f"(got {self.face_tier_shard} of {self.face_tier_shards})")
        if self.face_encoding_shift > MAX_FACE_ENCODING_SHIFT:
            raise ConfigError(f"FACE_ENCODING_SHIFT must be at most {MAX_FACE_ENCODING_SHIFT} pixels, "
                              f"got {self.face_encoding_shift}")
        if not 0 < self.face_tolerance < 2:
            raise ConfigError(f"FACE_TOLERANCE must be between 0 and 2, got {self.face_tolerance}")

    def replace(self, **changes):
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return type(self)(**values)


Settings = make_dataclass(
    "Settings", [_field(setting) for setting in SETTINGS], bases=(_SettingsBehaviour,), frozen=True,
)
Settings.__module__ = __name__
Settings.__doc__ = "Every setting of the services, one field per row of SETTINGS."


def load(service: str) -> Settings:
    """The settings of a service at its start; a bad variable stops it with one clear line."""
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise SystemExit(f"{service}: configuration error: {error}") from None
