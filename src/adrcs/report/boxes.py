"""Detection output: annotated images (PIL), prediction tables (JSON + CSV), a per-class AP chart.

`draw_detections` draws predicted boxes in a colour per class with a "class 0.93" tag, and the
ground truth (optional) as thin dashed boxes (white and black dashes: visible on any PCB area).
`write_predictions` writes a prediction folder: ``predictions.json``, ``predictions.csv`` and
``annotated/<image stem>.png``.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from adrcs.data.image_set import ImageSet

__all__ = ["CLASS_COLOURS", "annotate", "annotated_names", "class_colour", "draw_detections", "plot_per_class_ap",
           "write_predictions"]

# tab10: distinct on grey PCB images
CLASS_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                 (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127)]
GT_COLOUR = (255, 255, 255)
GT_DASHES = (GT_COLOUR, (0, 0, 0))  # ground truth: alternating white and black dashes


def class_colour(c: int) -> tuple[int, int, int]:
    """RGB colour of class index `c` (cycles after 10 classes; grey for a negative index)."""
    return CLASS_COLOURS[int(c) % len(CLASS_COLOURS)] if int(c) >= 0 else (127, 127, 127)


def _as_rgb(image: np.ndarray):
    from PIL import Image

    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {a.shape}")
    return Image.fromarray(a).convert("RGB")


def _dashed_rectangle(draw, box: Sequence[float], colours: Sequence[Any], width: int = 1, dash: int = 4) -> None:
    """A rectangle outline of `dash` px segments cycling through `colours` (PIL has no dashed outline).

    White and black dashes stay visible on the white and black areas of a PCB image alike.
    """
    x1, y1, x2, y2 = box
    for a, b, fixed, horizontal in ((x1, x2, y1, True), (x1, x2, y2, True), (y1, y2, x1, False), (y1, y2, x2, False)):
        t, k = a, 0
        while t < b:
            e = min(t + dash, b)
            seg = [(t, fixed), (e, fixed)] if horizontal else [(fixed, t), (fixed, e)]
            draw.line(seg, fill=colours[k % len(colours)], width=width)
            t, k = t + dash, k + 1


def draw_detections(image: np.ndarray, boxes: Any, labels: Any, scores: Any, class_names: Sequence[str],
                    path: str | Path, gt_boxes: Any = None, gt_labels: Any = None) -> Path:
    """Write `image` as a PNG with its detections drawn on it (`annotate`); returns the path."""
    im = annotate(image, boxes, labels, scores, class_names, gt_boxes, gt_labels)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format="PNG")
    return path


def annotate(image: np.ndarray, boxes: Any, labels: Any, scores: Any, class_names: Sequence[str],
             gt_boxes: Any = None, gt_labels: Any = None):
    """`image` (uint8 (H, W) or (H, W, 3)) as an RGB PIL image with its detections drawn on it.

    boxes (K, 4) x1 y1 x2 y2 in the image's pixels, labels (K,) 0-based class indices into
    `class_names`, scores (K,) or None. Each predicted box gets its class colour and a tag
    "class 0.93" (the best-scoring box drawn last, on top); ground truth (`gt_boxes`, optional) is
    drawn first as thin dashed white/black boxes, with the class name in small print (white on black) when
    `gt_labels` is given.
    """
    from PIL import ImageDraw, ImageFont

    im = _as_rgb(image)
    draw = ImageDraw.Draw(im)
    w, h = im.size
    font = ImageFont.load_default()
    line = max(1, round(min(w, h) / 320))  # 2 px on a 640 px image
    names = [str(c) for c in class_names]

    def name(c: int) -> str:
        return names[c] if 0 <= c < len(names) else f"class {c}"

    if gt_boxes is not None:
        gb = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
        gl = None if gt_labels is None else np.asarray(gt_labels).reshape(-1)
        for j, b in enumerate(gb):
            _dashed_rectangle(draw, b.tolist(), GT_DASHES, width=1)
            if gl is not None and j < len(gl):  # small white name on black, below the box (above at the bottom)
                tx1, ty1, tx2, ty2 = draw.textbbox((0, 0), name(int(gl[j])), font=font)
                tw, th = tx2 - tx1 + 2, ty2 - ty1 + 2
                x = min(max(float(b[0]), 0.0), max(w - tw, 0))
                y = float(b[3]) + 1 if float(b[3]) + 1 + th <= h else max(float(b[1]) - th - 1, 0.0)
                draw.rectangle([x, y, x + tw, y + th], fill=(0, 0, 0))
                draw.text((x + 1 - tx1, y + 1 - ty1), name(int(gl[j])), fill=GT_COLOUR, font=font)
    pb = np.asarray(boxes, np.float32).reshape(-1, 4)
    pl = np.asarray(labels).reshape(-1).astype(int)
    ps = None if scores is None else np.asarray(scores, np.float32).reshape(-1)
    for j in np.argsort(-ps if ps is not None else np.zeros(len(pb)), kind="stable")[::-1]:  # best drawn last
        x1, y1, x2, y2 = (float(v) for v in pb[j])
        colour = class_colour(pl[j])
        draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=colour, width=line)
        tag = name(int(pl[j])) + (f" {ps[j]:.2f}" if ps is not None else "")
        tx1, ty1, tx2, ty2 = draw.textbbox((0, 0), tag, font=font)
        tw, th = tx2 - tx1 + 4, ty2 - ty1 + 4
        ty = y1 - th if y1 - th >= 0 else y1  # above the box, or inside it at the top edge
        tx = min(max(x1, 0.0), max(w - tw, 0))
        draw.rectangle([tx, ty, tx + tw, ty + th], fill=colour)
        draw.text((tx + 2 - tx1, ty + 2 - ty1), tag, fill=(255, 255, 255), font=font)
    return im


def annotated_names(paths: Sequence[str | Path]) -> list[str]:
    """PNG file names per image: the image stem, with ``_2``, ``_3`` ... when stems repeat."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = Path(p).stem
        n = seen.get(stem.lower(), 0) + 1
        seen[stem.lower()] = n
        out.append(f"{stem}.png" if n == 1 else f"{stem}_{n}.png")
    return out


def write_predictions(preds: Sequence[dict[str, Any]], images: ImageSet, class_names: Sequence[str],
                      out_dir: str | Path, *, annotate: bool = True, max_annotated: int | None = None,
                      ground_truth: bool = True, extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write `preds` (one dict per image of `images`: boxes, 0-based labels, scores) into `out_dir`.

    predictions.json: ``{"class_names", "n_images", "n_boxes", **extra, "images": [{"path",
    "template", "width", "height", "annotated", "boxes": [{class, score, x1, y1, x2, y2}]}]}``.
    predictions.csv: one row per box (image, class, score, x1, y1, x2, y2); an image without
    boxes has no row (but is in the JSON).
    annotated/<image stem>.png (when `annotate`; the first `max_annotated` images if given):
    the image with its predictions and, when `ground_truth` and the image has boxes, its ground
    truth (class names of `images`). Returns (json path, csv path).
    """
    if len(preds) != len(images):
        raise ValueError(f"{len(preds)} predictions for {len(images)} images")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [str(c) for c in class_names]
    png_names = annotated_names(images.paths)
    n_draw = len(images) if max_annotated is None else min(int(max_annotated), len(images))
    entries, rows = [], []
    for i, p in enumerate(preds):
        boxes = np.asarray(p["boxes"], np.float32).reshape(-1, 4)
        labels = np.asarray(p["labels"]).reshape(-1).astype(int)
        scores = np.asarray(p["scores"], np.float32).reshape(-1)
        order = np.argsort(-scores, kind="stable")
        items = []
        for j in order:
            cls = names[labels[j]] if 0 <= labels[j] < len(names) else str(labels[j])
            x1, y1, x2, y2 = (round(float(v), 2) for v in boxes[j])
            items.append({"class": cls, "score": round(float(scores[j]), 4), "x1": x1, "y1": y1, "x2": x2, "y2": y2})
            rows.append([str(images.paths[i]), cls, items[-1]["score"], x1, y1, x2, y2])
        annotated = None
        if annotate and i < n_draw:
            img = images.read_image(i, "RGB")
            gt_b = gt_l = None
            if ground_truth and len(images.boxes[i]):
                gt_b = images.boxes[i]
                gt_l = [names.index(images.class_names[c]) if images.class_names[c] in names else -1
                        for c in images.box_labels[i]]
            annotated = draw_detections(img, boxes, labels, scores, names, out_dir / "annotated" / png_names[i],
                                        gt_boxes=gt_b, gt_labels=gt_l)
        t = images.templates[i]
        entries.append({
            "path": str(images.paths[i]), "template": None if t is None else str(t),
            "width": int(p.get("width", 0)) or None, "height": int(p.get("height", 0)) or None,
            "annotated": None if annotated is None else str(annotated.relative_to(out_dir)),
            "boxes": items,
        })
    doc = {"class_names": names, "n_images": len(entries), "n_boxes": len(rows), **(extra or {}), "images": entries}
    json_path = out_dir / "predictions.json"
    json_path.write_text(json.dumps(doc, indent=2))
    csv_path = out_dir / "predictions.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "class", "score", "x1", "y1", "x2", "y2"])
        writer.writerows(rows)
    return json_path, csv_path


def plot_per_class_ap(report: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Bar chart of `report['per_class_ap']` (AP@0.5 per class; a class without ground truth is marked n/a)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = report.get("per_class_ap") or {}
    names = list(ap)
    values = [v if v is not None else 0.0 for v in ap.values()]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 1.5), 3.6))
    bars = ax.bar(range(len(names)), values, color=[np.array(class_colour(i)) / 255 for i in range(len(names))])
    for b, v in zip(bars, ap.values()):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.02, "n/a" if v is None else f"{v:.2f}",
                ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("AP@0.5")
    m = report.get("map_50")
    ax.set_title(title or ("per-class AP@0.5" + (f" (mAP@0.5 {m:.3f})" if m is not None else "")))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    from adrcs.report.plots import save_figure

    return save_figure(fig, path, tight=False)
