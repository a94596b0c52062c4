"""The trust layer's answer for every prediction the service makes: ``decision``, ``unknown_score`` and ``set``.

A model with a fitted trust layer (``pipeline.trust``, `inference.trust.Trust`, on calibrated probabilities and the
network's features) answers as the predictions CSV does (`api_trust.answer_columns`): decision = the class when the
prediction set has one member, ``review`` when it has several or none, ``unknown`` when the unknown-pattern score
is over its threshold (multi-label: the decided labels joined by ``;``, ``none`` when none is present); set = the
members joined by ``;`` (multi-label: the undecided labels joined by ``|``). A model trained before the trust layer
(``trust`` None, or a pipeline without the attribute) answers decision = the predicted class (multi-label: the
labels at or above 0.5 joined by ``;``, ``none``), set ``""`` and no unknown score (None). Detectors have no class
probabilities to build a set from: decision = the predicted class, set ``""`` (`image_route.py`).

The unknown scores of a micro-batch come from `trust_scoring` (one GIL-free call; see there why).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

Answer = tuple[str, "float | None", str]  # (decision, unknown_score or None, set)
SCORE_DIGITS = 4  # unknown scores are rounded as in the predictions CSV


def plain_answers(class_names: list[str], multilabel: bool, probs: np.ndarray) -> list[Answer]:
    """Answers of a model without a trust layer: the predicted class (labels), no score, no set."""
    if multilabel:
        names = np.asarray(class_names, dtype=object)
        return [(";".join(names[row >= 0.5]) or "none", None, "") for row in np.asarray(probs)]
    return [(class_names[i], None, "") for i in np.asarray(probs).argmax(axis=1).tolist()] if len(probs) else []


def trust_answers(trust: Any, class_names: list[str], multilabel: bool, probs: np.ndarray,
                  features: Any) -> list[Answer]:
    """(decision, unknown_score, set) per row of calibrated `probs` (N, K) and the network's `features` (N, F) (or
    `trust_scoring.ScoredFeatures`; None: no unknown score); `trust` None: `plain_answers`. Scores that are NaN / inf
    come back None (JSON and the store have no NaN)."""
    if trust is None or len(probs) == 0:
        return plain_answers(class_names, multilabel, probs)
    ans = trust.answer(probs, features, list(class_names))
    scores = [round(s, SCORE_DIGITS) if math.isfinite(s) else None for s in ans.unknown_score.tolist()]
    return list(zip(ans.decision, scores, ans.sets))
