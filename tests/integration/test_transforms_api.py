"""prog-image API (upload_file and the transforms) against real Redis and RabbitMQ."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw, ImageOps

from imagescan import keys, transforms
from imagescan.digests import Digests
from rest.api import transforms as transforms_api
from tests import imagefactory


def _asymmetric_png(mode: str = "RGBA") -> bytes:
    image = Image.new("RGBA", (48, 32), (30, 60, 220, 255))
    ImageDraw.Draw(image).rectangle((0, 0, 12, 31), fill=(240, 180, 20, 128))
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, "PNG")
    return buffer.getvalue()


def _upload(client, data: bytes, filename: str = "sample.png", **headers):
    return client.post("/upload_file", data={"image": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data", headers=headers)


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_upload_file_answers_the_sha256_as_plain_text(client):
    data = _asymmetric_png()

    response = _upload(client, data)

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == Digests.of(data).sha256


def test_upload_file_answers_json_when_asked(client):
    data = _asymmetric_png("RGB")

    response = _upload(client, data, Accept="application/json")

    assert response.get_json() == {"image_id": Digests.of(data).sha256}


def test_upload_file_refuses_non_images_as_json(client):
    response = _upload(client, b"%PDF-1.4 not an image", "doc.pdf")

    assert response.status_code == 415
    assert response.get_json()["status"] == 415


@pytest.mark.parametrize("operation,expected", [
    ("png", lambda image: image),
    ("grayscale", lambda image: image.convert("L")),
    ("mirror", ImageOps.mirror),
])
def test_lossless_outputs_have_exactly_pillows_pixels(client, operation, expected):
    data = _asymmetric_png()
    image_id = _upload(client, data).get_data(as_text=True)

    response = client.get(f"/{image_id}/{operation}")

    assert response.status_code == 200
    assert response.mimetype == "image/png"
    output = _decoded(response.data)
    wanted = expected(Image.open(io.BytesIO(data)))
    assert output.mode == wanted.mode and output.size == wanted.size
    assert output.tobytes() == wanted.tobytes()


def test_jpeg_output_of_a_transparent_png(client):
    image_id = _upload(client, _asymmetric_png()).get_data(as_text=True)

    response = client.get(f"/{image_id}/jpeg")

    assert response.status_code == 200
    assert response.mimetype == "image/jpeg"
    output = _decoded(response.data)
    assert output.format == "JPEG" and output.mode == "RGB" and output.size == (48, 32)


@pytest.mark.parametrize("operation", transforms.OPERATIONS)
def test_jpeg_sources_give_pillows_jpeg_of_the_operation(client, operation):
    data = imagefactory.jpeg(64, 48, seed=5)
    image_id = _upload(client, data, "photo.jpg").get_data(as_text=True)
    source = Image.open(io.BytesIO(data))
    pixels = {"jpeg": source, "png": source, "grayscale": source.convert("L"),
              "mirror": ImageOps.mirror(source)}[operation]
    fmt = "PNG" if operation == "png" else "JPEG"
    buffer = io.BytesIO()
    pixels.save(buffer, fmt, **({"quality": transforms.JPEG_QUALITY} if fmt == "JPEG" else {}))

    response = client.get(f"/{image_id}/{operation}")

    assert response.mimetype == f"image/{fmt.lower()}"
    assert _decoded(response.data).tobytes() == _decoded(buffer.getvalue()).tobytes()


def test_every_digest_of_the_image_is_an_id(client):
    data = _asymmetric_png("RGB")
    digests = Digests.of(data)
    _upload(client, data)

    bodies = {client.get(f"/{digest}/mirror").data for digest in (digests.md5, digests.sha224, digests.sha256)}

    assert len(bodies) == 1


def test_results_are_cached_with_a_ttl(app, client):
    data = _asymmetric_png("RGB")
    sha256 = _upload(client, data).get_data(as_text=True)
    first = client.get(f"/{sha256}/grayscale")
    redis = app.extensions["imagescan"].redis
    cache_key = keys.transform_cache(sha256, "grayscale")

    assert 0 < redis.ttl(cache_key) <= transforms_api.CACHE_TTL_SECONDS
    # What the cache holds is what is served: replace it and the answer follows.
    redis.set(cache_key, b"image/png\nCACHED", ex=60)
    second = client.get(f"/{sha256}/grayscale")
    assert first.status_code == second.status_code == 200
    assert second.data == b"CACHED"
    assert second.mimetype == "image/png"


@pytest.mark.parametrize("image_id", ["0" * 64, "0" * 32, "not-a-digest"])
def test_unknown_ids_are_404_json(client, image_id):
    response = client.get(f"/{image_id}/png")

    assert response.status_code == 404
    assert response.get_json()["status"] == 404


def test_image_over_the_pixel_cap_is_refused_not_decoded(client, settings):
    from rest.app import create_app

    image_id = _upload(client, _asymmetric_png("RGB")).get_data(as_text=True)  # 48x32 = 1536 pixels
    small_cap = create_app(settings.replace(max_image_pixels=1000))

    try:
        response = small_cap.test_client().get(f"/{image_id}/grayscale")
    finally:
        small_cap.extensions["imagescan"].publisher.close()

    assert response.status_code == 413
    assert "limit" in response.get_json()["error"]


def test_transforms_are_bounded_and_do_not_block_other_routes(client, monkeypatch):
    image_id = _upload(client, _asymmetric_png("RGB")).get_data(as_text=True)
    monkeypatch.setattr(transforms_api, "SLOT_WAIT_SECONDS", 0.2)
    # Every slot busy, as with TRANSFORM_SLOTS large images being decoded at once.
    for _ in range(transforms_api.TRANSFORM_SLOTS):
        assert transforms_api._slots.acquire(timeout=1)
    try:
        busy = client.get(f"/{image_id}/mirror")
        other_route = client.get(f"/api/images/{image_id}")
    finally:
        for _ in range(transforms_api.TRANSFORM_SLOTS):
            transforms_api._slots.release()

    assert busy.status_code == 503
    assert busy.headers["Retry-After"]
    assert other_route.status_code == 200
    assert client.get(f"/{image_id}/mirror").status_code == 200  # slots free again
