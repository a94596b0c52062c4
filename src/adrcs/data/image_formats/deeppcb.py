"""DeepPCB (github.com/tangsanli5201/DeepPCB): PCB image pairs with defect boxes.

A list file (``trainval.txt``, ``test.txt``) holds one ``image annotation`` pair per line, paths
relative to the list file's folder (absolute paths work too), e.g.::

    group20085/20085/20085000.jpg group20085/20085_not/20085000.txt

The listed image name has no suffix on disk: ``20085000.jpg`` stands for ``20085000_test.jpg``
(the defective image, the sample) and ``20085000_temp.jpg`` (its defect-free template). A file
literally named as listed is used when no ``_test`` file exists; a missing template is None.
Annotation lines are ``x1 y1 x2 y2 type`` in pixels with DeepPCB's type ids 1..6, which map
to `CLASS_NAMES` indices 0..5 (the format's own fixed definition).

Blank lines, ``#`` comments, comma or whitespace separators and CRLF line ends are accepted.
Given a folder, every list file in it (`LIST_NAMES`) is read and `meta["split"]` names the list.
Images carry boxes only: `labels` are -1 (see `ImageSet.dominant_labels`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from adrcs.data.image_formats._common import IMAGE_EXTS, check_box, image_size, make_meta, short
from adrcs.data.image_set import ImageSet
from adrcs.errors import InputError

NAME = "deeppcb"
CLASS_NAMES = ["open", "short", "mousebite", "spur", "copper", "pin-hole"]
LIST_NAMES = ("trainval.txt", "test.txt")
_NUMBER_SPLIT = re.compile(r"[,\s]+")


def sniff(path: str | Path, **kw: Any) -> bool:
    """A list file whose first entry is ``image.<ext> annotation.txt``, or a folder holding one."""
    p = Path(path)
    if p.is_dir():
        return any((p / n).is_file() and _looks_like_list(p / n) for n in LIST_NAMES)
    return p.is_file() and _looks_like_list(p)


def read(path: str | Path, *, verify: bool = False, **kw: Any) -> ImageSet:
    """Read a DeepPCB list file, or every list file (`LIST_NAMES`) of a folder."""
    p = Path(path)
    if not p.is_dir():
        return _read_list(p, verify)
    lists = [p / n for n in LIST_NAMES if (p / n).is_file()]
    if not lists:
        raise InputError(p, f"no DeepPCB list file ({' or '.join(LIST_NAMES)}) in the folder")
    sets = []
    for lst in lists:
        s = _read_list(lst, verify)
        s.meta["split"] = lst.stem
        sets.append(s)
    return sets[0] if len(sets) == 1 else ImageSet.concat(sets)


# ---------------------------------------------------------------- parsing


def _fields(line: str) -> list[str]:
    # comma-separated when there is a comma, else whitespace-separated
    return [f.strip() for f in line.split(",")] if "," in line else line.split()


def _looks_like_list(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            head = f.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    for line in head.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            f = _fields(line)
            return len(f) == 2 and Path(f[0]).suffix.lower() in IMAGE_EXTS and f[1].lower().endswith(".txt")
    return False


def _resolve(listed: Path) -> tuple[Path, Path | None]:
    """(sample image, template or None) for a listed image name."""
    stem, ext = listed.stem, listed.suffix
    if stem.endswith("_test"):
        stem = stem[: -len("_test")]
    test = listed.with_name(f"{stem}_test{ext}")
    image = test if test.is_file() or not listed.is_file() else listed
    temp = listed.with_name(f"{stem}_temp{ext}")
    return image, temp if temp.is_file() else None


def _read_list(lst: Path, verify: bool) -> ImageSet:
    base = lst.parent
    paths, templates, boxes, box_labels, sizes, anns, lines = [], [], [], [], [], [], []
    for n, line in enumerate(lst.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        f = _fields(line)
        if len(f) != 2:
            raise InputError(lst, f"line {n}: expected 'image annotation' (two paths), got {short(line)!r}")
        where = f"listed as {f[0]} in {lst.name} line {n}"
        image, template = _resolve(base / f[0])
        size = image_size(image, where=where, verify=verify)
        if template is not None:
            image_size(template, where=where, verify=verify)
        ann = base / f[1]
        if not ann.is_file():
            raise InputError(ann, f"annotation file not found ({where})")
        b, bl = _read_annotation(ann, size, image)
        paths.append(image)
        templates.append(template)
        boxes.append(b)
        box_labels.append(bl)
        sizes.append(size)
        anns.append(str(ann))
        lines.append(n)
    meta = make_meta(lst, NAME, sizes, {"annotation": anns, "line": lines})
    return ImageSet(paths=paths, templates=templates, boxes=boxes, box_labels=box_labels,
                    labels=np.full(len(paths), -1, np.int64), class_names=list(CLASS_NAMES), meta=meta)


def _read_annotation(ann: Path, size: tuple[int, int], image: Path) -> tuple[np.ndarray, np.ndarray]:
    boxes, labels = [], []
    for n, line in enumerate(ann.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = _NUMBER_SPLIT.split(line.strip())
        try:
            nums = [float(x) for x in parts]
        except ValueError:
            nums = []
        if len(nums) != 5:
            raise InputError(ann, f"line {n}: expected 5 numbers 'x1 y1 x2 y2 type', got {short(line)!r}")
        t = nums[4]
        if not (t.is_integer() and 1 <= t <= len(CLASS_NAMES)):
            known = ", ".join(f"{i} {c}" for i, c in enumerate(CLASS_NAMES, 1))
            raise InputError(ann, f"line {n}: unknown defect type {t:g} (DeepPCB types are {known})")
        check_box(ann, f"line {n}", nums[:4], size[0], size[1], image)
        boxes.append(nums[:4])
        labels.append(int(t) - 1)
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)
