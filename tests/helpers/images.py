"""Inspection-image data on disk: DeepPCB-style detection folders, box sets with templates, class folders."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

DEEPPCB_SIDE = 96   # make_deeppcb's image side on disk
TINY_INPUT = 64     # tiny_detect_cfg's network input side
BRIGHT, DARK = 230, 20  # make_box_set's class 0 / class 1 rectangle grey levels


def _place_rectangles(rng: np.random.Generator, side: int, types: tuple[int, ...], lo: int, hi: int,
                      count: int | None = None) -> list[tuple[int, int, int, int, int]]:
    """Non-touching rectangles (x1, y1, x2, y2, type): 1-2 of each type (or `count`), sides in [lo, hi)."""
    boxes: list[tuple[int, int, int, int, int]] = []
    for t in types:
        for _ in range(int(rng.integers(1, 3)) if count is None else count):
            for _ in range(100):  # place without touching another rectangle
                w, h = (int(v) for v in rng.integers(lo, hi, 2))
                x, y = int(rng.integers(1, side - w - 1)), int(rng.integers(1, side - h - 1))
                if all(x + w < a or a2 < x or y + h < b or b2 < y for a, b, a2, b2, _ in boxes):
                    break
            boxes.append((x, y, x + w, y + h, t))
    return boxes


def make_deeppcb(root: Path, n: int = 6, side: int = DEEPPCB_SIDE, seed: int = 0) -> Path:
    """DeepPCB layout: imgs/<i>_test.jpg + imgs/<i>_temp.jpg, anns/<i>.txt ('x1 y1 x2 y2 type', types 1..2),
    and trainval.txt listing 'imgs/<i>.jpg anns/<i>.txt'. Returns the list file."""
    rng = np.random.default_rng(seed)
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    (root / "anns").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        base = (120 + rng.integers(0, 8, (side, side))).astype(np.uint8)
        img = base.copy()
        boxes = _place_rectangles(rng, side, (1, 2), 12, 28)
        for x1, y1, x2, y2, t in boxes:
            img[y1:y2, x1:x2] = 235 if t == 1 else 15
        Image.fromarray(img).save(root / "imgs" / f"{i:04d}_test.jpg", quality=95)
        Image.fromarray(base).save(root / "imgs" / f"{i:04d}_temp.jpg", quality=95)
        (root / "anns" / f"{i:04d}.txt").write_text("".join(f"{a} {b} {c} {d} {t}\n" for a, b, c, d, t in boxes))
        lines.append(f"imgs/{i:04d}.jpg anns/{i:04d}.txt")
    lst = root / "trainval.txt"
    lst.write_text("\n".join(lines) + "\n")
    return lst


def tiny_detect_cfg(**kw: Any) -> dict:
    """A detection config small enough for CPU tests (64 px input, slim FCOS, 5 epochs); `kw` overrides."""
    cfg = {"detector": "fcos_r18_slim", "detector_args": {}, "input_size": TINY_INPUT, "use_template": "auto",
           "image_mode": "L", "epochs": 5, "batch_size": 2, "eval_batch_size": 2, "optimizer": "adamw", "lr": 5e-3,
           "weight_decay": 1e-4, "scheduler": "cosine", "augment": "flips", "score_threshold": 0.3, "seed": 0,
           "device": "cpu", "num_workers": 0, "early_stopping_patience": 0, "progress": False, "val_fraction": 0.34}
    cfg.update(kw)
    from adrcs.config import load_config

    return load_config(None, {"task": "detect", **cfg})  # complete and type-checked, as the CLI would make it


def make_box_set(root: Path, n: int = 4, size: int = 128, seed: int = 0, empty_last: bool = False):
    """An ImageSet of `n` grey PNGs with 1-2 non-touching bright (class 0) and dark (class 1) rectangles each,
    plus defect-free templates; the last image defect-free if asked."""
    from adrcs.data.image_set import ImageSet

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths, temps, boxes, labels = [], [], [], []
    for i in range(n):
        base = (128 + rng.integers(0, 8, (size, size))).astype(np.uint8)
        img = base.copy()
        placed = _place_rectangles(rng, size, (0, 1), 14, 36, 0 if empty_last and i == n - 1 else None)
        for x1, y1, x2, y2, c in placed:
            img[y1:y2, x1:x2] = BRIGHT if c == 0 else DARK
        paths.append(root / f"img{i}_test.png")
        temps.append(root / f"img{i}_temp.png")
        Image.fromarray(img).save(paths[-1])
        Image.fromarray(base).save(temps[-1])
        boxes.append(np.array([b[:4] for b in placed], np.float32).reshape(-1, 4))
        labels.append(np.array([b[4] for b in placed], np.int64))
    meta = pd.DataFrame({"source": str(root), "index": np.arange(n), "format": "synthetic", "width": size,
                         "height": size})
    return ImageSet(paths, temps, boxes, labels, np.full(n, -1), ["bright", "dark"], meta)


def write_class_folders(root: Path, per_class: int = 10, size: int = 32, templates: bool = False,
                        seed: int = 0) -> Path:
    """Three class folders: a bright square, a dark bar, nothing (on a mid-grey noisy background)."""
    rng = np.random.default_rng(seed)
    for name in ("square", "bar", "clean"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            ref = (120 + rng.integers(0, 10, (size, size))).astype(np.uint8)
            img = ref.copy()
            x, y = rng.integers(2, size // 2, 2)
            if name == "square":
                img[y:y + 10, x:x + 10] = 250
            elif name == "bar":
                img[:, x:x + 4] = 10
            Image.fromarray(img).save(root / name / f"{name}{i}.png")
            if templates:
                Image.fromarray(ref).save(root / name / f"{name}{i}_temp.png")
    return root
