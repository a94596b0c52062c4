"""Reliability diagram and risk-coverage plots write PNGs, placeholders when there is nothing to plot."""
from __future__ import annotations

import numpy as np

from adrcs.inference.temperature import TemperatureScaler
from adrcs.metrics.calibration import calibration_report
from adrcs.report.reliability_plots import plot_reliability, plot_risk_coverage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path, min_bytes: int = 1024):
    assert path.exists() and path.stat().st_size > min_bytes
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_reliability_before_after(tmp_path, rng):
    logits = rng.normal(size=(600, 4)) * 4
    labels = np.where(rng.random(600) < 0.7, logits.argmax(axis=1), rng.integers(0, 4, 600))
    scaler = TemperatureScaler().fit(logits, labels)
    before = calibration_report(TemperatureScaler.identity().probabilities(logits), labels)
    after = calibration_report(scaler.probabilities(logits), labels)
    path = plot_reliability(before, after, tmp_path / "sub" / "reliability.png")
    _assert_png(path, 10_000)
    ml = calibration_report(rng.random((50, 3)), rng.integers(0, 2, (50, 3)), multilabel=True)
    _assert_png(plot_reliability(ml, ml, tmp_path / "ml.png"), 10_000)


def test_risk_coverage(tmp_path, rng):
    conf = rng.random(500)
    correct = rng.random(500) < conf
    _assert_png(plot_risk_coverage(conf, correct, tmp_path / "rc.png"), 10_000)


def test_placeholders(tmp_path):
    empty = calibration_report(np.zeros((0, 3)), np.zeros(0, dtype=int))
    _assert_png(plot_reliability(empty, empty, tmp_path / "r.png"))
    _assert_png(plot_risk_coverage([], [], tmp_path / "rc.png"))
