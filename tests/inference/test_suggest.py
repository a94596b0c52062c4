"""Label-suggestion strategies on synthetic blobs: BADGE spreads its picks over uncertain maps, core-set covers
clusters, the factorised BADGE distances equal the explicit embedding's, small pools and seeds."""
from __future__ import annotations

import numpy as np
import pytest

from adrcs.inference import suggest as sg

K = 4  # classes, also the number of blobs


def blobs(per: int = 30, uncertain: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """K far-apart feature blobs; in each, `uncertain` maps torn between class k and k+1, the rest sure of k.
    Blob 0's doubtful maps are the most doubtful (a 50/50 split). Returns probs, features, blob, is_uncertain."""
    rng = np.random.default_rng(seed)
    centers = np.eye(K, 16) * 20.0
    probs, feats, blob, unsure = [], [], [], []
    for k in range(K):
        for j in range(per):
            p = np.full(K, 0.001)
            if j < uncertain:
                split = 0.5 if k == 0 else 0.6 + 0.02 * rng.random()
                p[k], p[(k + 1) % K] = split, 1.0 - split - 0.002
            else:
                p[k] = 1.0 - 0.003
            probs.append(p / p.sum())
            feats.append(centers[k] + rng.normal(0, 0.3, 16))
            blob.append(k)
            unsure.append(j < uncertain)
    return np.array(probs), np.array(feats, np.float32), np.array(blob), np.array(unsure)


def covers_every_blob(idx: np.ndarray, blob: np.ndarray, unsure: np.ndarray) -> bool:
    """Every blob's doubtful maps got a pick, and no blob's doubtful maps got two."""
    return sorted(blob[idx[unsure[idx]]]) == list(range(K))


def test_badge_picks_uncertain_maps_spread_over_blobs():
    # K + 1 picks: K doubtful groups plus the cluster of sure maps (their gradients sit near the origin, which is
    # one more far-away point to k-means++). k-means++ draws at random, so judge over 20 seeds.
    hits = 0
    for seed in range(20):
        probs, feats, blob, unsure = blobs(seed=seed)
        idx, score = sg.badge(probs, feats, K + 1, seed=seed)
        assert np.argmax(score) == 0 and unsure[idx[0]]        # the first pick is the longest gradient
        assert unsure[idx].sum() >= K                            # at most one sure map (the origin cluster)
        hits += covers_every_blob(idx, blob, unsure)
    assert hits >= 18
    # plain uncertainty takes every pick from the most doubtful blob: no diversity
    u_idx, _ = sg.uncertainty(probs, K + 1)
    assert set(blob[u_idx]) == {0}
    r_hits = sum(covers_every_blob(sg.random(len(probs), K + 1, s)[0], blob, unsure) for s in range(20))
    assert r_hits <= 2


def test_badge_equals_kmeanspp_on_the_explicit_embedding():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(5) * 0.5, size=200)
    feats = rng.normal(size=(200, 7)).astype(np.float32)
    idx, score = sg.badge(probs, feats, 20, seed=11)
    g = (sg.gradient_factors(probs)[:, :, None] * feats[:, None, :].astype(np.float64)).reshape(200, -1)
    r = np.random.default_rng(11)
    norms = (g ** 2).sum(1)
    ref = [int(np.argmax(norms))]
    d2 = ((g - g[ref[0]]) ** 2).sum(1)
    while len(ref) < 20:
        w = d2.copy()
        w[ref] = 0
        c = int(r.choice(200, p=w / w.sum()))
        ref.append(c)
        d2 = np.minimum(d2, ((g - g[c]) ** 2).sum(1))
    assert idx.tolist() == ref
    np.testing.assert_allclose(score, np.sqrt(norms[ref]), rtol=1e-5)


def test_badge_multilabel_uses_per_label_gradients():
    probs = np.array([[0.98, 0.01], [0.5, 0.9], [0.02, 0.97], [0.45, 0.55]])
    a = sg.gradient_factors(probs, multilabel=True)
    np.testing.assert_allclose(a, probs - (probs >= 0.5))
    feats = np.ones((4, 3), np.float32)
    idx, _ = sg.badge(probs, feats, 2, multilabel=True)
    assert set(idx.tolist()) == {1, 3}                   # the two maps with labels near 0.5
    u_idx, u = sg.uncertainty(probs, 2, multilabel=True)
    assert u_idx.tolist() == [1, 3] and u == pytest.approx([1.0, 0.9])   # 1 - 2 min |p - 0.5|


def test_badge_projection_keeps_the_picks_meaningful():
    probs, feats, blob, unsure = blobs()
    wide = np.concatenate([feats, np.zeros((len(feats), 2000), np.float32)], axis=1)
    assert sg.random_projection(wide, 64).shape == (len(feats), 64)
    hits = sum(covers_every_blob(sg.badge(probs, wide, K + 1, seed=s, project_dims=64)[0], blob, unsure)
               for s in range(10))
    assert hits >= 8


def test_coreset_covers_the_clusters():
    _, feats, blob, _ = blobs(per=20)
    idx, score = sg.coreset(feats, K, seed=2)
    assert sorted(blob[idx]) == list(range(K))
    assert np.isinf(score[0]) and (score[1:] > 15).all()      # first pick: nothing covered yet
    covered = feats[blob < 2]
    idx2, score2 = sg.coreset(feats, 2, labelled_features=covered)
    assert sorted(blob[idx2]) == [2, 3] and np.isfinite(score2).all()


@pytest.mark.parametrize("method", sg.METHODS)
def test_n_larger_than_the_pool_takes_the_pool(method):
    probs, feats, _, _ = blobs(per=2, uncertain=1)
    idx, score = sg.select(method, probs, feats, 50, seed=0)
    assert sorted(idx.tolist()) == list(range(len(probs))) and len(score) == len(probs)


def test_duplicates_still_fill_n():
    probs = np.tile([[0.6, 0.4]], (6, 1))
    feats = np.ones((6, 3), np.float32)
    idx, _ = sg.badge(probs, feats, 4)
    assert len(set(idx.tolist())) == 4
    idx, _ = sg.coreset(feats, 4)
    assert len(set(idx.tolist())) == 4


@pytest.mark.parametrize("method", sg.METHODS)
def test_seeds_are_deterministic(method):
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(4), size=300)
    feats = rng.normal(size=(300, 8)).astype(np.float32)
    a = sg.select(method, probs, feats, 30, seed=7)
    b = sg.select(method, probs, feats, 30, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    if method in ("badge", "random", "coreset"):
        assert a[0].tolist() != sg.select(method, probs, feats, 30, seed=8)[0].tolist()


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be at least 1"):
        sg.uncertainty(np.ones((3, 2)) / 2, 0)
    with pytest.raises(ValueError, match="method must be one of"):
        sg.select("entropyish", np.ones((3, 2)) / 2, np.ones((3, 2)), 1)
    with pytest.raises(ValueError, match="rows"):
        sg.badge(np.ones((3, 2)) / 2, np.ones((4, 2)), 1)
    assert sg.uncertainty_scores(np.array([[0.2, 0.3, 0.5]]), kind="entropy")[0] == pytest.approx(1.0297, abs=1e-4)
