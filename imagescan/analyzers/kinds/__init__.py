"""The built-in analyzers, one module each: `exif`, `plates`, `faces`.

Each is registered as an entry point of the `imagescan.analyzers` group in pyproject.toml,
like any analyzer from another package (imagescan.analyzers.base describes the unit).
"""
