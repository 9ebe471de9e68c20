"""imagescan: code shared by the REST, worker and logs services."""

__version__ = "0.1.0"
