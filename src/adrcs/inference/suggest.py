"""Which unlabelled maps to label next (active learning), on numpy arrays of a model's outputs.

Every strategy returns ``(index, score)``: the picked rows of the pool in pick order (rank 1 first) and a score per
pick (NaN where the strategy has none). ``n`` larger than the pool picks the whole pool.

* `badge` (Ash et al., "Deep batch active learning by diverse, uncertain gradient lower bounds", ICLR 2020): each
  map's gradient embedding is the gradient of the loss at its own predicted label with respect to the last layer's
  weights, ``g = (p - y_hat) ⊗ f`` (``f``: the input of the last layer, the network features; single-label
  softmax: ``y_hat`` = one-hot of the argmax; multi-label sigmoid: ``y_hat = p >= 0.5`` per label, the gradient of
  the summed binary cross-entropies, so the same formula holds per label). k-means++ seeding on these embeddings
  picks points that are both uncertain (long gradients) and different from each other: the first pick is the
  longest gradient, each next pick is drawn with probability proportional to its squared distance to the nearest
  pick so far. The ``K*F``-dimensional embeddings are never built: ``<g_i, g_j> = <a_i, a_j> <f_i, f_j>`` with
  ``a = p - y_hat``, so every distance comes from an (N, K) and an (N, F) matrix, read in row chunks; memory
  stays O(N (K + F)) (100k maps x 9 classes x 480 features: about 200 MB instead of 1.7 GB). ``project_dims``
  optionally maps wider features to that many dimensions with a seeded Gaussian random projection (inner
  products kept in expectation, Johnson-Lindenstrauss) to cut time on very wide feature vectors. Score: ``||g||``.
* `coreset` (Sener & Savarese, ICLR 2018): greedy k-center on the features: each pick is the map farthest from
  every labelled or already picked map. Score: that distance (the covering radius it removes).
* `uncertainty`: single-label margin ``1 - (p_1 - p_2)`` (or entropy); multi-label: closeness of the most doubtful
  label to 0.5, ``1 - 2 min_k |p_k - 0.5|``. Score: that value.
* `random`: a seeded uniform draw. Score: NaN.
"""
from __future__ import annotations

import numpy as np

METHODS = ("badge", "coreset", "uncertainty", "random")
CHUNK = 16384  # rows per chunk of the distance computations


def _n(n: int, n_pool: int) -> int:
    if int(n) < 1:
        raise ValueError(f"n must be at least 1 (got {n})")
    return min(int(n), n_pool)


def gradient_factors(probs: np.ndarray, multilabel: bool = False) -> np.ndarray:
    """``a = p - y_hat`` (N, K): the loss gradient with respect to the logits at the predicted label(s), the class
    factor of the BADGE embedding ``a ⊗ f``."""
    p = np.asarray(probs, dtype=np.float64)
    if multilabel:
        return p - (p >= 0.5)
    y = np.zeros_like(p)
    if len(p):
        y[np.arange(len(p)), p.argmax(axis=1)] = 1.0
    return p - y


def random_projection(features: np.ndarray, dims: int, seed: int = 0) -> np.ndarray:
    """(N, F) -> (N, dims) with a seeded Gaussian matrix scaled by 1/sqrt(dims); unchanged when F <= dims."""
    f = np.asarray(features, dtype=np.float32)
    if f.shape[1] <= dims:
        return f
    r = np.random.default_rng(seed).standard_normal((f.shape[1], dims)).astype(np.float32) / np.sqrt(dims)
    return np.concatenate([f[i:i + CHUNK] @ r for i in range(0, len(f), CHUNK)]) if len(f) else f @ r


def badge(probs: np.ndarray, features: np.ndarray, n: int, seed: int = 0, multilabel: bool = False,
          project_dims: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """BADGE picks (see the module docs): k-means++ seeding on the gradient embeddings ``(p - y_hat) ⊗ f``,
    computed through the factorised inner product; ``(index, ||g||)`` in pick order. When every remaining map
    sits on a pick already (zero distance), the rest are taken by descending gradient length."""
    a = gradient_factors(probs, multilabel)
    f = np.asarray(features, dtype=np.float32)
    if len(a) != len(f):
        raise ValueError(f"probs has {len(a)} rows, features {len(f)}")
    if project_dims is not None:
        f = random_projection(f, int(project_dims), seed)
    n_pool = len(a)
    n = _n(n, n_pool)
    a_sq = (a * a).sum(axis=1)
    f_sq = np.concatenate([(f[i:i + CHUNK].astype(np.float64) ** 2).sum(axis=1) for i in range(0, n_pool, CHUNK)]
                          ) if n_pool else np.zeros(0)
    g_sq = a_sq * f_sq
    rng = np.random.default_rng(seed)
    picked = np.zeros(n_pool, bool)
    order: list[int] = []
    d2 = np.full(n_pool, np.inf)
    by_norm = np.argsort(-g_sq, kind="stable")
    c = int(by_norm[0]) if n_pool else -1
    while len(order) < n:
        order.append(c)
        picked[c] = True
        for s in range(0, n_pool, CHUNK):  # ||g_i - g_c||^2 = |g_i|^2 + |g_c|^2 - 2 (a_i.a_c)(f_i.f_c)
            cross = (a[s:s + CHUNK] @ a[c]) * (f[s:s + CHUNK] @ f[c]).astype(np.float64)
            dist = np.maximum(g_sq[s:s + CHUNK] + g_sq[c] - 2.0 * cross, 0.0)
            np.minimum(d2[s:s + CHUNK], dist, out=d2[s:s + CHUNK])
        if len(order) == n:
            break
        w = np.where(picked, 0.0, d2)
        total = w.sum()
        if not np.isfinite(total) or total <= 0:  # the rest coincide with picks: longest gradients first
            rest = [int(i) for i in by_norm if not picked[i]][:n - len(order)]
            order += rest
            break
        c = int(rng.choice(n_pool, p=w / total))
    idx = np.asarray(order, dtype=np.int64)
    return idx, np.sqrt(g_sq[idx])


def _sq_dist_to(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared euclidean distance of every row of `x` to its nearest row of `centers`, in chunks of both."""
    out = np.full(len(x), np.inf)
    c_sq = (centers.astype(np.float64) ** 2).sum(axis=1)
    for s in range(0, len(x), CHUNK):
        xs = x[s:s + CHUNK].astype(np.float64)
        x_sq = (xs * xs).sum(axis=1)
        for t in range(0, len(centers), 4096):
            d = x_sq[:, None] + c_sq[None, t:t + 4096] - 2.0 * xs @ centers[t:t + 4096].astype(np.float64).T
            out[s:s + CHUNK] = np.minimum(out[s:s + CHUNK], np.maximum(d, 0.0).min(axis=1))
    return out


def coreset(features: np.ndarray, n: int, labelled_features: np.ndarray | None = None,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center: each pick is the pool map farthest from the labelled maps and the picks so far; the
    first pick is a seeded random map when nothing is labelled. ``(index, distance at pick time)``."""
    f = np.asarray(features, dtype=np.float32)
    n_pool = len(f)
    n = _n(n, n_pool)
    if labelled_features is not None and len(labelled_features):
        d2 = _sq_dist_to(f, np.asarray(labelled_features, dtype=np.float32))
        first = None
    else:
        d2 = np.full(n_pool, np.inf)
        first = int(np.random.default_rng(seed).integers(n_pool)) if n_pool else None
    order: list[int] = []
    scores: list[float] = []
    while len(order) < n:
        c = first if first is not None and not order else int(np.argmax(d2))
        order.append(c)
        scores.append(float(np.sqrt(d2[c])))
        np.minimum(d2, _sq_dist_to(f, f[c:c + 1]), out=d2)
        d2[c] = -1.0  # never again, even when every other map coincides with a pick
    return np.asarray(order, dtype=np.int64), np.asarray(scores)


def uncertainty_scores(probs: np.ndarray, multilabel: bool = False, kind: str = "margin") -> np.ndarray:
    """Per map, higher = less sure: single-label ``1 - (p_1 - p_2)`` (margin) or the entropy (entropy);
    multi-label ``1 - 2 min_k |p_k - 0.5|`` (the most doubtful label)."""
    p = np.asarray(probs, dtype=np.float64)
    if len(p) == 0:
        return np.zeros(0)
    if multilabel:
        return 1.0 - 2.0 * np.abs(p - 0.5).min(axis=1)
    if kind == "entropy":
        return -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=1)
    if kind != "margin":
        raise ValueError(f"kind must be margin or entropy (got {kind!r})")
    top = np.sort(p, axis=1)[:, ::-1]
    return 1.0 - (top[:, 0] - (top[:, 1] if p.shape[1] > 1 else 0.0))


def uncertainty(probs: np.ndarray, n: int, multilabel: bool = False,
                kind: str = "margin") -> tuple[np.ndarray, np.ndarray]:
    """The `n` least sure maps (see `uncertainty_scores`), least sure first; ties by pool order."""
    s = uncertainty_scores(probs, multilabel, kind)
    idx = np.argsort(-s, kind="stable")[:_n(n, len(s))]
    return idx.astype(np.int64), s[idx]


def random(n_pool: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` distinct pool rows drawn uniformly with `seed`; scores NaN."""
    idx = np.random.default_rng(seed).permutation(n_pool)[:_n(n, n_pool)]
    return idx.astype(np.int64), np.full(len(idx), np.nan)


def select(method: str, probs: np.ndarray, features: np.ndarray, n: int, seed: int = 0, multilabel: bool = False,
           labelled_features: np.ndarray | None = None,
           project_dims: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch to the strategy called `method` (one of `METHODS`)."""
    if method == "badge":
        return badge(probs, features, n, seed, multilabel, project_dims)
    if method == "coreset":
        return coreset(features, n, labelled_features, seed)
    if method == "uncertainty":
        return uncertainty(probs, n, multilabel)
    if method == "random":
        return random(len(probs), n, seed)
    raise ValueError(f"method must be one of {', '.join(METHODS)} (got {method!r})")
