"""What the REST handlers talk to, built once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from imagescan.blobs import BlobStore, open_blob_store
from imagescan.broker import Publisher
from imagescan.config import Settings
from imagescan.store import ImageStore, connect_redis

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
        client = connect_redis(settings)
        return cls(
            settings=settings,
            redis=client,
            store=ImageStore(client),
            blobs=open_blob_store(settings, client),
            publisher=Publisher(settings),
        )


def current() -> Services:
    return current_app.extensions[EXTENSION]
