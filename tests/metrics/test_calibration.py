"""Calibration report: ECE / MCE equal torchmetrics' and the reliability table adds up."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_calibration_error, multiclass_calibration_error

from adrcs.metrics.calibration import calibration_report, risk_coverage


def _probs(rng: np.random.Generator, n: int, k: int, sharpness: float) -> np.ndarray:
    z = rng.normal(size=(n, k)) * sharpness
    return torch.softmax(torch.from_numpy(z), dim=1).numpy()


@pytest.mark.parametrize("n_bins", [15, 10])
def test_single_label_equals_torchmetrics(rng, n_bins):
    probs = _probs(rng, 3000, 9, 2.5)
    labels = rng.integers(0, 9, 3000)
    labels[:1500] = probs[:1500].argmax(axis=1)  # half right for sure: a mix of confidence levels
    rep = calibration_report(probs, labels, multilabel=False, n_bins=n_bins)
    p, y = torch.from_numpy(probs), torch.from_numpy(labels)
    ece = multiclass_calibration_error(p, y, num_classes=9, n_bins=n_bins, norm="l1").item()
    mce = multiclass_calibration_error(p, y, num_classes=9, n_bins=n_bins, norm="max").item()
    assert rep["ece"] == pytest.approx(ece, abs=1e-6)
    assert rep["mce"] == pytest.approx(mce, abs=1e-6)
    assert rep["n"] == 3000 and len(rep["bins"]) == n_bins
    assert sum(b["count"] for b in rep["bins"]) == 3000
    assert rep["bins"][0]["lo"] == 0.0 and rep["bins"][-1]["hi"] == 1.0


def test_multilabel_bins_every_label_probability(rng):
    probs = 1.0 / (1.0 + np.exp(-rng.normal(size=(800, 8)) * 2))
    labels = (rng.random((800, 8)) < probs ** 0.5).astype(int)  # under-confident forecasts
    rep = calibration_report(probs, labels, multilabel=True)
    ece = binary_calibration_error(torch.from_numpy(probs).flatten(), torch.from_numpy(labels).flatten(),
                                   n_bins=15, norm="l1").item()
    assert rep["ece"] == pytest.approx(ece, abs=1e-6)
    assert rep["n"] == 800 * 8 and rep["multilabel"]
    assert rep["ece"] > 0.05  # the bias is visible


def test_reliability_table_by_hand():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.3, 0.7], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 0])
    rep = calibration_report(probs, labels, n_bins=2)
    low, high = rep["bins"]
    assert low["count"] == 0 and low["confidence"] is None and low["accuracy"] is None
    assert high["count"] == 4
    assert high["confidence"] == pytest.approx((0.95 + 0.9 + 0.7 + 0.6) / 4)
    assert high["accuracy"] == pytest.approx(0.5)
    assert rep["ece"] == pytest.approx(abs(0.5 - 0.7875)) == rep["mce"]


def test_perfect_confidence_and_empty_input():
    probs = np.eye(3)[[0, 1, 2, 1]]  # confidence exactly 1.0 joins the last bin
    rep = calibration_report(probs, [0, 1, 2, 1])
    assert rep["ece"] == 0.0 and rep["bins"][-1]["count"] == 4
    empty = calibration_report(np.zeros((0, 9)), np.zeros(0, dtype=int))
    assert empty["ece"] == 0.0 and empty["mce"] == 0.0 and empty["n"] == 0
    assert calibration_report(np.zeros((0, 8)), np.zeros((0, 8)), multilabel=True)["n"] == 0


def test_risk_coverage_curve():
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([1, 1, 0, 1])
    curve = risk_coverage(conf, correct)
    np.testing.assert_allclose(curve["coverage"], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve["risk"], [0, 0, 1 / 3, 1 / 4])
    assert curve["aurc"] == pytest.approx((1 / 3 + 1 / 4) / 4)
    assert risk_coverage([], [])["aurc"] is None
