"""Request bodies and OpenAPI descriptions of the service's routes."""
from __future__ import annotations

from pydantic import BaseModel, Field

from adrcs.serve.model_host import IMAGE_KINDS


class ReviewIn(BaseModel):
    """An engineer's verdict on one inspection."""

    action: str = Field(pattern="^(confirm|correct)$", description="confirm the prediction or correct it")
    label: str | list[str] | None = Field(None, description="the right class (required to correct): one of the "
                                          "model's classes or a registered one (GET /v1/classes); a list of "
                                          "them for a multi-label model")
    note: str | None = Field(None, max_length=2000)


WAFER_MAPS_SCHEMA = {
    "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["maps"],
            "properties": {
                "maps": {"type": "array", "description": "2-D grids of die codes 0/1/2 (or 0/128/255)",
                         "items": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}},
                "lot": {"type": "string"}, "tool": {"type": "string"},
                "part_type": {"type": "string", "description": "the product: its own champion answers when it has "
                                                               "one, else the default champion"},
                "wafer": {"description": "one wafer id, or one per map",
                          "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}}}},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary",
                                    "description": "a wafer-map .npz (`adrcs convert` writes one), a fab file "
                                                   "(STDF, KLARF, SINF, E142 / G85: one result per wafer, with the "
                                                   "file's lot and wafer ids) or a JSON file like the JSON body; "
                                                   "plain or gzip / xz / bz2 / zstd compressed; pickles are refused "
                                                   "(415), files over the limits get 413"},
                           "lot": {"type": "string", "description": "overrides the file's lot ids"},
                           "wafer": {"type": "string", "description": "overrides the file's wafer ids"},
                           "tool": {"type": "string"},
                           "part_type": {"type": "string", "description": "the product, for wafers whose file "
                                                                          "names none"}}}},
    },
    "required": True,
}
IMAGES_SCHEMA = {
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"},
                       "template": {"type": "string", "format": "binary",
                                    "description": "the defect-free reference image, when the model uses one"},
                       "lot": {"type": "string"}, "wafer": {"type": "string"}, "tool": {"type": "string"},
                       "kind": {"type": "string", "enum": list(IMAGE_KINDS)}}}}},
    "required": True,
}
