"""`--data` / `--train` / `--val` paths as the user gives them: files, folders (searched recursively for wafer-map
files of any supported format) and globs (``'lots/**/*.stdf.gz'``, quoted so the shell leaves it alone)."""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Iterable

from adrcs.errors import InputError

# Suffixes of wafer-map files a folder search takes without looking inside (after a compression suffix).
MAP_SUFFIXES = {".pkl", ".pickle", ".npz", ".stdf", ".std", ".klarf", ".klf", ".kla", ".sinf", ".xml", ".e142",
                ".g85"}
COMPRESSION_SUFFIXES = {".gz", ".xz", ".bz2", ".zst", ".zip"}
# Never wafer maps: skipped in folders without opening them.
OTHER_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".csv", ".json", ".md", ".yaml", ".yml",
                  ".html", ".py", ".ckpt", ".pt", ".log", ".pdf"}
GLOB_CHARS = set("*?[")
MAX_FILES = 100_000


def _suffix(p: Path) -> str:
    """The data suffix of `p`, looking through one compression suffix (``a.stdf.gz`` -> ``.stdf``)."""
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def looks_like_map_file(p: Path) -> bool:
    """Whether a folder search should try `p`: a known wafer-map suffix, or an unknown suffix whose first bytes
    a wafer-map reader recognises (KLARF files often end in ``.000``; SINF files in ``.txt``)."""
    if p.name.startswith(".") or not p.is_file():
        return False
    suffix = _suffix(p)
    if suffix in MAP_SUFFIXES:
        return True
    if suffix in OTHER_SUFFIXES:
        return False
    return _sniffed(p)


def _sniffed(p: Path) -> bool:
    from adrcs.data import file_kind, formats
    from adrcs.data.bounded_io import decoded_head
    from adrcs.data.limits import DEFAULT_LIMITS

    try:
        head = decoded_head(p, str(p), DEFAULT_LIMITS.max_uncompressed_bytes, formats.FAB_HEAD_BYTES)
    except (InputError, OSError):
        return False
    return bool(head) and (formats.detect_fab(head) is not None or file_kind.is_pickle(head))


def expand_data_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files to read for `paths`: a file as given; a folder: its wafer-map files, recursively, sorted; a glob
    (``*``, ``?``, ``[``; ``**`` recurses): its matches, sorted. InputError naming the path when a folder or
    glob holds no wafer-map file or a path does not exist."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists() and GLOB_CHARS & set(str(raw)):
            matches = sorted(Path(m) for m in glob.glob(str(raw), recursive=True))
            files = [m for m in matches if m.is_file()]
            for d in (m for m in matches if m.is_dir()):
                files += _folder(d)
            if not files:
                raise InputError(raw, "matches no files")
            out += files
        elif p.is_dir() and not _image_layout(p):
            files = _folder(p)
            if not files:
                raise InputError(p, "holds no wafer-map files (searched recursively: .pkl, .npz, .stdf, .klarf, "
                                    ".sinf, .xml, ... also compressed)")
            out += files
        else:
            out.append(p)  # a file, a missing path (the loader names it) or an image layout (the loader says so)
        if len(out) > MAX_FILES:
            raise InputError(raw, f"names more than {MAX_FILES} files")
    return list(dict.fromkeys(out))


def _folder(d: Path) -> list[Path]:
    return sorted(f for f in d.rglob("*") if looks_like_map_file(f))


def _image_layout(p: Path) -> bool:
    """A DeepPCB / VOC / class-folder tree: image data, which the loader refuses by name, not searched here."""
    from adrcs.data.image_formats import detect

    try:
        return detect(p) is not None
    except Exception:  # noqa: BLE001 - not an image layout
        return False
