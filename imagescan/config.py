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


@dataclass(frozen=True)
class Settings:
    port: int = 5000
    redis_host: str = "localhost"
    redis_port: int = 6379
    redis_db: int = 0
    redis_password: str = field(default="", repr=False)
    rabbitmq_host: str = "localhost"
    rabbitmq_port: int = 5672
    rabbitmq_user: str = "guest"
    rabbitmq_password: str = field(default="guest", repr=False)
    rabbitmq_vhost: str = "/"
    max_upload_mb: int = 100
    max_image_pixels: int = 100_000_000
    max_attempts: int = 3
    plate_engine: str = "rapidocr"
    plate_region: str = "auto"
    face_engine: str = "dlib"
    face_tolerance: float = 0.54
    face_max_side: int = 1280
    blob_store: str = "redis"
    blob_dir: str = ""
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_endpoint_url: str = ""  # empty: AWS itself; else the URL of an S3-compatible store
    s3_region: str = ""
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    allow_private_urls: bool = False
    url_fetch_timeout: float = 10.0
    url_fetch_concurrency: int = 4  # /scan/url fetches at once per REST process; more get 503
    log_level: str = "INFO"
    hostname: str = field(default_factory=socket.gethostname)
    worker_health_file: str = "/tmp/imagescan-worker.alive"
    worker_max_images: int = 0  # recycle the worker process after this many images (0: never)
    worker_max_rss_mb: int = 0  # recycle the worker process above this resident size (0: never)
    network_timeout: float = 5.0  # seconds for connecting to Redis and RabbitMQ
    proxy_hops: int = 0  # trusted proxies in front of the REST (X-Forwarded-For hops to believe)
    metrics_port: int = 0  # worker and logs serve /metrics on this port (0: not served)
    metrics_dir: str = ""  # multiprocess metric files (empty: a fresh temporary directory)
    auth: str = "seed"  # "seed": only the image-service routes take API_KEY; "keys": scoped keys everywhere
    retention_days: int = 0  # erase images received more than this many days ago (0: keep forever)
    retention_interval: float = 600.0  # seconds between two retention passes of a worker
    rest_decode_slots: int = 2  # large non-JPEG uploads fully decoded at once per REST process
    rest_publishers: int = 4  # RabbitMQ connections per REST process waiting for confirms at once

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
            rabbitmq_host=_str(env, "RABBITMQ_HOST", "localhost"),
            rabbitmq_port=_int(env, "RABBITMQ_PORT", 5672, 1),
            rabbitmq_user=_str(env, "RABBITMQ_USER", "guest"),
            rabbitmq_password=_str(env, "RABBITMQ_PASSWORD", "guest"),
            rabbitmq_vhost=_str(env, "RABBITMQ_VHOST", "/"),
            max_upload_mb=_int(env, "MAX_UPLOAD_MB", 100, 1),
            max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", 100_000_000, 1),
            max_attempts=_int(env, "MAX_ATTEMPTS", 3, 1),
            plate_engine=_str(env, "PLATE_ENGINE", "rapidocr"),
            plate_region=_str(env, "PLATE_REGION", "auto"),
            face_engine=_str(env, "FACE_ENGINE", "dlib"),
            face_tolerance=_float(env, "FACE_TOLERANCE", 0.54),
            face_max_side=_int(env, "FACE_MAX_SIDE", 1280, 64),
            blob_store=_str(env, "BLOB_STORE", "redis"),
            blob_dir=_str(env, "BLOB_DIR", ""),
            s3_bucket=_str(env, "S3_BUCKET", ""),
            s3_prefix=env.get("S3_PREFIX", ""),
            s3_endpoint_url=_str(env, "S3_ENDPOINT_URL", ""),
            s3_region=_str(env, "S3_REGION", ""),
            api_keys=_list(env, "API_KEY"),
            allow_private_urls=_bool(env, "ALLOW_PRIVATE_URLS", False),
            url_fetch_timeout=_float(env, "URL_FETCH_TIMEOUT", 10.0),
            url_fetch_concurrency=_int(env, "URL_FETCH_CONCURRENCY", 4, 1),
            log_level=_str(env, "LOG_LEVEL", "INFO").upper(),
            hostname=_str(env, "HOSTNAME", socket.gethostname()),
            worker_health_file=_str(env, "WORKER_HEALTH_FILE", "/tmp/imagescan-worker.alive"),
            worker_max_images=_int(env, "WORKER_MAX_IMAGES", 0),
            worker_max_rss_mb=_int(env, "WORKER_MAX_RSS_MB", 0),
            network_timeout=_float(env, "NETWORK_TIMEOUT", 5.0),
            proxy_hops=_int(env, "PROXY_HOPS", 0),
            metrics_port=_int(env, "METRICS_PORT", 0),
            metrics_dir=_str(env, "METRICS_DIR", ""),
            auth=_str(env, "AUTH", "seed").lower(),
            retention_days=_int(env, "RETENTION_DAYS", 0),
            retention_interval=_float(env, "RETENTION_INTERVAL", 600.0),
            rest_decode_slots=_int(env, "REST_DECODE_SLOTS", 2, 1),
            rest_publishers=_int(env, "REST_PUBLISHERS", 4, 1),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.blob_store not in ("dir", "s3", "redis"):
            raise ConfigError(f"BLOB_STORE must be 'dir', 's3' or 'redis', got {self.blob_store!r}")
        if self.blob_store == "dir" and not self.blob_dir:
            raise ConfigError("BLOB_STORE=dir needs BLOB_DIR")
        if self.auth not in ("seed", "keys"):
            raise ConfigError(f"AUTH must be 'seed' or 'keys', got {self.auth!r}")
        if self.retention_interval <= 0:
            raise ConfigError(f"RETENTION_INTERVAL must be positive, got {self.retention_interval}")
        if self.blob_store == "s3" and not self.s3_bucket:
            raise ConfigError("BLOB_STORE=s3 needs S3_BUCKET")
        if not 0 < self.face_tolerance < 2:
            raise ConfigError(f"FACE_TOLERANCE must be between 0 and 2, got {self.face_tolerance}")

    def replace(self, **changes) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)
