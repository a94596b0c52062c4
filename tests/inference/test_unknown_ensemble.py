"""The default unknown score: calibration ranks of Mahalanobis, kNN and the model's doubt, the largest one."""
from __future__ import annotations

import io

import numpy as np
import torch

from adrcs.inference.trust import Trust, fit_trust
from adrcs.inference.unknown import ood_report
from adrcs.inference.unknown_ensemble import EnsembleUnknown


def _blobs(rng: np.random.Generator, n: int, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, len(centres), n)
    return centres[y] + rng.normal(size=(n, centres.shape[1])), y


def _probs(feats: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = -((feats[:, None, :] - centres[None]) ** 2).sum(-1) / 4
    e = np.exp(d - d.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_ensemble_flags_a_new_blob_and_keeps_false_alarms() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0] * 8, [6.0] * 8, [0.0] * 4 + [6.0] * 4])
    f_tr, y_tr = _blobs(rng, 3000, centres)
    f_cal, _ = _blobs(rng, 2000, centres)
    f_in, _ = _blobs(rng, 2000, centres)
    f_out = np.array([6.0] * 4 + [0.0] * 4) + rng.normal(size=(500, 8))  # a pattern between the known ones
    ens = EnsembleUnknown(seed=0).fit(f_tr, y_tr)
    cal_scores = ens.set_reference(f_cal, _probs(f_cal, centres), false_alarm=0.05)
    assert cal_scores.min() >= 0 and cal_scores.max() <= 1
    s_in, s_out = ens.score(f_in, _probs(f_in, centres)), ens.score(f_out, _probs(f_out, centres))
    assert ood_report(s_in, s_out)["auroc"] > 0.95
    assert abs(ens.is_unknown(s_in).mean() - 0.05) < 0.02
    assert ens.is_unknown(s_out).mean() > 0.8


def test_trust_with_the_ensemble_round_trips_through_a_checkpoint() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[0.0] * 6, [5.0] * 6, [0.0] * 3 + [5.0] * 3])
    f_tr, y_tr = _blobs(rng, 600, centres)
    f_sel, y_sel = _blobs(rng, 300, centres)
    f_cal, y_cal = _blobs(rng, 300, centres)
    trust = fit_trust(_probs(f_sel, centres), y_sel, _probs(f_cal, centres), y_cal, f_cal, f_tr, y_tr,
                      multilabel=False, unknown_method="ensemble")
    buf = io.BytesIO()
    torch.save(trust.state(), buf)
    buf.seek(0)
    back = Trust.from_state(torch.load(buf, weights_only=True))
    f_new, _ = _blobs(rng, 50, centres)
    p_new = trust.calibrate(_probs(f_new, centres))
    a, b = trust.answer(p_new, f_new, ["a", "b", "c"]), back.answer(p_new, f_new, ["a", "b", "c"])
    assert a.decision == b.decision and a.sets == b.sets
    np.testing.assert_allclose(a.unknown_score, b.unknown_score, atol=1e-3)
    assert isinstance(back.unknown, EnsembleUnknown) and back.unknown.threshold == trust.unknown.threshold
