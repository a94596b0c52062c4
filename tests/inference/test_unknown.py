"""Unknown-pattern scores: a shifted blob is told apart from the known ones, the threshold keeps false
alarms near the target, and the fitted state survives a weights_only checkpoint."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from adrcs.inference.unknown import UnknownScorer, ood_report

F, C = 24, 5


def _blobs(rng: np.random.Generator, centres: np.ndarray, n: int, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, len(centres), n)
    return centres[labels] + rng.normal(size=(n, F)) * scale, labels


@pytest.fixture
def data(rng):
    centres = rng.normal(size=(C, F)) * 4.0
    scale = np.linspace(0.5, 2.0, F)  # anisotropic: Mahalanobis must use the covariance
    train = _blobs(rng, centres, 4000, scale)
    calib = _blobs(rng, centres, 2000, scale)
    test = _blobs(rng, centres, 4000, scale)
    # the unknown pattern: a new centre between the known ones, same spread
    unknown = centres.mean(axis=0) + rng.normal(size=F) * 2.0 + rng.normal(size=(2000, F)) * scale
    return train, calib, test, unknown


def _round_trip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_shifted_blob_is_unknown_with_target_false_alarms(data, method):
    (ztr, ytr), (zc, _), (zt, _), zo = data
    scorer = UnknownScorer(method).fit(ztr, ytr)
    scorer.set_threshold(scorer.score(zc), false_alarm=0.05)
    s_in, s_out = scorer.score(zt), scorer.score(zo)
    report = ood_report(s_in, s_out)
    assert report["auroc"] > 0.95 and report["fpr_at_95_tpr"] < 0.2
    assert scorer.is_unknown(s_in).mean() == pytest.approx(0.05, abs=0.015)
    assert scorer.is_unknown(s_out).mean() > 0.8


def test_mahalanobis_distance_by_hand(rng):
    z = rng.normal(size=(300, 3)) * np.array([1.0, 2.0, 0.5])
    scorer = UnknownScorer().fit(z)  # labels=None: a single Gaussian
    assert scorer.groups == ["all"]
    x = rng.normal(size=(5, 3))
    d = x - scorer.means[0].double().numpy()
    expected = np.sqrt(np.einsum("nf,fg,ng->n", d, scorer.precision.double().numpy(), d))
    np.testing.assert_allclose(scorer.score(x), expected, rtol=1e-5)


def test_multilabel_groups_are_label_combinations(rng):
    combos = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1]])
    pick = np.r_[rng.integers(0, 3, 600), np.full(3, 3)]  # combination 3 has only 3 maps
    labels = combos[pick]
    z = pick[:, None] * 5.0 + rng.normal(size=(len(pick), 4))
    scorer = UnknownScorer(multilabel=True, min_group_size=5).fit(z, labels)
    assert sorted(scorer.groups) == [(0, 0, 0), (1, 0, 0), (1, 1, 0)]
    assert scorer.score(z[:600]).mean() < scorer.score(z[600:]).mean()  # the rare combination looks unusual


def test_energy_scores_logits():
    logits = np.array([[10.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    single = UnknownScorer("energy").score(logits=logits)
    np.testing.assert_allclose(single, -np.log(np.exp(logits).sum(axis=1)))
    assert single[0] < single[1]  # the confident map is the known-looking one
    multi = UnknownScorer("energy", multilabel=True).score(logits=logits)
    np.testing.assert_allclose(multi, -np.log1p(np.exp(logits)).sum(axis=1))
    with pytest.raises(ValueError):
        UnknownScorer("energy").score(features=logits)
    with pytest.raises(ValueError):
        UnknownScorer("knn").fit(np.zeros((3, 2))).score(logits=logits)


@pytest.mark.parametrize("method", ["mahalanobis", "knn", "energy"])
def test_state_round_trip_weights_only(data, method):
    (ztr, ytr), (zc, _), _, zo = data
    scorer = UnknownScorer(method, max_train=1000).fit(ztr, ytr)
    logits = zc[:, :C]
    scorer.set_threshold(scorer.score(features=zc, logits=logits))
    back = UnknownScorer.from_state(_round_trip(scorer.state()))
    assert back.threshold == scorer.threshold and back.groups == scorer.groups
    new, old = back.score(features=zo, logits=zo[:, :C]), scorer.score(features=zo, logits=zo[:, :C])
    np.testing.assert_array_equal(new, old)
    if method == "knn":
        assert back.train.shape == (1000, F) and back.train.dtype == torch.float16


def test_empty_inputs(rng):
    scorer = UnknownScorer().fit(rng.normal(size=(50, 4)), rng.integers(0, 2, 50))
    assert scorer.score(np.zeros((0, 4))).shape == (0,)
    assert scorer.set_threshold([]) == np.inf and not scorer.is_unknown([1e9]).any()
    nothing = UnknownScorer("knn").fit(np.zeros((0, 4)))
    assert np.isinf(nothing.score(np.ones((2, 4)))).all()
    assert UnknownScorer().fit(np.zeros((0, 4)), np.zeros(0)).score(np.ones((1, 4)))[0] == np.inf
    assert ood_report([], [1.0])["auroc"] is None
    with pytest.raises(RuntimeError):
        UnknownScorer().score(np.ones((1, 4)))
