"""What the REST handlers talk to, built once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

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

    @classmethod
    def build(cls, settings: Settings) -> Services:
        client, store, blobs = open_storage(settings)
        return cls(settings=settings, redis=client, store=store, blobs=blobs, publisher=Publisher(settings))


def current() -> Services:
    return current_app.extensions[EXTENSION]
