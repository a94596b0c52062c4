"""The trust layer's unknown score for served micro-batches, in one GIL-free call.

Why: the service answers a micro-batch in the forward-pass thread while the event loop runs Python in the other.
Every torch op releases the GIL and may then wait up to the switch interval to get it back. The unknown scorers
of `inference.unknown` are about a dozen torch ops each (and convert their stored tensors on every call: the
precision matrix to float64, kNN's float16 training features to float32); measured in the service, the trust
answer took 1.7 ms a micro-batch of 6 maps under load, a third of the forward pass.

What: `_FeatureScores` computes the feature-based components (Mahalanobis: the same float64 ops as
`UnknownScorer`, with the class centres' constant term precomputed; kNN: the same float32 cosine / top-k ops on
the training features converted once) as one traced, frozen module (TorchScript runs without the GIL). It serves
a Mahalanobis or kNN `UnknownScorer` and the components of an `EnsembleUnknown` (whose calibration ranks and
model-doubt component stay the numpy code they are). `served_trust(pipeline)` gives a copy of the trust layer
whose scorer uses it; the model's own objects are left alone. `fused_forward` goes one step further for a frozen
wafer-map model: its forward pass (probabilities and features side by side, as `models.freeze` traces it) and
the feature scores in the SAME call, so a micro-batch hands the GIL over once. Both are checked against the
calls they replace when a model is loaded, and not used when they disagree (or tracing fails).
"""
from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import torch

FEATURE_COMPONENTS = ("mahalanobis", "knn")


class ScoredFeatures:
    """Feature-based component scores already computed (by `fused_forward`), handed to `Trust.answer` in place of
    the features: component name -> (N,) float64."""

    def __init__(self, scores: dict[str, np.ndarray], n: int) -> None:
        self.scores, self.n = scores, int(n)

    def __len__(self) -> int:
        return self.n


def _components(unknown: Any) -> dict[str, Any]:
    """Name -> fitted feature-based `UnknownScorer` that `unknown` uses (an ensemble's, or itself)."""
    if unknown is None:
        return {}
    if getattr(unknown, "method", None) == "ensemble":
        parts = {"mahalanobis": getattr(unknown, "maha", None), "knn": getattr(unknown, "knn", None)}
    elif getattr(unknown, "method", None) in FEATURE_COMPONENTS:
        parts = {unknown.method: unknown}
    else:
        return {}
    usable = {}
    for name, s in parts.items():
        if name == "mahalanobis" and s is not None and s.means is not None and s.precision is not None and len(s.means):
            usable[name] = s
        elif name == "knn" and s is not None and s.train is not None and len(s.train):
            usable[name] = s
    return usable if len(usable) == len(parts) else {}


class _FeatureScores(torch.nn.Module):
    """Features (N, F) float32 -> (C, N) float64: each feature-based component's raw score, in `names` order."""

    def __init__(self, scorers: dict[str, Any]) -> None:
        super().__init__()
        self.names = list(scorers)
        maha, knn = scorers.get("mahalanobis"), scorers.get("knn")
        self.has_maha, self.has_knn = maha is not None, knn is not None
        if maha is not None:
            mu, prec = maha.means.double(), maha.precision.double()
            self.register_buffer("mu", mu)
            self.register_buffer("prec", prec)
            self.register_buffer("mupmu", ((mu @ prec) * mu).sum(1))
        if knn is not None:
            self.register_buffer("known", knn.train.float())  # the normalised training features
            self.k = min(int(knn.k), len(knn.train))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = []
        for name in self.names:
            if name == "mahalanobis":  # as `UnknownScorer._mahalanobis`
                zd = z.double()
                zp = zd @ self.prec
                d2 = (zp * zd).sum(1, keepdim=True) - 2 * zp @ self.mu.T + self.mupmu[None, :]
                out.append(d2.min(dim=1).values.clamp_min(0).sqrt())
            else:  # as `UnknownScorer._knn`
                zn = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
                kth = (zn @ self.known.T).topk(self.k, dim=1).values[:, -1]
                out.append((2.0 - 2.0 * kth.double()).clamp_min(0).sqrt())
        return torch.stack(out)


def _drawn_features(scorers: dict[str, Any], n: int = 4) -> torch.Tensor:
    """Feature-like rows to check a traced module on: training features / centres plus noise."""
    first = next(iter(scorers.values()))
    base = (first.means if first.method == "mahalanobis" else first.train).float()
    rng = np.random.default_rng(0)
    rows = base[rng.integers(0, len(base), n)].numpy()
    return torch.from_numpy((rows + rng.normal(scale=float(np.abs(rows).mean()) + 1e-3, size=rows.shape))
                            .astype(np.float32))


def _trace(module: torch.nn.Module, example: torch.Tensor) -> Any:
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values; results are checked by the callers
        return torch.jit.freeze(torch.jit.trace(module.eval(), example))


def _eager(scorers: dict[str, Any], z: np.ndarray) -> np.ndarray:
    return np.stack([s.score(features=z) for s in scorers.values()])


def traced_feature_scores(unknown: Any) -> tuple[Any, torch.nn.Module] | None:
    """(traced, plain) `_FeatureScores` of a fitted scorer (or ensemble), or None: nothing feature-based to score,
    tracing failed, or the traced module disagrees with the scorers on drawn features."""
    scorers = _components(unknown)
    if not scorers:
        return None
    try:
        module = _FeatureScores(scorers)
        drawn = _drawn_features(scorers)
        traced = _trace(module, drawn)
        for z in (drawn, drawn[:1]):  # batch size stays free
            if not np.allclose(traced(z).numpy(), _eager(scorers, z.numpy()), rtol=1e-9, atol=1e-12):
                return None
    except Exception:  # noqa: BLE001 - any failure: the scorers' own torch ops are used instead
        return None
    return traced, module


def _served_scorer(unknown: Any) -> Any:
    """A copy of `unknown` whose feature-based scores come from one traced call, or from `ScoredFeatures`
    (see the module docs); scorers that cannot be traced are returned as they are."""
    found = traced_feature_scores(unknown)
    if found is None:
        return unknown
    traced, module = found
    base = type(unknown)

    def feature_scores(features: Any) -> dict[str, np.ndarray]:
        if isinstance(features, ScoredFeatures):
            return features.scores
        z = np.asarray(features.detach().cpu().numpy() if hasattr(features, "detach") else features)
        if len(z) == 0:
            return {name: np.zeros(0) for name in module.names}
        z = np.ascontiguousarray(z if z.ndim == 2 else z.reshape(len(z), -1), dtype=np.float32)  # as the scorers
        with torch.inference_mode():
            out = traced(torch.from_numpy(z)).numpy()
        return dict(zip(module.names, out))

    if unknown.method == "ensemble":
        class ServedEnsemble(base):  # type: ignore[misc, valid-type]
            """`EnsembleUnknown` whose Mahalanobis and kNN components are one traced call."""

            def components(self, features: Any, probs: np.ndarray) -> dict[str, np.ndarray]:
                from adrcs.inference.decisions import confidence

                scores = feature_scores(features)
                return {"mahalanobis": scores["mahalanobis"], "knn": scores["knn"],
                        "doubt": 1.0 - confidence(probs, self.multilabel)}

        cls: type = ServedEnsemble
    else:
        class ServedScorer(base):  # type: ignore[misc, valid-type]
            """`UnknownScorer` (mahalanobis / knn) scoring features with one traced call."""

            def score(self, features: Any = None, logits: Any = None) -> np.ndarray:
                if features is None:
                    return super().score(features, logits)
                return feature_scores(features)[self.method]

        cls = ServedScorer
    fast = copy.copy(unknown)
    fast.__class__ = cls
    fast._feature_module = module
    return fast


def served_trust(pipeline: Any) -> Any:
    """The pipeline's trust layer ready for serving (see the module docs), or None when it has none."""
    trust = getattr(pipeline, "trust", None)
    if trust is None:
        return None
    fast = copy.copy(trust)  # shares the fitted state; only the scorer object differs
    fast.unknown = _served_scorer(trust.unknown)
    return fast


class _ForwardAndScores(torch.nn.Module):
    """A wafer-map network's forward pass as the frozen serving module computes it (`models.freeze`: prepared uint8
    maps -> probabilities and features side by side) and the feature scores of its features."""

    def __init__(self, net: torch.nn.Module, scores: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.scores = net, scores

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from adrcs.pipeline import _encode  # the one-hot encoding the frozen module has traced in

        feats = self.net.forward_features(_encode(x))
        logits = self.net.forward_head(feats)
        probs = torch.sigmoid(logits) if self.net.multilabel else torch.softmax(logits, dim=1)
        flat = feats.flatten(1)
        return torch.cat([probs, flat], dim=1), self.scores(flat)


def fused_forward(pipeline: Any, trust: Any) -> Any:
    """A wafer-map pipeline's forward pass and the served trust layer's feature scores in ONE traced call
    (prepared uint8 maps (N, S, S) -> (probabilities + features (N, K + F) float32, scores (C, N) float64)); None
    when the pipeline does not serve a frozen module (eager, TTA, sinogram features, not on the CPU), the scorer has
    no traced feature scores, or the fused module disagrees with the frozen one (probabilities and features within
    1e-5) or with the scorers."""
    module = getattr(getattr(trust, "unknown", None), "_feature_module", None)
    if (getattr(pipeline, "proba_fn", None) is None or module is None or getattr(pipeline, "tta", False)
            or getattr(pipeline, "features", None) is not None or pipeline.device.type != "cpu"):
        return None
    k = len(pipeline.class_names)
    maps = [np.random.default_rng(i).integers(0, 3, (pipeline.input_size,) * 2, dtype=np.uint8) for i in range(4)]
    x = pipeline.prepare(maps)
    try:
        fused = _trace(_ForwardAndScores(pipeline.net, module), x)
        for xb in (x, x[:1]):  # batch size stays free
            both, scores = fused(xb)
            with torch.no_grad():
                want = pipeline.proba_fn(xb)
                if not (torch.allclose(both, want, rtol=1e-5, atol=1e-5)
                        and torch.allclose(scores, module(both[:, k:]), rtol=1e-9, atol=1e-12)):
                    return None
    except Exception:  # noqa: BLE001 - any failure: the forward pass and the scores are separate calls
        return None
    return fused


def calibrate(trust: Any, raw: np.ndarray) -> np.ndarray:
    """`Trust.calibrate` (temperature-scaled probabilities, float32) with the softmax / sigmoid in numpy instead of a
    torch op: on a micro-batch's (N, K) numpy keeps the GIL. Same float64 arithmetic up to rounding (~1e-16)
    before the cast to float32."""
    from adrcs.inference.trust import logits_from_probs

    if len(raw) == 0:
        return trust.calibrate(raw)
    z = trust.temperature.scaled_logits(logits_from_probs(raw, trust.multilabel))
    if trust.multilabel:
        p = 1.0 / (1.0 + np.exp(-z))
    else:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
    return p.astype(np.float32)


def scored_features(module_names: list[str], scores: np.ndarray) -> ScoredFeatures:
    """`ScoredFeatures` from the fused call's (C, N) scores."""
    return ScoredFeatures(dict(zip(module_names, scores)), scores.shape[1])
