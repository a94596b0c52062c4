"""Box score calibration: greedy per-class matching on hand-made boxes, Platt / temperature fits on synthetic
over-confident scores (ECE down, per-class order kept), identity for classes without enough evidence, plain-data
state through a weights_only checkpoint."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from adrcs.inference.box_calibration import (MIN_BOXES, BoxScoreCalibration, box_reliability, calibrate_detections,
                                             match_boxes)


def _det(boxes, labels, scores=None):
    d = {"boxes": np.array(boxes, np.float32).reshape(-1, 4), "labels": np.array(labels, np.int64)}
    if scores is not None:
        d["scores"] = np.array(scores, np.float32)
    return d


def test_match_boxes_greedy_per_class_by_descending_score():
    gt = _det([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0, 0, 1])
    pred = _det([[0, 0, 10, 10],      # 0: class 0 on GT 0, but the lower score: GT 0 taken by box 1
                 [1, 0, 11, 10],      # 1: class 0, IoU 0.82 with GT 0, higher score -> hit
                 [20, 20, 30, 30],    # 2: class 1 on a class-0 GT -> miss (wrong class)
                 [40, 40, 50, 50],    # 3: class 1 on GT 2 -> hit
                 [20, 20, 26, 30],    # 4: class 0, IoU 0.6 with GT 1 -> hit
                 [40, 45, 50, 55]],   # 5: class 1, IoU 1/3 with GT 2 -> miss
                [0, 0, 1, 1, 0, 1], [0.6, 0.9, 0.8, 0.7, 0.3, 0.95])
    s, c, h = match_boxes([pred], [gt])
    assert s.dtype == np.float64 and c.dtype == np.int64 and h.dtype == bool
    np.testing.assert_allclose(s, [0.6, 0.9, 0.8, 0.7, 0.3, 0.95], atol=1e-6)  # the preds' order, not sorted
    assert c.tolist() == [0, 0, 1, 1, 0, 1]
    assert h.tolist() == [False, True, False, True, True, False]
    assert h.sum() <= len(gt["boxes"])  # a ground-truth box matches at most one prediction


def test_match_boxes_iou_threshold_images_and_empty():
    gt = [_det([[0, 0, 10, 10]], [0]), _det([], [])]
    pred = [_det([[0, 0, 10, 6]], [0], [0.5]), _det([[0, 0, 5, 5]], [0], [0.9])]  # IoU 0.6; no GT in image 2
    assert match_boxes(pred, gt)[2].tolist() == [True, False]
    assert match_boxes(pred, gt, iou=0.7)[2].tolist() == [False, False]
    raw = [{**p, "raw_scores": p["scores"] * 0 + 0.1} for p in pred]
    np.testing.assert_allclose(match_boxes(raw, gt, score_key="raw_scores")[0], [0.1, 0.1], atol=1e-6)
    s, c, h = match_boxes([], [])
    assert len(s) == len(c) == len(h) == 0
    with pytest.raises(ValueError, match="target"):
        match_boxes(pred, gt[:1])


def _overconfident(rng, n, k=2, shift=True):
    """Scores that overstate the hit probability q, differently per class: a spread (what a temperature
    undoes) and, with `shift`, a shift of the logit (what only Platt's intercept undoes)."""
    c = rng.integers(0, k, n)
    q = rng.beta(1.0, 3.0, n)  # detectors: mostly misses
    hits = rng.random(n) < q
    z = np.log(q / (1 - q))
    z = np.where(c == 0, 2.5 * z + 1.5 * shift, 1.5 * z + 2.5 * shift)
    return 1 / (1 + np.exp(-z)), c, hits


@pytest.mark.parametrize("method", ["platt", "temperature"])
def test_fit_lowers_ece_and_keeps_per_class_order(method):
    rng = np.random.default_rng(0)
    s, c, h = _overconfident(rng, 3000, shift=False)
    s_test, c_test, h_test = _overconfident(rng, 3000, shift=False)
    cal = BoxScoreCalibration(2, method).fit(s, c, h)
    assert cal.fitted.all() and (cal.a > 0).all()
    before = box_reliability(s_test, h_test)
    after = box_reliability(cal.apply(s_test, c_test), h_test)
    assert after["ece"] < 0.5 * before["ece"], (before["ece"], after["ece"])
    assert before["n_bins"] == 15 and after["n"] == len(s_test)
    out = cal.apply(s_test, c_test)
    for k in range(2):
        m = c_test == k
        assert np.all(np.diff(out[m][np.argsort(s_test[m], kind="stable")]) >= 0)  # monotone per class
    if method == "temperature":
        assert (cal.b == 0).all()


def test_platt_beats_temperature_on_a_shifted_class():
    rng = np.random.default_rng(1)
    s, c, h = _overconfident(rng, 4000)
    s_test, c_test, h_test = _overconfident(rng, 4000)
    ece = {m: box_reliability(BoxScoreCalibration(2, m).fit(s, c, h).apply(s_test, c_test), h_test)["ece"]
           for m in ("platt", "temperature")}
    assert ece["platt"] < 0.5 * ece["temperature"], ece


def test_identity_for_few_boxes_or_one_outcome():
    rng = np.random.default_rng(2)
    s = rng.random(40)
    c = np.array([0] * (MIN_BOXES - 1) + [1] * 15 + [2] * 16)
    h = np.zeros(40, bool)
    h[:3] = True            # class 0: enough outcomes but too few boxes
    h[MIN_BOXES - 1:MIN_BOXES - 1 + 15] = False  # class 1: misses only
    h[-8:] = True           # class 2: both outcomes, 16 boxes -> fitted
    cal = BoxScoreCalibration(3).fit(s, c, h)
    assert cal.fitted.tolist() == [False, False, True]
    assert cal.counts.tolist() == [MIN_BOXES - 1, 15, 16] and cal.hit_counts.tolist() == [3, 0, 8]
    out = cal.apply(s, c)
    np.testing.assert_array_equal(out[c < 2], s[c < 2])
    np.testing.assert_array_equal(cal.apply([0.3, 0.4], [-1, 7]), [0.3, 0.4])  # unknown classes kept
    assert cal.params(["a", "b", "c"])["b"] == {"a": 1.0, "b": 0.0, "temperature": 1.0, "fitted": False,
                                                "boxes": 15, "hits": 0}


def test_state_round_trip_weights_only(tmp_path):
    rng = np.random.default_rng(3)
    s, c, h = _overconfident(rng, 500)
    cal = BoxScoreCalibration(2).fit(s, c, h)
    torch.save({"score_calibration": cal.state()}, tmp_path / "ck.pt")
    back = BoxScoreCalibration.from_state(torch.load(tmp_path / "ck.pt", weights_only=True)["score_calibration"])
    assert back.method == "platt" and back.num_classes == 2
    np.testing.assert_array_equal(back.apply(s, c), cal.apply(s, c))
    assert back.fitted.tolist() == cal.fitted.tolist() and back.counts.tolist() == cal.counts.tolist()


def test_calibrate_detections_keeps_raw_scores():
    cal = BoxScoreCalibration(1, a=[2.0], b=[-1.0], fitted=[True])
    det = _det([[0, 0, 1, 1], [0, 0, 2, 2]], [0, 0], [0.2, 0.7])
    out = calibrate_detections(det, cal)
    np.testing.assert_array_equal(out["raw_scores"], det["scores"])
    expect = 1 / (1 + np.exp(-(2 * np.log(det["scores"] / (1 - det["scores"])) - 1)))
    np.testing.assert_allclose(out["scores"], expect, rtol=1e-5)
    assert out["scores"].dtype == np.float32
    np.testing.assert_allclose(calibrate_detections(out, cal)["scores"], out["scores"])  # from raw, not twice
    assert calibrate_detections(det, None) is det


def test_rejects_decreasing_maps_and_bad_shapes():
    with pytest.raises(ValueError, match="increasing"):
        BoxScoreCalibration(1, a=[-1.0], b=[0.0])
    with pytest.raises(ValueError, match="method"):
        BoxScoreCalibration(1, method="isotonic")
    with pytest.raises(ValueError, match="entries"):
        BoxScoreCalibration(2, a=[1.0])
