"""Wafer-map files uploaded to ``POST /v1/inspect/wafer-maps``: read from memory by content, never unpickled.

Accepted (decided from the first bytes, never from the name): the ``adrcs convert`` npz or a plain npz of maps,
fab files (STDF, KLARF, SINF, SEMI E142 / G85) and JSON like the JSON body, each also gzip / xz / bz2 / zstd /
one-file-zip compressed. Everything goes through the loader's readers (`adrcs.data.loader.load_bytes`) with the
service's `InputLimits`: decompression is a bounded stream (413 past the cap), npz members are checked from their
headers first, map side and count are capped; pickles, compressed or not, get 415.

Where: an upload that is compressed or expands to `heavy_parse.HEAVY_BODY` or more is read in the parse worker
process (`HeavyParser.run`), a smaller one in a thread; both in the parser's one-at-a-time slot, so at most one
large input is expanded at once and the event loop never parses a file. `read_wafer_upload` runs in either
place: it imports the loader (pandas) only when called.

A file over a limit gets 413 with a pointer to ``adrcs predict`` (`BIG_LOT_HINT`), which reads big lot files
locally with the CLI's limits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adrcs.errors import InputError, InputTooLarge, UnsupportedMediaError
from adrcs.serve import heavy_parse
from adrcs.serve.inputs import PICKLE_HINT, check_maps, check_npz, upload_kind

BIG_LOT_HINT = "for big lot files run `adrcs predict --model RUN --data FILE --out predictions.csv` instead"
UNSUPPORTED = ("unsupported upload format: send JSON maps, a .npz (`adrcs convert` writes one) or a fab file "
               "(STDF, KLARF, SINF, E142 / G85), plain or gzip / xz / bz2 / zstd compressed")
_COMPRESSED = (b"\xfd7zXZ", b"\x1f\x8b", b"BZh", b"\x28\xb5\x2f\xfd")


@dataclass
class UploadedMaps:
    """The maps of one upload with per-map ids and counts (normalised ids; None where the file has none)."""

    maps: list[np.ndarray]
    lots: list[str | None]
    wafers: list[str | None]
    die_count: list[int | None] = field(default_factory=list)
    fail_count: list[int | None] = field(default_factory=list)
    wafer_yield: list[float | None] = field(default_factory=list)
    tool: str | None = None
    format: str = ""
    part_types: list[str | None] = field(default_factory=list)  # the product of each map (None: not in the file)

    def counts(self) -> list[tuple[int | None, int | None, float | None]] | None:
        """(die_count, fail_count, yield) per map, or None when the reader gave none (then counted on the maps)."""
        if len(self.die_count) != len(self.maps):
            return None
        return list(zip(self.die_count, self.fail_count, self.wafer_yield))


def upload_name(filename: str | None) -> str:
    """The client's file name without folders, at most 100 characters (the only name in error messages)."""
    return Path(filename or "upload").name[:100] or "upload"


def upload_format(content: bytes) -> str:
    """"json", "npz", "compressed" (gzip, xz, bz2, zstd: what is inside is decided after decompressing), "pickle"
    (an uncompressed one) or "other" (a fab file, or something unsupported) from the first bytes."""
    if content.startswith(_COMPRESSED):
        return "compressed"
    return upload_kind(content)


def _opt(v: Any, kind: type) -> Any:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if not math.isfinite(f) else kind(f)


def _from_set(ds: Any, name: str, limits: Any) -> UploadedMaps:
    from adrcs.data.wafer_ids import wafer_columns
    from adrcs.serve.products import part_key

    maps = [np.ascontiguousarray(m, dtype=np.uint8) for m in ds.maps]
    check_maps(maps, name, limits)
    cols = wafer_columns(ds)
    # the product of each wafer (STDF PART_TYP, KLARF DeviceID, SINF DEVICE, E142 / G85 ProductId)
    parts = list(ds.meta["part_type"]) if "part_type" in getattr(ds.meta, "columns", ()) else [None] * len(maps)
    return UploadedMaps(maps=maps, lots=[str(v) or None for v in cols["lot"]],
                        part_types=[None if isinstance(v, float) else part_key(v) for v in parts],
                        wafers=[str(v) or None for v in cols["wafer"]],
                        die_count=[_opt(v, int) for v in cols["die_count"]],
                        fail_count=[_opt(v, int) for v in cols["fail_count"]],
                        wafer_yield=[_opt(v, float) for v in cols["yield"]],
                        format=str(ds.notes.get("format", "")))


def _json_upload(content: bytes, name: str, limits: Any) -> UploadedMaps:
    from adrcs.data.bounded_io import DECODE_ERRORS, open_data

    try:
        with open_data(content, name, limits.max_uncompressed_bytes, limits.flag) as f:
            raw = f.read()
    except InputError:
        raise
    except DECODE_ERRORS:
        raise InputError(name, "is damaged: its compressed data cannot be read") from None
    maps, lot, tool, wafers, part = heavy_parse.parse_json_maps(raw, limits.max_map_side, limits.max_maps)
    return UploadedMaps(maps=maps, lots=[lot] * len(maps), wafers=wafers, tool=tool, format="json",
                        part_types=[part] * len(maps))


def read_wafer_upload(filename: str | None, content: bytes, limits: Any) -> UploadedMaps:
    """An uploaded wafer-map file -> `UploadedMaps` (runs in a thread or in the parse worker process).

    InputError (422) for an unreadable file, UnsupportedMediaError (415) for a pickle or an unknown format,
    InputTooLarge (413) past a limit; messages name only `filename`'s last part."""
    from adrcs.data import file_kind, formats
    from adrcs.data.bounded_io import decoded_head
    from adrcs.data.loader import load_bytes

    name = upload_name(filename)
    if not content:
        raise InputError(name, "empty upload")
    kind = _kind(content)
    if kind == "pickle":
        raise UnsupportedMediaError(name, PICKLE_HINT)
    if kind == "json":
        return _json_upload(content, name, limits)
    if kind == "npz":
        check_npz(content, name, limits)  # sizes and dtypes from the headers, before anything is inflated
    else:  # compressed, or a fab file: decided on the first decompressed bytes
        head = decoded_head(content, name, limits.max_uncompressed_bytes, formats.FAB_HEAD_BYTES, limits.flag)
        if head[:64].lstrip()[:1] == b"{":
            return _json_upload(content, name, limits)
        if file_kind.is_pickle(head):
            raise UnsupportedMediaError(name, PICKLE_HINT)
        if formats.detect_fab(head) is None:
            raise UnsupportedMediaError(name, UNSUPPORTED)
    return _from_set(load_bytes(content, name, allow_pickle=False, limits=limits), name, limits)


def _kind(content: bytes) -> str:
    """`upload_format`, with a zip that is not an npz (a one-file zip of a fab file) as "compressed"."""
    from adrcs.data.npz_reader import is_npz

    kind = upload_format(content)
    return "compressed" if kind == "npz" and not is_npz(content) else kind


def needs_worker(content: bytes, name: str, limits: Any) -> bool:
    """True when the upload should be read in the worker process: compressed, or expanding to HEAVY_BODY or more
    (npz: by its members' sizes, checked from the zip directory)."""
    if len(content) >= heavy_parse.HEAVY_BODY:
        return True
    kind = _kind(content)
    return kind == "compressed" or (kind == "npz" and check_npz(content, name, limits) >= heavy_parse.HEAVY_BODY)


async def read_upload(parser: Any, filename: str | None, content: bytes, limits: Any) -> UploadedMaps:
    """`read_wafer_upload` in the parse slot: in the worker process for big or compressed uploads, else in a thread.
    Over a limit: InputTooLarge with `BIG_LOT_HINT`."""
    from fastapi.concurrency import run_in_threadpool

    name = upload_name(filename)
    try:
        if upload_format(content) == "pickle":  # refused at once, whatever its size
            raise UnsupportedMediaError(name, PICKLE_HINT)
        if needs_worker(content, name, limits):
            return await parser.run(read_wafer_upload, name, content, limits)
        async with parser.slot():
            return await run_in_threadpool(read_wafer_upload, name, content, limits)
    except InputTooLarge as e:
        raise InputTooLarge(e.path, f"{e.problem}; {BIG_LOT_HINT}") from None
