"""The trust layer's answer for every prediction the service makes: ``decision``, ``unknown_score`` and ``set``.

A model with a fitted trust layer (``pipeline.trust``, `inference.trust.Trust`, on calibrated probabilities and the
network's features) answers as the predictions CSV does (`api_trust.answer_columns`): decision = the class when the
prediction set has one member, ``review`` when it has several or none, ``unknown`` when the unknown-pattern score
is over its threshold (multi-label: the decided labels joined by ``;``, ``none`` when none is present); set = the
members joined by ``;`` (multi-label: the undecided labels joined by ``|``). A model trained before the trust layer
(``trust`` None, or a pipeline without the attribute) answers decision = the predicted class (multi-label: the
labels at or above 0.5 joined by ``;``, ``none``), set ``""`` and no unknown score (None). Detectors have no class
probabilities to build a set from: decision = the predicted class, set ``""`` (`image_route.py`).

Cost: the service answers a micro-batch in the forward-pass thread while the event loop runs Python in the other;
every torch op releases the GIL and may then wait up to the switch interval to get it back. `inference.unknown`'s
Mahalanobis score is about a dozen torch ops (and converts its (F, F) precision to float64 on every call): measured
in the service, 1.7 ms a micro-batch of 6 maps, a third of the forward pass. `served_trust` gives a copy of the trust
layer whose scorer is ONE call of a traced module (TorchScript runs without the GIL): the distance to each class
centre after whitening with the Cholesky factor of the precision, sqrt((z - mu)^T P (z - mu)) = ||L^T z - L^T mu||
(P = L L^T), in float64 (the scores agree with the trust layer's to ~1e-12 relative). Everything else is numpy on
(N, K) arrays (small: numpy keeps the GIL) and string joins. `ModelHost` makes it once per loaded model.
"""
from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import numpy as np
import torch

Answer = tuple[str, "float | None", str]  # (decision, unknown_score or None, set)
SCORE_DIGITS = 4  # unknown scores are rounded as in the predictions CSV


class _WhitenedDistance(torch.nn.Module):
    """min over class centres of ||(z L) - (mu L)||, z (N, F) float32 -> (N,) float64 (traced: one GIL-free call)."""

    def __init__(self, chol: torch.Tensor, centres: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("chol", chol)        # (F, F) float64, precision = chol @ chol.T
        self.register_buffer("centres", centres)  # (C, F) float64, the class means times chol

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = z.to(torch.float64) @ self.chol
        return torch.cdist(y, self.centres, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values


def _traced_distance(unknown: Any) -> Any:
    """The traced `_WhitenedDistance` of a fitted Mahalanobis scorer, or None (no Cholesky factor, tracing failed,
    or it disagrees with the scorer on drawn features)."""
    try:
        prec = unknown.precision.double()
        chol = torch.linalg.cholesky(prec)
        module = _WhitenedDistance(chol, unknown.means.double() @ chol).eval()
        rng = np.random.default_rng(0)
        scale = float(unknown.means.abs().mean()) + 1.0
        drawn = torch.from_numpy((rng.normal(size=(4, prec.shape[0])) * scale).astype(np.float32))
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings; the result is checked below
            traced = torch.jit.freeze(torch.jit.trace(module, drawn))
            for z in (drawn, drawn[:1]):  # batch size stays free
                if not np.allclose(traced(z).numpy(), unknown.score(features=z.numpy()), rtol=1e-9, atol=1e-9):
                    return None
    except Exception:  # noqa: BLE001 - any failure: the scorer's own torch ops are used instead
        return None
    return traced


def _precomputed_scorer(unknown: Any) -> Any:
    """A copy of a fitted Mahalanobis `UnknownScorer` whose `score` is one traced call (see the module docs);
    other scorers, and ones that cannot be traced, are returned as they are."""
    if (unknown is None or getattr(unknown, "method", None) != "mahalanobis" or unknown.means is None
            or unknown.precision is None or len(unknown.means) == 0):
        return unknown
    traced = _traced_distance(unknown)
    if traced is None:
        return unknown
    base = type(unknown)

    class TracedMahalanobis(base):  # type: ignore[misc, valid-type]
        """`UnknownScorer` (mahalanobis) scoring features with one traced call."""

        def score(self, features: Any = None, logits: Any = None) -> np.ndarray:
            if features is None:
                return super().score(features, logits)
            z = np.asarray(features.detach().cpu().numpy() if hasattr(features, "detach") else features)
            if len(z) == 0:
                return np.zeros(0)
            z = np.ascontiguousarray(z if z.ndim == 2 else z.reshape(len(z), -1), dtype=np.float32)  # via float32
            with torch.inference_mode():
                return self._traced(torch.from_numpy(z)).numpy()

    fast = copy.copy(unknown)
    fast.__class__ = TracedMahalanobis
    fast._traced = traced
    return fast


def served_trust(pipeline: Any) -> Any:
    """The pipeline's trust layer ready for serving (see the module docs), or None when it has none."""
    trust = getattr(pipeline, "trust", None)
    if trust is None:
        return None
    fast = copy.copy(trust)  # shares the fitted state; only the scorer object differs
    fast.unknown = _precomputed_scorer(trust.unknown)
    return fast


def plain_answers(class_names: list[str], multilabel: bool, probs: np.ndarray) -> list[Answer]:
    """Answers of a model without a trust layer: the predicted class (labels), no score, no set."""
    if multilabel:
        names = np.asarray(class_names, dtype=object)
        return [(";".join(names[row >= 0.5]) or "none", None, "") for row in np.asarray(probs)]
    return [(class_names[i], None, "") for i in np.asarray(probs).argmax(axis=1).tolist()] if len(probs) else []


def trust_answers(trust: Any, class_names: list[str], multilabel: bool, probs: np.ndarray,
                  features: np.ndarray | None) -> list[Answer]:
    """(decision, unknown_score, set) per row of calibrated `probs` (N, K) and the network's `features` (N, F);
    `trust` None: `plain_answers`. Scores that are NaN / inf come back None (JSON and the store have no NaN)."""
    if trust is None or len(probs) == 0:
        return plain_answers(class_names, multilabel, probs)
    ans = trust.answer(probs, features, list(class_names))
    scores = [round(s, SCORE_DIGITS) if math.isfinite(s) else None for s in ans.unknown_score.tolist()]
    return list(zip(ans.decision, scores, ans.sets))
