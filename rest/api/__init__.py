"""One blueprint per API family."""

from . import docs, erasure, faces, health, image_service, images, jobs, listing, plates, transforms

BLUEPRINTS = (
    health.blueprint,
    images.blueprint,
    listing.blueprint,
    plates.blueprint,
    faces.blueprint,
    jobs.blueprint,
    transforms.blueprint,
    image_service.blueprint,
    erasure.blueprint,
    docs.blueprint,
)
