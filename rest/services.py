"""What the REST handlers talk to, built once per process by the app factory."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import redis
from flask import current_app

from imagescan.blobs import BlobStore
from imagescan.broker import Publisher
from imagescan.config import Settings
from imagescan.store import ImageStore, open_storage

EXTENSION = "imagescan"


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    store: ImageStore
    blobs: BlobStore
    publisher: Publisher
    # Full decodes of large non-JPEG uploads at the same time in this process (memory bound).
    decode_slots: threading.Semaphore = field(default_factory=lambda: threading.BoundedSemaphore(2))

    @classmethod
    def build(cls, settings: Settings) -> Services:
        client, store, blobs = open_storage(settings)
        return cls(settings=settings, redis=client, store=store, blobs=blobs,
                   publisher=Publisher(settings),
                   decode_slots=threading.BoundedSemaphore(settings.rest_decode_slots))


def current() -> Services:
    return current_app.extensions[EXTENSION]
