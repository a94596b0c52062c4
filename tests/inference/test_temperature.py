"""Temperature scaling: recovers the temperature of deliberately over-confident logits and lowers ECE."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from adrcs.inference.temperature import T_MAX, T_MIN, TemperatureScaler
from adrcs.metrics.calibration import calibration_report


def _single(rng: np.random.Generator, n: int = 4000, k: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated logits and labels drawn from their own softmax."""
    logits = rng.normal(size=(n, k)) * 1.5
    p = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    labels = (p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(max=k - 1)
    return logits, labels


def _multi(rng: np.random.Generator, n: int = 4000, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    logits = rng.normal(size=(n, k)) * 2.0
    return logits, (rng.random((n, k)) < 1.0 / (1.0 + np.exp(-logits))).astype(np.int64)


def _round_trip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_single_label_recovers_temperature_and_lowers_ece(rng):
    logits, labels = _single(rng)
    hot = logits * 3.0  # a network three times too sure of itself
    scaler = TemperatureScaler().fit(hot, labels)
    assert scaler.temperatures.shape == (1,)
    assert scaler.temperatures[0] == pytest.approx(3.0, rel=0.1)
    raw = TemperatureScaler.identity().probabilities(hot)
    before = calibration_report(raw, labels)["ece"]
    after = calibration_report(scaler.probabilities(hot), labels)["ece"]
    assert before > 0.1 and after < 0.03 and after < before / 4
    np.testing.assert_allclose(scaler.probabilities(hot).sum(axis=1), 1.0)


def test_multilabel_fits_one_temperature_per_label(rng):
    logits, labels = _multi(rng)
    true_t = np.array([1.0, 2.0, 3.0, 0.5, 1.0, 1.5, 2.0, 4.0])
    scaler = TemperatureScaler(multilabel=True).fit(logits * true_t, labels)
    np.testing.assert_allclose(scaler.temperatures, true_t, rtol=0.12)
    before = calibration_report(TemperatureScaler.identity(True).probabilities(logits * true_t), labels, True)["ece"]
    after = calibration_report(scaler.probabilities(logits * true_t), labels, True)["ece"]
    assert after < before / 2


def test_degenerate_inputs_keep_identity(rng):
    logits, labels = _single(rng, n=200)
    assert TemperatureScaler().fit(logits[:0], labels[:0]).temperatures.tolist() == [1.0]
    assert TemperatureScaler().fit(logits, np.zeros_like(labels)).temperatures.tolist() == [1.0]
    ml_logits, ml_labels = _multi(rng, n=300)
    ml_labels[:, 2] = 0  # never set
    ml_labels[:, 5] = 1  # always set
    temps = TemperatureScaler(True).fit(ml_logits * 2.0, ml_labels).temperatures
    assert temps[2] == 1.0 and temps[5] == 1.0 and temps[0] == pytest.approx(2.0, rel=0.3)
    assert TemperatureScaler(True).fit(ml_logits[:0], ml_labels[:0]).temperatures.tolist() == [1.0] * 8
    assert TemperatureScaler().probabilities(np.zeros((0, 9))).shape == (0, 9)


def test_separable_data_stays_within_bounds(rng):
    labels = rng.integers(0, 4, 500)
    logits = np.eye(4)[labels] * 5.0  # always right: NLL keeps falling as T -> 0
    t = TemperatureScaler().fit(logits, labels).temperatures[0]
    assert T_MIN <= t <= T_MAX and t < 1.0


def test_state_round_trip_weights_only(rng):
    logits, labels = _multi(rng, n=500)
    scaler = TemperatureScaler(True).fit(logits * 2.0, labels)
    back = TemperatureScaler.from_state(_round_trip(scaler.state()))
    assert back.multilabel and back.temperatures.tolist() == scaler.temperatures.tolist()
    np.testing.assert_array_equal(back.probabilities(logits), scaler.probabilities(logits))
    # tensors in, numpy out
    np.testing.assert_allclose(scaler.probabilities(torch.from_numpy(logits)), scaler.probabilities(logits))


def test_rejects_bad_temperatures():
    with pytest.raises(ValueError):
        TemperatureScaler(temperatures=[0.0])
