"""A folder of class folders: ``root/<class name>/**/<image>`` (as torchvision's ImageFolder).

Every visible sub-folder of the root holding images is a class; class names are the sorted
folder names. Images are found at any depth inside a class folder; files directly in the root
are ignored (counted in ``notes["ignored_root_files"]``). Image extensions: `IMAGE_EXTS`, any case.

Reference images are not samples: a file whose stem ends in ``_temp``, ``_template`` or ``_ref``
is the template of the image beside it with the stem without that ending (``a.png`` ->
``a_ref.png``; DeepPCB-style ``a_test.jpg`` -> ``a_temp.jpg``), any image extension. Templates
without an image are counted in ``notes["orphan_templates"]``. No boxes: `boxes` are empty.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from adrcs.data.image_formats._common import image_size, is_image_name, make_meta
from adrcs.data.image_set import ImageSet, empty_boxes
from adrcs.errors import InputError

NAME = "class_folders"
TEMPLATE_ENDINGS = ("_temp", "_template", "_ref")


def sniff(path: str | Path, **kw: Any) -> bool:
    """A folder with at least one visible sub-folder holding an image."""
    p = Path(path)
    return p.is_dir() and any(_has_image(d) for d in _class_dirs(p))


def read(path: str | Path, *, verify: bool = False, **kw: Any) -> ImageSet:
    root = Path(path)
    if not root.is_dir():
        raise InputError(root, "expected a folder of class folders holding images")
    class_names, paths, templates, labels, sizes, orphans = [], [], [], [], [], 0
    for d in _class_dirs(root):
        samples, tmpl, n_orphans = _pair_templates(sorted(_images(d)))
        if not samples:
            continue
        class_names.append(d.name)
        for s in samples:
            where = f"in class folder {d.name}"
            sizes.append(image_size(s, where=where, verify=verify))
            t = tmpl.get(s)
            if t is not None:
                image_size(t, where=where, verify=verify)
            paths.append(s)
            templates.append(t)
            labels.append(len(class_names) - 1)
        orphans += n_orphans
    ignored = sum(1 for f in root.iterdir() if f.is_file() and is_image_name(f))
    meta = make_meta(root, NAME, sizes, {"folder": [class_names[i] for i in labels]})
    return ImageSet(paths=paths, templates=templates, boxes=[empty_boxes() for _ in paths],
                    box_labels=[np.zeros(0, np.int64) for _ in paths], labels=np.asarray(labels, np.int64),
                    class_names=class_names, meta=meta,
                    notes={"orphan_templates": orphans, "ignored_root_files": ignored})


def _class_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _images(folder: Path):
    for f in folder.rglob("*"):
        if is_image_name(f) and f.is_file() and not any(part.startswith(".") for part in f.relative_to(folder).parts):
            yield f


def _has_image(folder: Path) -> bool:
    return next(_images(folder), None) is not None


def _template_base(stem: str) -> str | None:
    """The image stem a template stem belongs to, or None when `stem` is not a template's."""
    low = stem.lower()
    for end in TEMPLATE_ENDINGS:
        if low.endswith(end) and len(stem) > len(end):
            return stem[: -len(end)]
    return None


def _pair_templates(files: list[Path]) -> tuple[list[Path], dict[Path, Path], int]:
    """Split files into samples and templates: (samples, {sample: template}, orphan count)."""
    templates = {}
    for f in files:
        base = _template_base(f.stem)
        if base is not None:
            templates.setdefault((f.parent, base.lower()), f)
    samples = [f for f in files if _template_base(f.stem) is None]
    pairs, used = {}, set()
    for s in samples:
        stem = s.stem.lower()
        bases = [stem] + ([stem[: -len("_test")]] if stem.endswith("_test") else [])
        for b in bases:
            t = templates.get((s.parent, b))
            if t is not None:
                pairs[s] = t
                used.add(t)
                break
    return samples, pairs, len(set(templates.values()) - used)
