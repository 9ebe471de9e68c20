"""Settings from environment variables. The only module that reads the environment.

The README's configuration table lists every variable read here.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def _int(env, name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _bool(env, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1/0, true/false, yes/no or on/off, got {raw!r}")


def _str(env, name: str, default: str) -> str:
    raw = env.get(name)
    return default if raw in (None, "") else raw


def _list(env, name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _addresses(env, name: str, default_port: int) -> tuple[tuple[str, int], ...]:
    """HOST[:PORT],... as (host, port) pairs."""
    pairs = []
    for item in _list(env, name):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", str(default_port))
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name} must be HOST:PORT,HOST:PORT,..., got {item!r}")
        pairs.append((host, int(port)))
    return tuple(pairs)


@dataclass(frozen=True)
class Settings:
    port: int = 5000
    redis_host: str = "localhost"
    redis_port: int = 6379
    redis_db: int = 0
    redis_password: str = field(default="", repr=False)
    # Sentinels to ask for the current Redis master (empty: connect to redis_host directly).
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = "imagescan"
    rabbitmq_host: str = "localhost"
    rabbitmq_port: int = 5672
    rabbitmq_user: str = "guest"
    rabbitmq_password: str = field(default="guest", repr=False)
    rabbitmq_vhost: str = "/"
    # Nodes of a RabbitMQ cluster, tried in turn (empty: rabbitmq_host alone).
    rabbitmq_hosts: tuple[tuple[str, int], ...] = ()
    max_upload_mb: int = 100
    max_image_pixels: int = 100_000_000
    max_attempts: int = 3
    plate_engine: str = "rapidocr"
    plate_region: str = "auto"
    face_engine: str = "dlib"
    face_tolerance: float = 0.6
    face_max_side: int = 1280
    blob_store: str = "redis"
    blob_dir: str = ""
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    allow_private_urls: bool = False
    url_fetch_timeout: float = 10.0
    log_level: str = "INFO"
    hostname: str = field(default_factory=socket.gethostname)
    worker_health_file: str = "/tmp/imagescan-worker.alive"
    worker_max_images: int = 0  # recycle the worker process after this many images (0: never)
    worker_max_rss_mb: int = 0  # recycle the worker process above this resident size (0: never)
    network_timeout: float = 5.0  # seconds for connecting to Redis and RabbitMQ
    proxy_hops: int = 0  # trusted proxies in front of the REST (X-Forwarded-For hops to believe)
    metrics_port: int = 0  # worker and logs serve /metrics on this port (0: not served)
    metrics_dir: str = ""  # multiprocess metric files (empty: a fresh temporary directory)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @classmethod
    def from_env(cls, env=None) -> Settings:
        env = os.environ if env is None else env
        settings = cls(
            port=_int(env, "PORT", 5000, 1),
            redis_host=_str(env, "REDIS_HOST", "localhost"),
            redis_port=_int(env, "REDIS_PORT", 6379, 1),
            redis_db=_int(env, "REDIS_DB", 0),
            redis_password=_str(env, "REDIS_PASSWORD", ""),
            redis_sentinels=_addresses(env, "REDIS_SENTINELS", 26379),
            redis_sentinel_master=_str(env, "REDIS_SENTINEL_MASTER", "imagescan"),
            rabbitmq_host=_str(env, "RABBITMQ_HOST", "localhost"),
            rabbitmq_port=_int(env, "RABBITMQ_PORT", 5672, 1),
            rabbitmq_user=_str(env, "RABBITMQ_USER", "guest"),
            rabbitmq_password=_str(env, "RABBITMQ_PASSWORD", "guest"),
            rabbitmq_vhost=_str(env, "RABBITMQ_VHOST", "/"),
            rabbitmq_hosts=_addresses(env, "RABBITMQ_HOSTS", 5672),
            max_upload_mb=_int(env, "MAX_UPLOAD_MB", 100, 1),
            max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", 100_000_000, 1),
            max_attempts=_int(env, "MAX_ATTEMPTS", 3, 1),
            plate_engine=_str(env, "PLATE_ENGINE", "rapidocr"),
            plate_region=_str(env, "PLATE_REGION", "auto"),
            face_engine=_str(env, "FACE_ENGINE", "dlib"),
            face_tolerance=_float(env, "FACE_TOLERANCE", 0.6),
            face_max_side=_int(env, "FACE_MAX_SIDE", 1280, 64),
            blob_store=_str(env, "BLOB_STORE", "redis"),
            blob_dir=_str(env, "BLOB_DIR", ""),
            api_keys=_list(env, "API_KEY"),
            allow_private_urls=_bool(env, "ALLOW_PRIVATE_URLS", False),
            url_fetch_timeout=_float(env, "URL_FETCH_TIMEOUT", 10.0),
            log_level=_str(env, "LOG_LEVEL", "INFO").upper(),
            hostname=_str(env, "HOSTNAME", socket.gethostname()),
            worker_health_file=_str(env, "WORKER_HEALTH_FILE", "/tmp/imagescan-worker.alive"),
            worker_max_images=_int(env, "WORKER_MAX_IMAGES", 0),
            worker_max_rss_mb=_int(env, "WORKER_MAX_RSS_MB", 0),
            network_timeout=_float(env, "NETWORK_TIMEOUT", 5.0),
            proxy_hops=_int(env, "PROXY_HOPS", 0),
            metrics_port=_int(env, "METRICS_PORT", 0),
            metrics_dir=_str(env, "METRICS_DIR", ""),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.blob_store not in ("redis", "dir"):
            raise ConfigError(f"BLOB_STORE must be 'redis' or 'dir', got {self.blob_store!r}")
        if self.blob_store == "dir" and not self.blob_dir:
            raise ConfigError("BLOB_STORE=dir needs BLOB_DIR")
        if not 0 < self.face_tolerance < 2:
            raise ConfigError(f"FACE_TOLERANCE must be between 0 and 2, got {self.face_tolerance}")

    @property
    def rabbitmq_addresses(self) -> tuple[tuple[str, int], ...]:
        return self.rabbitmq_hosts or ((self.rabbitmq_host, self.rabbitmq_port),)

    def replace(self, **changes) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)
