"""One blueprint per API family."""

from . import docs, faces, image_service, images, jobs, listing, plates, transforms

BLUEPRINTS = (
    images.blueprint,
    listing.blueprint,
    plates.blueprint,
    faces.blueprint,
    jobs.blueprint,
    transforms.blueprint,
    image_service.blueprint,
    docs.blueprint,
)
