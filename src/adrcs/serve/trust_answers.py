"""The trust layer's answer for every prediction the service makes: ``decision``, ``unknown_score`` and ``set``.

A model with a fitted trust layer (``pipeline.trust``, `inference.trust.Trust`, on calibrated probabilities and the
network's features) answers as the predictions CSV does (`api_trust.answer_columns`): decision = the class when the
prediction set has one member, ``review`` when it has several or none, ``unknown`` when the unknown-pattern score
is over its threshold (multi-label: the decided labels joined by ``;``, ``none`` when none is present); set = the
members joined by ``;`` (multi-label: the undecided labels joined by ``|``). A model trained before the trust layer
(``trust`` None, or a pipeline without the attribute) answers decision = the predicted class (multi-label: the
labels at or above 0.5 joined by ``;``, ``none``), set ``""`` and no unknown score (None). Detectors have no class
probabilities to build a set from: decision = the predicted class, set ``""`` (`image_route.py`).

Cost: the Mahalanobis unknown score of `inference.unknown` converts its (F, F) precision matrix to float64 and
recomputes the class centres' own terms on every call (about 0.7 ms a map on 2 CPU cores for F = 480, as much as
the forward pass). `served_trust` gives a copy whose scorer keeps those precomputed (same formula, same float64
values, so the same scores); `ModelHost` makes it once per loaded model.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch

Answer = tuple[str, "float | None", str]  # (decision, unknown_score or None, set)
SCORE_DIGITS = 4  # unknown scores are rounded as in the predictions CSV


def _precomputed_scorer(unknown: Any) -> Any:
    """A copy of a fitted Mahalanobis `UnknownScorer` whose `score` reuses float64 copies of its precision and
    centres and the centres' constant term; other scorers are returned as they are."""
    if (unknown is None or getattr(unknown, "method", None) != "mahalanobis" or unknown.means is None
            or unknown.precision is None or len(unknown.means) == 0):
        return unknown
    base = type(unknown)

    class PrecomputedMahalanobis(base):  # type: ignore[misc, valid-type]
        """`UnknownScorer` (mahalanobis) with the per-call constants computed once."""

        def score(self, features: Any = None, logits: Any = None) -> np.ndarray:
            if features is None:
                return super().score(features, logits)
            z = np.asarray(features.detach().cpu().numpy() if hasattr(features, "detach") else features,
                           np.float64)
            z = z.reshape(len(z), -1)
            if len(z) == 0:
                return np.zeros(0)
            zt = torch.from_numpy(z).float().double()  # through float32, as `UnknownScorer.score`
            zp = zt @ self._prec64
            # (z - mu)^T P (z - mu) = z P z - 2 z P mu + mu P mu, for all classes at once (as `UnknownScorer`)
            d2 = (zp * zt).sum(1, keepdim=True) - 2 * zp @ self._mu64.T + self._mupmu[None, :]
            return d2.min(dim=1).values.clamp_min(0).sqrt().numpy()

    fast = copy.copy(unknown)
    fast.__class__ = PrecomputedMahalanobis
    fast._prec64 = unknown.precision.double()
    fast._mu64 = unknown.means.double()
    fast._mupmu = ((fast._mu64 @ fast._prec64) * fast._mu64).sum(1)
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
