"""What the worker talks to, built once per worker process."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from imagescan.analyzers import (
    FaceRecognizer,
    PlateRecognizer,
    load_face_recognizer,
    load_plate_recognizer,
)
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
    plates: PlateRecognizer
    faces: FaceRecognizer
    face_index: FaceIndex

    @classmethod
    def build(cls, settings: Settings) -> WorkerServices:
        client, store, blobs = open_storage(settings)
        face_options = {"max_side": settings.face_max_side} if settings.face_engine == "dlib" else {}
        return cls(
            settings=settings,
            redis=client,
            store=store,
            blobs=blobs,
            plates=load_plate_recognizer(settings.plate_engine, region=settings.plate_region),
            faces=load_face_recognizer(settings.face_engine, **face_options),
            face_index=MeasuredFaceIndex(client, settings.face_tolerance, face_search_for(settings, client)),
        )
