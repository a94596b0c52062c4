"""Detection metrics: COCO mAP (torchmetrics + pycocotools) and precision/recall/F1 at a score threshold.

Predictions and targets are in torchvision's format: one dict per image, ``boxes`` (K, 4)
x1 y1 x2 y2, ``labels`` (K,) int and, for predictions, ``scores`` (K,). Labels are 1-based by
default (label = class index + `label_offset`, 0 = background), as `DetectionDataset` and the
detectors produce them. The report is JSON-ready: plain Python numbers, None where undefined.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torchvision.ops import box_iou

__all__ = ["detection_report", "match_counts"]

Detections = Sequence[dict[str, Any]]


def _t(x: Any, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    t = torch.as_tensor(x if x is not None else np.zeros(shape), dtype=dtype).detach().cpu()
    return t.reshape(shape) if t.numel() == 0 else t


def _clean(d: dict[str, Any], with_scores: bool) -> dict[str, torch.Tensor]:
    """A CPU copy of one image's dict with the right dtypes and (0, 4) boxes when empty."""
    boxes = _t(d.get("boxes"), torch.float32, (0, 4)).reshape(-1, 4)
    out = {"boxes": boxes, "labels": _t(d.get("labels"), torch.int64, (0,)).reshape(-1)}
    if with_scores:
        scores = d.get("scores")
        out["scores"] = torch.ones(len(boxes)) if scores is None else _t(scores, torch.float32, (0,)).reshape(-1)
    if not len(boxes) == len(out["labels"]) == len(out.get("scores", out["labels"])):
        raise ValueError(f"boxes, labels and scores differ in length: {len(boxes)}, {len(out['labels'])}, "
                         f"{len(out.get('scores', out['labels']))}")
    return out


def _f(x: Any) -> float | None:
    """Plain float, None when undefined (NaN, or COCO's -1 for 'no ground truth')."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) and v >= 0 else None


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """Precision, recall, F1 with undefined ratios as 0.0."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1


def match_counts(preds: Detections, targets: Detections, num_classes: int, score_threshold: float = 0.5,
                 iou_threshold: float = 0.5, label_offset: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (tp, fp, fn) int arrays of length ``num_classes + 1`` after greedy matching.

    Per image and class, predictions with score >= `score_threshold` are taken in descending
    score order; each matches the unmatched ground-truth box of its class with the highest IoU
    when that IoU is >= `iou_threshold` (a true positive), else it is a false positive. Unmatched
    ground truth are false negatives. The last slot counts predictions whose label is no class
    (e.g. a background label 0): false positives that belong to no class.
    """
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} prediction dicts but {len(targets)} target dicts")
    k = int(num_classes)
    tp, fp, fn = (np.zeros(k + 1, np.int64) for _ in range(3))
    for pd_, gt_ in zip(preds, targets):
        p, g = _clean(pd_, True), _clean(gt_, False)
        keep = p["scores"] >= score_threshold
        pb, pl, ps = p["boxes"][keep], p["labels"][keep] - label_offset, p["scores"][keep]
        gb, gl = g["boxes"], g["labels"] - label_offset
        if ((gl < 0) | (gl >= k)).any():
            raise ValueError(f"target labels must be in {label_offset}..{k - 1 + label_offset}, "
                             f"got {g['labels'].tolist()}")
        fp[k] += int(((pl < 0) | (pl >= k)).sum())
        for c in range(k):
            pc, gc = pb[pl == c], gb[gl == c]
            order = torch.argsort(ps[pl == c], descending=True, stable=True)
            pc = pc[order]
            matched = np.zeros(len(gc), bool)
            iou = box_iou(pc, gc).numpy() if len(pc) and len(gc) else np.zeros((len(pc), len(gc)))
            for j in range(len(pc)):
                if len(gc):
                    cand = np.where(matched, -1.0, iou[j])  # already matched boxes are taken
                    best = int(np.argmax(cand))
                    if cand[best] >= iou_threshold:
                        matched[best] = True
                        tp[c] += 1
                        continue
                fp[c] += 1
            fn[c] += int((~matched).sum())
    return tp, fp, fn


def _coco_map(preds: list[dict], targets: list[dict], num_classes: int,
              label_offset: int) -> tuple[float | None, float | None, list[float | None]]:
    """(mAP@0.5, mAP@0.5:0.95, per-class AP@0.5) from torchmetrics' COCO evaluation."""
    from torchmetrics.detection import MeanAveragePrecision

    if not any(len(t["boxes"]) for t in targets):  # no ground truth at all: AP undefined
        return None, None, [None] * num_classes
    metric = MeanAveragePrecision(iou_type="bbox", class_metrics=True, extended_summary=True)
    metric.update(preds, targets)
    res = metric.compute()
    per_class: list[float | None] = [None] * num_classes
    classes = res["classes"].reshape(-1).tolist()
    prec = res["precision"]  # (iou thresholds, recall points, classes, areas, max dets); -1: no ground truth
    for j, label in enumerate(classes):
        c = int(label) - label_offset
        if 0 <= c < num_classes:
            curve = prec[0, :, j, 0, -1]  # IoU 0.5, all areas, most detections
            # 6 digits: COCO's precision is tp / (tp + fp + eps), a perfect class would give 0.999...
            per_class[c] = round(float(curve.mean()), 6) if bool((curve > -1).all()) else None
    return _f(res["map_50"]), _f(res["map"]), per_class


def detection_report(preds: Detections, targets: Detections, class_names: Sequence[str],
                     score_threshold: float = 0.5, iou_threshold: float = 0.5,
                     label_offset: int = 1) -> dict[str, Any]:
    """Detection quality of `preds` against `targets`, one dict per image each.

    Returns ``map_50``, ``map_50_95`` (COCO, all scores, macro over classes with ground truth),
    ``per_class_ap`` ({class: AP@0.5, None for a class without ground truth}), micro
    ``precision``/``recall``/``f1`` over all classes at `score_threshold` (greedy matching by
    IoU >= `iou_threshold` within a class, see `match_counts`), ``per_class`` ({class: {precision,
    recall, f1, support}}; support = ground-truth boxes), ``score_threshold`` and ``n_images``.
    mAPs are None when there is no ground-truth box at all.
    """
    names = [str(c) for c in class_names]
    k = len(names)
    p = [_clean(d, True) for d in preds]
    t = [_clean(d, False) for d in targets]
    tp, fp, fn = match_counts(p, t, k, score_threshold, iou_threshold, label_offset)
    map_50, map_50_95, ap = _coco_map(p, t, k, label_offset)
    precision, recall, f1 = _prf(tp.sum(), fp.sum(), fn.sum())
    per_class = {}
    for c, name in enumerate(names):
        pc, rc, fc = _prf(tp[c], fp[c], fn[c])
        per_class[name] = {"precision": pc, "recall": rc, "f1": fc, "support": int(tp[c] + fn[c])}
    return {
        "map_50": map_50,
        "map_50_95": map_50_95,
        "per_class_ap": {name: ap[c] for c, name in enumerate(names)},
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "per_class": per_class,
        "score_threshold": float(score_threshold),
        "n_images": len(p),
    }


def best_f1_threshold(preds: Detections, targets: Detections, num_classes: int, label_offset: int = 1,
                      candidates: Sequence[float] | None = None) -> tuple[float, float]:
    """The score threshold with the best micro F1 (IoU 0.5) on these predictions: (threshold, F1).

    Meant for a validation split (never the data reported on). Ties go to the lower threshold.
    """
    grid = list(candidates) if candidates is not None else [round(0.05 * i, 2) for i in range(2, 19)]
    best = (grid[0], -1.0)
    for t in grid:
        tp, fp, fn = (int(v.sum()) for v in match_counts(preds, targets, num_classes, t, label_offset=label_offset))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        if f1 > best[1] + 1e-12:
            best = (float(t), f1)
    return best
