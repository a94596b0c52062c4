"""Build a defect-patch classification set from DeepPCB (issue 21): one crop per annotated defect.

For every box of a DeepPCB list file (``trainval.txt``) the script cuts a square around the box
from the defective image (``NNN_test.jpg``) and the same square from its defect-free template
(``NNN_temp.jpg``): side = ``context`` x the box's longer side (at least ``--min-side`` pixels),
centred on the box; parts outside the 640 x 640 image are padded by repeating the border pixels
(the same for test and template, so |test - template| stays 0 there). Both crops are resized to
``--size`` x ``--size`` (Lanczos) and written as grey PNGs in the class-folder layout that
`adrcs train --config configs/images_classify.yaml --data OUT/train --val OUT/val` reads, the
template beside its patch (``use_template: auto`` then adds the template and |test - template|
channels, the paper's test-vs-template setup)::

    OUT/<split>/<class>/<image>_<k>.png        the defect patch (k: the box's line in the annotation)
    OUT/<split>/<class>/<image>_<k>_temp.png   the template crop
    OUT/manifest.csv                           one row per patch: split, group, class, files, source image and
                                               template (relative to the DeepPCB folder), box, crop window
    OUT/summary.json, OUT/summary.md           counts per split and class, groups per split, settings

Classes are DeepPCB's types 1..6: open, short, mousebite, spur, copper, pin-hole.

Splits are by group folder (the first folder of the listed image path, ``groupNNNNN``; a board
design per group), so no board design is in two splits. Default (`DEFAULT_SPLIT`): test =
group92000 (610 patches), val = group77000 (525), train = the other five groups (5,738): the two
mid-sized groups whose defects cover all six classes evenly (>= 71 patches of each class), leaving
~84 % of the patches to train on. ``--split TRAIN:VAL:TEST`` names other groups (comma-separated;
an empty TRAIN part means every other group), ``--split N`` (an integer) shuffles the groups with
seed N and takes one for test, one for val, the rest for train. The output is deterministic.

    python scripts/deeppcb_patches.py --data ../shared/data/deeppcb --out .data/deeppcb_patches
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import random
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np

CLASS_NAMES = ["open", "short", "mousebite", "spur", "copper", "pin-hole"]  # DeepPCB types 1..6
SPLITS = ("train", "val", "test")
DEFAULT_SPLIT = ":group77000:group92000"
MANIFEST_COLUMNS = ["split", "group", "class", "file", "template", "source_image", "source_template",
                    "box_index", "x1", "y1", "x2", "y2", "crop_x1", "crop_y1", "crop_x2", "crop_y2",
                    "other_boxes_in_crop"]


class PatchError(Exception):
    """A user-facing problem: printed as one line, exit code 2."""


# ---------------------------------------------------------------- reading


def find_list(data: Path) -> Path:
    """The DeepPCB list file: `data` itself, or ``trainval.txt`` in the folder `data`."""
    if not data.exists():
        raise PatchError(f"{data}: no such file or folder (pass --data PATH/TO/deeppcb)")
    lst = data / "trainval.txt" if data.is_dir() else data
    if not lst.is_file():
        raise PatchError(f"{data}: no trainval.txt in the folder (pass the DeepPCB folder or its list file)")
    return lst


def read_deeppcb(lst: Path):
    """The list's images with boxes (adrcs's DeepPCB reader) and each image's group folder."""
    from adrcs.data.image_formats import deeppcb
    from adrcs.errors import InputError

    try:
        ds = deeppcb.read(lst)
    except InputError as e:
        raise PatchError(str(e)) from None
    base = lst.parent.resolve()
    groups = []
    for p in ds.paths:
        rel = Path(p).resolve().relative_to(base) if Path(p).resolve().is_relative_to(base) else None
        groups.append(rel.parts[0] if rel is not None and len(rel.parts) > 1 else Path(p).parent.name)
    missing = [str(p) for p, t in zip(ds.paths, ds.templates) if t is None]
    if missing:
        raise PatchError(f"{missing[0]}: no template (_temp) image beside it ({len(missing)} images lack one)")
    return ds, groups


# ---------------------------------------------------------------- splitting


def assign_groups(groups: list[str], split: str) -> dict[str, str]:
    """{group: split name} from ``TRAIN:VAL:TEST`` group names or an integer seed."""
    names = sorted(set(groups))
    if split.strip().lstrip("-").isdigit():
        if len(names) < 3:
            raise PatchError(f"--split {split}: need at least 3 group folders, found {len(names)}")
        order = names[:]
        random.Random(int(split)).shuffle(order)
        return {g: "test" if i == 0 else "val" if i == 1 else "train" for i, g in enumerate(order)}
    parts = split.split(":")
    if len(parts) != 3:
        raise PatchError(f"--split {split!r}: expected TRAIN:VAL:TEST group names (TRAIN may be empty) or a seed")
    chosen = {s: [g.strip() for g in p.split(",") if g.strip()] for s, p in zip(SPLITS, parts)}
    out: dict[str, str] = {}
    for s in ("val", "test", "train"):
        if s != "train" and not chosen[s]:
            raise PatchError(f"--split {split!r}: no {s} group named")
        for g in chosen[s]:
            if g not in names:
                raise PatchError(f"--split: unknown group {g!r} (groups: {', '.join(names)})")
            if g in out:
                raise PatchError(f"--split: group {g!r} is in both {out[g]} and {s}")
            out[g] = s
    for g in names:
        if g not in out:
            if chosen["train"]:
                out[g] = "unused"
            else:
                out[g] = "train"
    if "train" not in out.values():
        raise PatchError(f"--split {split!r}: no group left to train on")
    return out


# ---------------------------------------------------------------- cropping


def crop_window(box, context: float, min_side: int) -> tuple[int, int, int, int]:
    """The square (x1, y1, x2, y2), x2/y2 exclusive, centred on `box`, side context x its longer side."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(int(math.ceil(max(x2 - x1, y2 - y1) * context)), int(min_side))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    return left, top, left + side, top + side


def cut(img: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """`window` of the 2-D image, padding by repeating the border where it leaves the image."""
    h, w = img.shape
    x1, y1, x2, y2 = window
    pad = (max(0, -y1), max(0, y2 - h)), (max(0, -x1), max(0, x2 - w))
    part = img[max(0, y1):min(h, y2), max(0, x1):min(w, x2)]
    return np.pad(part, pad, mode="edge") if any(sum(p) for p in pad) else part


def resize(a: np.ndarray, size: int):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(a)).resize((size, size), Image.LANCZOS)


def _rel(path, base: Path) -> str:
    """`path` relative to the DeepPCB folder when inside it (as the list file names it), else as given."""
    p, b = Path(path).resolve(), base.resolve()
    return p.relative_to(b).as_posix() if p.is_relative_to(b) else str(path)


def _overlaps(window, box) -> bool:
    x1, y1, x2, y2 = window
    return box[0] < x2 and box[2] > x1 and box[1] < y2 and box[3] > y1


# ---------------------------------------------------------------- building


def build(data: Path, out: Path, size: int = 64, context: float = 2.0, split: str = DEFAULT_SPLIT,
          min_side: int = 16, overwrite: bool = False, say=print) -> dict:
    """Write the patch set to `out`; returns the summary (also written as summary.json / .md)."""
    from PIL import Image

    if size < 8:
        raise PatchError(f"--size {size}: must be at least 8")
    if not context >= 1.0:
        raise PatchError(f"--context {context}: must be at least 1 (1 = the box alone)")
    lst = find_list(data)
    if (out / "manifest.csv").exists() and not overwrite:
        raise PatchError(f"{out}: already holds a patch set (manifest.csv); pass --overwrite to rebuild it")
    ds, groups = read_deeppcb(lst)
    where = assign_groups(groups, split)
    for s in SPLITS:
        if (out / s).exists():
            shutil.rmtree(out / s)
    rows = []
    order = sorted(range(len(ds)), key=lambda i: (groups[i], str(ds.paths[i])))
    for i in order:
        s = where[groups[i]]
        if s == "unused":
            continue
        test = np.asarray(Image.open(ds.paths[i]).convert("L"))
        temp = np.asarray(Image.open(ds.templates[i]).convert("L"))
        if temp.shape != test.shape:
            raise PatchError(f"{ds.templates[i]}: template is {temp.shape[1]}x{temp.shape[0]}, "
                             f"its image {test.shape[1]}x{test.shape[0]}")
        stem = Path(ds.paths[i]).stem
        stem = stem[: -len("_test")] if stem.endswith("_test") else stem
        boxes, labels = ds.boxes[i], ds.box_labels[i]
        for k, (box, lab) in enumerate(zip(boxes, labels)):
            cls = CLASS_NAMES[int(lab)]
            win = crop_window(box, context, min_side)
            folder = out / s / cls
            folder.mkdir(parents=True, exist_ok=True)
            f, t = folder / f"{stem}_{k}.png", folder / f"{stem}_{k}_temp.png"
            resize(cut(test, win), size).save(f)
            resize(cut(temp, win), size).save(t)
            others = sum(_overlaps(win, b) for j, b in enumerate(boxes) if j != k)
            rows.append({"split": s, "group": groups[i], "class": cls, "file": f.relative_to(out).as_posix(),
                         "template": t.relative_to(out).as_posix(), "source_image": _rel(ds.paths[i], lst.parent),
                         "source_template": _rel(ds.templates[i], lst.parent), "box_index": k,
                         **{c: int(round(float(v))) for c, v in zip(("x1", "y1", "x2", "y2"), box)},
                         **dict(zip(("crop_x1", "crop_y1", "crop_x2", "crop_y2"), win)),
                         "other_boxes_in_crop": int(others)})
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    summary = summarize(rows, where, dict(data=str(lst), size=size, context=context, min_side=min_side, split=split))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(summary_markdown(summary))
    for s in SPLITS:
        empty = [c for c in CLASS_NAMES if not summary["counts"][s].get(c)]
        if empty:
            say(f"warning: no {', '.join(empty)} patches in the {s} split")
    say(f"{len(rows)} patches ({size}x{size}, context {context:g}) -> {out}: " +
        ", ".join(f"{s} {summary['totals'][s]} ({'+'.join(summary['groups'][s])})" for s in SPLITS))
    return summary


def summarize(rows: list[dict], where: dict[str, str], settings: dict) -> dict:
    counts = {s: Counter(r["class"] for r in rows if r["split"] == s) for s in SPLITS}
    return {"settings": settings, "classes": CLASS_NAMES,
            "groups": {s: sorted(g for g, v in where.items() if v == s) for s in SPLITS + ("unused",)},
            "counts": {s: {c: counts[s].get(c, 0) for c in CLASS_NAMES} for s in SPLITS},
            "totals": {s: sum(counts[s].values()) for s in SPLITS},
            "images": {s: len({r["source_image"] for r in rows if r["split"] == s}) for s in SPLITS},
            "with_other_boxes_in_crop": {s: sum(1 for r in rows if r["split"] == s and r["other_boxes_in_crop"])
                                         for s in SPLITS}}


def summary_markdown(summary: dict) -> str:
    head = ["split", "groups", "images", *CLASS_NAMES, "total"]
    lines = ["# DeepPCB defect patches", "",
             "Settings: " + ", ".join(f"{k} {v}" for k, v in summary["settings"].items()), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in SPLITS:
        cells = [s, " ".join(summary["groups"][s]), summary["images"][s],
                 *(summary["counts"][s][c] for c in CLASS_NAMES), summary["totals"][s]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="DeepPCB folder (holding trainval.txt) or a list file")
    ap.add_argument("--out", type=Path, required=True, help="folder to write the patch set to")
    ap.add_argument("--size", type=int, default=64, help="patch side in pixels (the classifier's input size)")
    ap.add_argument("--context", type=float, default=2.0, help="crop side / the box's longer side")
    ap.add_argument("--min-side", type=int, default=16, help="smallest crop side in source pixels")
    ap.add_argument("--split", default=DEFAULT_SPLIT,
                    help=f"TRAIN:VAL:TEST group folders (comma-separated, empty TRAIN = the rest; "
                         f"default {DEFAULT_SPLIT}) or an integer seed")
    ap.add_argument("--overwrite", action="store_true", help="rebuild an existing patch set in --out")
    args = ap.parse_args(argv)
    try:
        build(args.data, args.out, args.size, args.context, args.split, args.min_side, args.overwrite)
    except PatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
