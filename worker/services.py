"""What the worker talks to, built once per worker process."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from imagescan.analyzers import FaceRecognizer, PlateRecognizer
from imagescan.analyzers.base import Analyzer
from imagescan.analyzers.registry import load_analyzers
from imagescan.blobs import BlobStore
from imagescan.config import Settings
from imagescan.faceindex import FaceIndex
from imagescan.facesearch import face_search_for
from imagescan.store import ImageStore, open_storage

from .metrics import MeasuredFaceIndex


@dataclass
class WorkerServices:
    settings: Settings
    redis: redis.Redis
    store: ImageStore
    blobs: BlobStore
    # The plate and face engines, when the worker is built with engines of its own (tests,
    # benchmarks); None: the plates and faces analyzers load the ones the settings name.
    plates: PlateRecognizer | None
    faces: FaceRecognizer | None
    face_index: FaceIndex
    analyzers: tuple[Analyzer, ...] = ()  # empty: those ANALYZERS names, constructed here

    def __post_init__(self):
        if not self.analyzers:
            self.analyzers = load_analyzers(self.settings.analyzers, self)

    @classmethod
    def build(cls, settings: Settings) -> WorkerServices:
        client, store, blobs = open_storage(settings)
        return cls(settings=settings, redis=client, store=store, blobs=blobs, plates=None, faces=None,
                   face_index=MeasuredFaceIndex(client, settings.face_tolerance, face_search_for(settings, client)))
