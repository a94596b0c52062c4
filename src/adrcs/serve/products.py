"""One champion per product: part types, their registered versions, and routing maps to them.

A fab runs several products (part types: STDF ``PART_TYP``, KLARF ``DeviceID``, SINF ``DEVICE``, E142 / G85
``ProductId``; the readers put it in each wafer's meta). A product can have its own champion (and with it its own
drift reference, from its run folder): ``adrcs serve --product-model PART=RUN`` registers RUN for PART, the first
one of a product becomes its champion, and promote / rollback act within the product. Inspections are routed by
part type: from the file (per wafer), else the request's ``part_type`` field; a map whose part type has no
champion of its own, or that has none, goes to the default champion of its kind.

Part types are compared normalised (`normalize_wafer_id`: quotes and spaces trimmed, leading zeros of a number
dropped), at most `MAX_PART` characters. A product's version is ``<kind>-<hash>@<part>`` (the part made URL-safe),
so the same checkpoint can serve several products.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any

from adrcs.errors import InputError

MAX_PART = 128
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def part_key(value: Any, *, strict: bool = False) -> str | None:
    """A part type as routed and stored: normalised text, None when empty. Longer than `MAX_PART`: cut (a file's
    value) or, with `strict` (a client's field), InputError."""
    from adrcs.data.fab.wafer_grid import normalize_wafer_id

    if value is None:
        return None
    if strict and (not isinstance(value, str) or "\x00" in value):
        raise InputError(None, "part_type must be a string")
    key = normalize_wafer_id(value)
    if len(key) > MAX_PART:
        if strict:
            raise InputError(None, f"part_type must be at most {MAX_PART} characters")
        key = key[:MAX_PART]
    return key or None


def version_suffix(part: str | None) -> str:
    """What a product's version name ends with: ``@<part>`` (characters other than letters, digits and ``._-``
    replaced, plus a short hash of the part type then, so two part types never share a name)."""
    if part is None:
        return ""
    slug = _SAFE.sub("_", part)[:48]
    if slug != part:
        slug += "-" + hashlib.sha256(part.encode()).hexdigest()[:6]
    return "@" + slug


def product_models(values: list[str]) -> list[tuple[str, str]]:
    """``--product-model PART=RUN`` values -> [(part type, run folder)]; InputError naming the flag otherwise."""
    out = []
    for value in values:
        part, sep, run = value.partition("=")
        key = part_key(part) if sep else None
        if key is None or not run.strip():
            raise InputError(None, f"--product-model {value!r} must be PART=RUN (a part type and a run folder)")
        out.append((key, run.strip()))
    return out


def route(part: str | None, own: Any) -> str | None:
    """The product a map of part type `part` is served by: itself when it has its own champion (in `own`), else
    None (the default champion)."""
    return part if part is not None and part in own else None


def groups(routes: list[str | None]) -> dict[str | None, list[int]]:
    """Indices of the maps of each product, in first-seen order (one forward pass per product)."""
    out: dict[str | None, list[int]] = {}
    for i, r in enumerate(routes):
        out.setdefault(r, []).append(i)
    return out
