"""The trust layer of a classifier: calibrated probabilities, conformal prediction sets, an unknown-pattern score
and the decision every prediction carries (CSV, reports and service alike).

decision: ``unknown`` when the unknown score is over its threshold (set on the calibration split at 5 % false
alarms); else the class when the prediction set has exactly one member (multi-label: every label decided, the
decided labels joined by ``;``, ``none`` when no label is present); else ``review`` (an empty set or several
members; multi-label: some label undecided).
set: single-label, the members joined by ``;``; multi-label, the undecided labels joined by ``|``.

Fitted at the end of ``train``: temperature on the ``select`` split (the one early stopping used), conformal
quantiles and the unknown threshold on ``calib``, the unknown score's class centres on the training split. The
calibration split's probabilities (after scaling) and unknown scores are kept, so prediction sets for another
``alpha`` are refitted on the same maps at predict time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from adrcs.inference.conformal import ConformalSets
from adrcs.inference.temperature import TemperatureScaler
from adrcs.inference.unknown import UnknownScorer
from adrcs.inference.unknown_ensemble import EnsembleUnknown

REVIEW, UNKNOWN = "review", "unknown"
DEFAULT_ALPHA = 0.05
DEFAULT_FALSE_ALARM = 0.05
_EPS = 1e-7


def logits_from_probs(probs: np.ndarray, multilabel: bool) -> np.ndarray:
    """Logits equivalent to `probs` for scaling: log p (softmax is shift-invariant) or log(p / (1 - p))."""
    p = np.clip(np.asarray(probs, np.float64), _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p)) if multilabel else np.log(p)


@dataclass
class Answers:
    """The trust layer's answer for N predictions."""

    decision: list[str]
    sets: list[str]
    unknown_score: np.ndarray   # (N,) float64, higher = more unusual (nan: no unknown scorer)
    unknown: np.ndarray         # (N,) bool
    members: np.ndarray         # single-label (N, K) bool set membership; multi-label (N, K) int8 1/0/-1


class Trust:
    """Temperature + conformal sets + unknown scorer of one model (see the module docs)."""

    def __init__(self, temperature: TemperatureScaler, conformal: ConformalSets, unknown: UnknownScorer | None,
                 multilabel: bool, calib_probs: np.ndarray | None = None, calib_labels: np.ndarray | None = None,
                 calib_scores: np.ndarray | None = None) -> None:
        self.temperature, self.conformal, self.unknown = temperature, conformal, unknown
        self.multilabel = bool(multilabel)
        self.calib_probs, self.calib_labels, self.calib_scores = calib_probs, calib_labels, calib_scores
        self._alpha_sets: dict[tuple[float, bool], ConformalSets] = {}

    # ------------------------------------------------------------------ answers
    def calibrate(self, probs: np.ndarray) -> np.ndarray:
        """Temperature-scaled probabilities from the network's (N, K) probabilities, float32."""
        if len(probs) == 0:
            return np.asarray(probs, np.float32)
        return self.temperature.probabilities(logits_from_probs(probs, self.multilabel)).astype(np.float32)

    def unknown_scores(self, features: np.ndarray | None, probs: np.ndarray | None = None) -> np.ndarray:
        """(N,) unknown scores (nan without a scorer)."""
        n = len(features) if features is not None else (len(probs) if probs is not None else 0)
        if self.unknown is None or (features is None and self.unknown.method != "energy"):
            return np.full(n, np.nan)
        if isinstance(self.unknown, EnsembleUnknown):
            if probs is None:
                raise ValueError("the ensemble unknown score needs the probabilities too: unknown_scores(features, "
                                 "probs)")
            return self.unknown.score(features, probs)
        if self.unknown.method == "energy":
            return self.unknown.score(logits=logits_from_probs(probs, self.multilabel))
        return self.unknown.score(features=features)

    def sets_for(self, alpha: float | None = None, class_conditional: bool | None = None) -> ConformalSets:
        """The fitted sets, or sets refitted on the kept calibration maps for another alpha / option."""
        a = self.conformal.alpha if alpha is None else float(alpha)
        cc = self.conformal.class_conditional if class_conditional is None else bool(class_conditional)
        if (a, cc) == (self.conformal.alpha, self.conformal.class_conditional) or self.calib_probs is None:
            return self.conformal
        key = (a, cc)
        if key not in self._alpha_sets:
            self._alpha_sets[key] = ConformalSets(a, cc, self.multilabel).fit(self.calib_probs, self.calib_labels)
        return self._alpha_sets[key]

    def answer(self, probs: np.ndarray, features: np.ndarray | None, class_names: list[str],
               alpha: float | None = None, class_conditional: bool | None = None) -> Answers:
        """Decisions, sets and unknown scores for calibrated `probs` (N, K) and the network's `features`."""
        sets = self.sets_for(alpha, class_conditional)
        scores = self.unknown_scores(features, probs)
        unknown = self.unknown.is_unknown(scores) if self.unknown is not None else np.zeros(len(probs), bool)
        if self.multilabel:
            members = sets.decided(probs) if len(probs) else np.zeros((0, len(class_names)), np.int8)
            decision, text = [], []
            for row, unk in zip(members, unknown):
                undecided = [c for c, d in zip(class_names, row) if d < 0]
                text.append("|".join(undecided))
                decision.append(UNKNOWN if unk else REVIEW if undecided else
                                ";".join(c for c, d in zip(class_names, row) if d > 0) or "none")
        else:
            members = sets.sets(probs) if len(probs) else np.zeros((0, len(class_names)), bool)
            names = np.asarray(class_names, dtype=object)
            text = [";".join(names[row]) for row in members]
            decision = np.where(unknown, UNKNOWN, np.where(members.sum(axis=1) == 1, names[members.argmax(axis=1)],
                                                           REVIEW)).tolist() if len(members) else []
        return Answers(decision, text, scores, unknown, members)

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, Any]:
        """Plain data for a weights_only checkpoint."""
        def t(a: np.ndarray | None, dtype: torch.dtype) -> torch.Tensor | None:
            return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(dtype)

        return {"kind": "trust/1", "multilabel": self.multilabel, "temperature": self.temperature.state(),
                "conformal": self.conformal.state(),
                "unknown": None if self.unknown is None else self.unknown.state(),
                "calib_probs": t(self.calib_probs, torch.float32), "calib_labels": t(self.calib_labels, torch.int64),
                "calib_scores": t(self.calib_scores, torch.float32)}

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> "Trust":
        """Rebuild from `state()`."""
        def a(x: Any) -> np.ndarray | None:
            return None if x is None else x.numpy()

        unknown = st.get("unknown")
        if unknown is not None:
            unknown = (EnsembleUnknown.from_state(unknown) if unknown.get("kind") == "unknown_ensemble"
                       else UnknownScorer.from_state(unknown))
        return cls(TemperatureScaler.from_state(st["temperature"]), ConformalSets.from_state(st["conformal"]), unknown,
                   bool(st["multilabel"]), a(st.get("calib_probs")), a(st.get("calib_labels")),
                   a(st.get("calib_scores")))


def fit_trust(select_probs: np.ndarray, select_labels: np.ndarray, calib_probs: np.ndarray,
              calib_labels: np.ndarray, calib_features: np.ndarray | None, train_features: np.ndarray | None,
              train_labels: np.ndarray | None, *, multilabel: bool, alpha: float = DEFAULT_ALPHA,
              class_conditional: bool = False, unknown_method: str | None = "mahalanobis",
              false_alarm: float = DEFAULT_FALSE_ALARM, seed: int = 0) -> Trust:
    """Fit the trust layer from the network's raw probabilities: temperature on `select`, sets and the unknown
    threshold on `calib`, the unknown scorer on the training split's features (`unknown_method`: ensemble
    (`inference.unknown_ensemble`), mahalanobis, knn, or None: no unknown score)."""
    temperature = TemperatureScaler(multilabel).fit(logits_from_probs(select_probs, multilabel), select_labels)
    cal = temperature.probabilities(logits_from_probs(calib_probs, multilabel)) if len(calib_probs) else calib_probs
    conformal = ConformalSets(alpha, class_conditional, multilabel).fit(cal, calib_labels)
    unknown, scores = None, None
    if unknown_method == "ensemble":
        unknown = EnsembleUnknown(multilabel, seed=seed).fit(train_features, train_labels)
        scores = unknown.set_reference(calib_features, cal, false_alarm)
    elif unknown_method:
        unknown = UnknownScorer(unknown_method, multilabel=multilabel, seed=seed)
        if unknown_method != "energy":
            unknown.fit(train_features, train_labels)
        trust = Trust(temperature, conformal, unknown, multilabel)
        scores = trust.unknown_scores(calib_features, cal)
        unknown.set_threshold(scores, false_alarm)
    return Trust(temperature, conformal, unknown, multilabel, np.asarray(cal, np.float32),
                 np.asarray(calib_labels), None if scores is None else np.asarray(scores, np.float32))
