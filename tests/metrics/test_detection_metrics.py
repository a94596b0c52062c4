"""adrcs.metrics.detection: COCO mAP plus greedy precision/recall/F1, JSON-ready."""
from __future__ import annotations

import json

import pytest
import torch

from adrcs.metrics.detection import detection_report, match_counts

NAMES = ["open", "short", "spur"]
KEYS = {"map_50", "map_50_95", "per_class_ap", "precision", "recall", "f1", "per_class", "score_threshold",
        "n_images"}


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {"boxes": torch.tensor([[10.0, 10.0, 50.0, 40.0], [60.0, 60.0, 90.0, 100.0]]), "labels": torch.tensor([1, 2])},
        {"boxes": torch.tensor([[5.0, 5.0, 25.0, 25.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},  # defect-free image
    ]


def _perfect(targets) -> list[dict[str, torch.Tensor]]:
    return [{"boxes": t["boxes"].clone(), "labels": t["labels"].clone(), "scores": torch.full((len(t["labels"]),), 0.9)}
            for t in targets]


def test_perfect_predictions():
    t = _targets()
    r = detection_report(_perfect(t), t, NAMES)
    assert set(r) == KEYS
    assert r["map_50"] == pytest.approx(1.0) and r["map_50_95"] == pytest.approx(1.0)
    assert r["precision"] == r["recall"] == r["f1"] == 1.0
    assert r["per_class_ap"] == {"open": 1.0, "short": 1.0, "spur": None}  # spur never present: None, not NaN
    assert r["per_class"]["open"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert r["per_class"]["spur"]["support"] == 0
    assert r["n_images"] == 3 and r["score_threshold"] == 0.5
    json.dumps(r, allow_nan=False)


def test_shifted_box_is_a_miss():
    t = _targets()
    p = _perfect(t)
    p[0]["boxes"][1] += torch.tensor([20.0, 25.0, 20.0, 25.0])  # IoU with its box ~0.2 < 0.5
    r = detection_report(p, t, NAMES)
    assert r["per_class"]["short"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["per_class_ap"]["short"] == 0.0 and r["per_class_ap"]["open"] == 1.0
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["map_50"] == pytest.approx(0.5)
    json.dumps(r, allow_nan=False)


def test_wrong_class_low_score_and_duplicates():
    t = _targets()
    p = _perfect(t)
    p[0]["labels"][1] = 3  # right place, wrong class: a false positive (spur) and a miss (short)
    p[1]["scores"][:] = 0.3  # below the score threshold: a miss for P/R/F1, still ranked for mAP
    tp, fp, fn = match_counts(p, t, len(NAMES))
    assert tp.tolist() == [1, 0, 0, 0] and fp.tolist() == [0, 0, 1, 0] and fn.tolist() == [1, 1, 0, 0]
    assert detection_report(p, t, NAMES)["per_class_ap"]["open"] == pytest.approx(1.0)
    dup = _perfect(t)
    dup[1] = {k: torch.cat([v, v]) for k, v in dup[1].items()}  # the same box twice: one TP, one FP
    tp, fp, fn = match_counts(dup, t, len(NAMES))
    assert (tp[0], fp[0], fn[0]) == (2, 1, 0)


def test_missing_predictions_and_no_ground_truth():
    t = _targets()
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}] * 3
    r = detection_report(empty, t, NAMES)
    assert r["map_50"] == 0.0 and r["recall"] == 0.0 and r["precision"] == 0.0
    r = detection_report(empty[:1], t[2:], NAMES)  # nothing to find: AP undefined
    assert r["map_50"] is None and r["map_50_95"] is None and set(r["per_class_ap"].values()) == {None}
    json.dumps(r, allow_nan=False)
    lists = [{"boxes": [[10, 10, 50, 40]], "labels": [1], "scores": [0.8]}]  # plain lists work too
    assert detection_report(lists, [{"boxes": [[10, 10, 50, 40]], "labels": [1]}], NAMES)["f1"] == 1.0


def test_background_label_and_offset():
    t = _targets()
    p = _perfect(t)
    p[2] = {"boxes": torch.tensor([[1.0, 1.0, 9.0, 9.0]]), "labels": torch.tensor([0]), "scores": torch.tensor([0.9])}
    tp, fp, fn = match_counts(p, t, len(NAMES))
    assert fp[-1] == 1 and tp.sum() == 3  # background predictions are false positives of no class
    zero_based = [{**d, "labels": d["labels"] - 1} for d in _perfect(t)]
    t0 = [{**d, "labels": d["labels"] - 1} for d in t]
    assert detection_report(zero_based, t0, NAMES, label_offset=0)["f1"] == 1.0
    with pytest.raises(ValueError, match="target labels"):
        detection_report(zero_based, t0, NAMES)  # 0-based targets with the default offset


def test_best_f1_threshold_picks_the_score_that_separates():
    from adrcs.metrics.detection import best_f1_threshold

    gt = {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([1, 1])}
    pred = {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]),
            "labels": torch.tensor([1, 1, 1]), "scores": torch.tensor([0.9, 0.6, 0.4])}
    thr, f1 = best_f1_threshold([pred], [gt], num_classes=1)
    assert 0.4 < thr <= 0.6 and f1 == 1.0
    thr, f1 = best_f1_threshold([pred], [gt], num_classes=1, candidates=[0.95])
    assert thr == 0.95 and f1 == 0.0
