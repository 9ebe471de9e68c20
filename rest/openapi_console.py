"""OpenAPI descriptions of the routes the web console adds: the listing, thumbnails, stat
counts, and the console's own pages and files. rest.openapi merges them into its document."""

from __future__ import annotations


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json({"$ref": "#/components/schemas/Error"}, description)


def _param(name: str, where: str, description: str, schema: dict, required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path",
            "description": description, "schema": schema}


_HTML = {"200": {"description": "The console's HTML page", "content": {"text/html": {}}}}
_COUNT = {"type": "integer", "minimum": 0}

SCHEMAS = {
    "ImageSummary": {
        "type": "object", "required": ["sha256", "names", "status"],
        "properties": {
            "sha256": {"type": "string"}, "md5": {"type": "string"},
            "names": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string", "enum": ["queued", "processing", "done", "failed"]},
            "received_at": {"type": "string", "format": "date-time"},
            "format": {"type": "string", "nullable": True},
            "plates": {"type": "array", "items": {"type": "object", "properties": {
                "plate": {"type": "string"}, "confidence": {"type": "number"}}}},
            "faces": {**_COUNT, "description": "How many faces were found"},
            "error": {"type": "string", "description": "Why the analysis failed"},
        },
    },
    "ImagePage": {
        "type": "object", "required": ["images", "next"],
        "properties": {
            "images": {"type": "array", "items": {"$ref": "#/components/schemas/ImageSummary"}},
            "next": {"type": "string", "nullable": True,
                     "description": "Cursor of the next (older) page; null on the last page"},
        },
    },
    "StatCounts": {
        "type": "object", "required": ["uploads_per_day", "formats", "cameras"],
        "properties": {
            "uploads_per_day": {"type": "array", "description": "The last 30 UTC days, oldest first",
                                "items": {"type": "object", "properties": {
                                    "day": {"type": "string", "format": "date"}, "count": _COUNT}}},
            "formats": {"type": "array", "items": {"type": "object", "properties": {
                "format": {"type": "string"}, "count": _COUNT}}},
            "cameras": {"type": "array", "description": "Top 10, most images first",
                        "items": {"type": "object", "properties": {
                            "camera": {"type": "string", "example": "Google - Pixel 6a"}, "count": _COUNT}}},
        },
    },
}


def paths(needs_key: dict, not_found: dict) -> dict:
    digest = _param("digest", "path", "MD5, SHA-224 or SHA-256 (hex) of the image", {"type": "string"})
    return {
        "/images": {"get": {
            "tags": ["images"], "summary": "Recent images, newest first, a page at a time",
            "parameters": [
                _param("limit", "query", "Images per page", {"type": "integer", "minimum": 1,
                                                             "maximum": 100, "default": 24}),
                _param("cursor", "query", "`next` of the previous page; absent for the first page",
                       {"type": "string"}),
            ],
            "responses": {"200": _json({"$ref": "#/components/schemas/ImagePage"}, "One page"),
                          "400": _error("limit out of range or a cursor this service did not hand out")},
        }},
        "/images/{digest}/thumbnail": {"get": {
            "tags": ["images"], "summary": "A small JPEG of the upright image (cached for a day)",
            "parameters": [digest, _param("size", "query", "Longest side in pixels",
                                          {"type": "integer", "enum": [128, 256, 512], "default": 256})],
            "responses": {"200": {"description": "JPEG", "content": {"image/jpeg": {"schema": {
                "type": "string", "format": "binary"}}}},
                "304": {"description": "Not modified"}, "400": _error("size is not 128, 256 or 512"),
                **not_found, "413": _error("Image over MAX_IMAGE_PIXELS"),
                "422": _error("The stored image cannot be decoded"),
                "503": _error("Busy or storage unavailable")},
        }},
        "/api/stats/counts": {"get": {
            "tags": ["image service"], "summary": "The counts behind /api/stats (for charts)",
            "security": [{"ApiKey": []}],
            "responses": {"200": _json({"$ref": "#/components/schemas/StatCounts"}, "Counts"), **needs_key},
        }},
        "/": {"get": {"tags": ["console"], "summary": "Web console: upload and recent images", "responses": _HTML}},
        "/ui/search": {"get": {"tags": ["console"], "summary": "Web console: search by plate or digest",
                               "responses": _HTML}},
        "/ui/stats": {"get": {"tags": ["console"], "summary": "Web console: statistics as charts",
                              "responses": _HTML}},
        "/ui/images/{digest}": {"get": {"tags": ["console"], "summary": "Web console: one image",
                                        "parameters": [digest], "responses": _HTML}},
        "/ui/static/{filename}": {"get": {
            "tags": ["console"], "summary": "The console's scripts, styles and icons",
            "parameters": [_param("filename", "path", "A file of the console", {"type": "string"})],
            "responses": {"200": {"description": "The file"}, "404": _error("No such file")},
        }},
    }
