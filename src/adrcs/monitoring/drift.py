"""Drift monitor: compares the most recent ``window`` predictions with the training reference.

* **class shift**: the mix of predicted classes against the reference class distribution;
* **confidence shift**: the top-1 confidence histogram against the reference's (skipped when it has none);
* **unknown rate** (records carrying the trust layer's decision, the optional fourth field; others are left out):
  the share of ``unknown`` decisions against the reference's ``unknown_rate`` (share on the select split), else
  ``unknown_false_alarm`` (0.05, the rate the unknown threshold was set to). Exact one-sided binomial test (more
  unknowns than that rate explains?): p = P(X >= k), X ~ Binomial(n, rate); ``p < p_value`` -> "alert",
  ``p < p_warn`` -> "warning". A reference rate of 0 (a small select split) counts as 1 / (n_reference + 1).

Shifts are measured with the population stability index (``method="psi"``, default) or Pearson's chi-square
goodness-of-fit test (``"chi2"``). Lots (the optional third field) are checked on their own against the reference
class mix with ``lot_method`` (chi-square by default: PSI is unreliable on the 20-25 wafers of a lot).

Design choices:

* PSI: ``>= psi_alert`` -> "alert", ``>= psi_warn`` -> "warning" (0.1 / 0.25, the usual rule of thumb).
  Chi-square: ``p < p_value`` -> "alert", ``p < p_warn`` -> "warning".
* Lots use stricter chi-square thresholds (``lot_p_value`` 0.001, ``lot_p_warn`` 0.01): many lots are tested,
  and a 5 % false-flag rate per lot would bury the real ones. Their p-value is a Monte Carlo (parametric
  bootstrap) p-value under the reference multinomial (``lot_simulations`` draws, seeded, cached per lot size):
  the asymptotic chi-square distribution is far too liberal for ~25 wafers over 9 classes with rare ones
  (``lot_simulations=0``: asymptotic). With ``lot_method="psi"`` lots use the PSI thresholds (noisy).
* The overall ``status`` is the worst of the class, confidence and unknown-rate checks. Lot flags do **not**
  change it (an unusual lot is a process event, not model drift): see ``lots`` / ``flagged_lots`` /
  ``lot_status`` (worst flagged lot, "ok" when none).
* Below ``min_window`` predictions the status is "insufficient_data", the shifts ``None``; lots with >= ``lot_min_size``
  predictions in the window are still checked. Classes not in the reference count into ``"other"`` (reference
  probability ``epsilon``); empty bins are smoothed to ``epsilon`` before PSI / chi-square.
* Confidence bins: the reference's edges are authoritative (``confidence_bins`` is the bin count of
  :meth:`DriftMonitor.make_reference`); values clipped to [0, 1], ``None`` / NaN left out. PSI and chi-square
  are symmetric: a confidence rise is flagged as well as a drop; ``direction`` ("lower" / "higher") says which.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

OTHER = "other"
UNKNOWN = "unknown"  # the trust layer's decision for an unknown pattern (`inference.trust`)
METHODS = ("psi", "chi2")
_SEVERITY = {"ok": 0, "insufficient_data": 0, "warning": 1, "alert": 2}


@dataclass
class DriftConfig:
    """Settings of the drift monitor (see the module docstring for the meaning of each status)."""

    window: int = 500                 # most recent predictions compared with the reference
    method: str = "psi"               # "psi" | "chi2" for the class and confidence shifts
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    p_value: float = 0.01             # chi2: p below it -> "alert"
    p_warn: float = 0.05              # chi2: p below it -> "warning"
    confidence_bins: int = 10         # equal bins on [0, 1] for references built by make_reference
    min_window: int = 50              # fewer predictions -> "insufficient_data"
    lot_min_size: int = 20            # lots with fewer predictions in the window are not checked
    lot_method: str = "chi2"          # "psi" | "chi2" for the per-lot check
    lot_p_value: float = 0.001        # lot chi2: p below it -> "alert"
    lot_p_warn: float = 0.01          # lot chi2: p below it -> "warning"
    lot_simulations: int = 2000       # Monte Carlo draws for lot chi2 p-values (0: asymptotic)
    seed: int = 0                     # seed of the Monte Carlo draws (reports are reproducible)
    epsilon: float = 1e-4             # smoothing of empty bins
    top_classes: int = 3              # classes listed per flagged lot
    unknown_false_alarm: float = 0.05  # reference unknown rate when the reference has none

    def __post_init__(self) -> None:
        for name in ("method", "lot_method"):
            if getattr(self, name) not in METHODS:
                raise ValueError(f"DriftConfig.{name} must be one of {METHODS}, not {getattr(self, name)!r}")
        if self.window < 1 or self.min_window < 1 or self.lot_min_size < 1:
            raise ValueError("DriftConfig.window, min_window and lot_min_size must be >= 1")
        if not 0 < self.psi_warn <= self.psi_alert:
            raise ValueError("DriftConfig needs 0 < psi_warn <= psi_alert")
        if not (0 < self.p_value <= self.p_warn < 1 and 0 < self.lot_p_value <= self.lot_p_warn < 1):
            raise ValueError("DriftConfig needs 0 < p_value <= p_warn < 1 and 0 < lot_p_value <= lot_p_warn < 1")
        if self.lot_simulations < 0:
            raise ValueError("DriftConfig.lot_simulations must be >= 0")
        if self.confidence_bins < 1 or self.epsilon <= 0 or not 0 < self.unknown_false_alarm < 1:
            raise ValueError("DriftConfig needs confidence_bins >= 1, epsilon > 0 and 0 < unknown_false_alarm < 1")


def _normalize(x: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or a.size == 0 or np.any(a < 0) or not np.all(np.isfinite(a)):
        raise ValueError("expected a non-empty 1-D array of finite non-negative values")
    s = a.sum()
    return a / s if s > 0 else np.full(a.size, 1.0 / a.size)


def _smooth(p: np.ndarray, eps: float) -> np.ndarray:
    # floor empty / tiny bins at eps, then renormalise
    q = np.maximum(p, eps)
    return q / q.sum()


@dataclass
class Reference:
    """Reference (training / validation) distribution of predicted classes and of confidence."""

    class_names: list[str]
    class_probs: list[float]
    confidence_hist: list[float] | None = None       # fraction per confidence bin
    confidence_edges: list[float] | None = None      # len(confidence_hist) + 1 edges on [0, 1]
    confidence_mean: float | None = None
    n: int = 0                                       # number of reference samples (information only)
    meta: dict[str, Any] = field(default_factory=dict)
    unknown_rate: float | None = None                # share of "unknown" decisions (None: not measured)

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.class_probs) or not self.class_names:
            raise ValueError("Reference needs one probability per class name")
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError("Reference class names must be unique")
        self.class_probs = [float(p) for p in _normalize(self.class_probs)]
        if self.confidence_hist is not None:
            self.confidence_hist = [float(p) for p in _normalize(self.confidence_hist)]
            if self.confidence_edges is None:   # equal bins on [0, 1]
                self.confidence_edges = [float(e) for e in np.linspace(0.0, 1.0, len(self.confidence_hist) + 1)]
            if len(self.confidence_edges) != len(self.confidence_hist) + 1:
                raise ValueError("Reference confidence_edges must have len(confidence_hist) + 1 values")
            if np.any(np.diff(self.confidence_edges) <= 0):
                raise ValueError("Reference confidence_edges must increase")

    @classmethod
    def from_counts(cls, class_counts: Mapping[str, int], confidences: Iterable[float] | None = None,
                    bins: int | Sequence[float] = 10) -> Reference:
        """Reference from class counts (predicted or true) and optional confidences (``None``: no
        confidence check). ``bins``: number of equal bins on [0, 1], or the bin edges."""
        names = [str(k) for k in class_counts]
        counts = [float(class_counts[k]) for k in class_counts]
        if sum(counts) <= 0:
            raise ValueError("Reference.from_counts needs at least one counted class")
        hist = edges = mean = None
        if confidences is not None:
            c = np.asarray(list(confidences), dtype=float)
            c = np.clip(c[np.isfinite(c)], 0.0, 1.0)
            if c.size:
                edges_a = np.linspace(0.0, 1.0, int(bins) + 1) if np.isscalar(bins) else np.asarray(bins, float)
                hist = [float(h) for h in _histogram(c, edges_a)]
                edges = [float(e) for e in edges_a]
                mean = float(c.mean())
        return cls(names, counts, hist, edges, mean, n=int(sum(counts)))

    @classmethod
    def from_predictions(cls, predicted: Iterable[str], confidences: Iterable[float] | None = None,
                         class_names: Sequence[str] | None = None, bins: int | Sequence[float] = 10) -> Reference:
        """Reference from a list of predicted (or true) class names; ``class_names`` adds classes
        never predicted (kept with probability 0, smoothed at check time) and fixes their order."""
        counts = Counter(str(p) for p in predicted)
        order = list(class_names) if class_names is not None else sorted(counts)
        order += sorted(k for k in counts if k not in order)
        return cls.from_counts({k: counts.get(k, 0) for k in order}, confidences, bins)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (class probabilities keyed by class name)."""
        return {"class_names": list(self.class_names),
                "class_probs": dict(zip(self.class_names, self.class_probs)),
                "confidence_hist": None if self.confidence_hist is None else list(self.confidence_hist),
                "confidence_edges": None if self.confidence_edges is None else list(self.confidence_edges),
                "confidence_mean": self.confidence_mean, "n": self.n, "meta": dict(self.meta),
                "unknown_rate": self.unknown_rate}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Reference:
        """Inverse of :meth:`to_dict`; ``class_probs`` may be a dict or a list aligned with ``class_names``."""
        probs = d["class_probs"]
        if isinstance(probs, Mapping):
            names = list(d.get("class_names") or probs)
            probs = [probs.get(k, 0.0) for k in names]
        else:
            names = list(d["class_names"])
        rate = d.get("unknown_rate")
        return cls(names, list(probs), d.get("confidence_hist"), d.get("confidence_edges"),
                   d.get("confidence_mean"), int(d.get("n", 0)), dict(d.get("meta") or {}),
                   None if rate is None else float(rate))


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # values outside the edges go into the first / last bin
    v = np.clip(values, edges[0], edges[-1])
    return np.histogram(v, bins=edges)[0].astype(float)


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index sum((a - e) * ln(a / e)) of two distributions (probabilities or
    counts, each normalised); bins below ``eps`` are smoothed to ``eps``. 0 for identical inputs."""
    e, a = _normalize(expected), _normalize(actual)
    if e.size != a.size:
        raise ValueError("psi needs two distributions over the same bins")
    e, a = _smooth(e, eps), _smooth(a, eps)
    return float(np.sum((a - e) * np.log(a / e)))


def chi_square(expected_probs: Sequence[float] | np.ndarray, observed_counts: Sequence[float] | np.ndarray,
               eps: float = 1e-4) -> tuple[float, float]:
    """Pearson chi-square goodness of fit of observed counts to expected probabilities
    (``scipy.stats.chisquare``); expected probabilities below ``eps`` are smoothed to ``eps``.
    Returns (statistic, p_value); (0.0, 1.0) when there is nothing to test."""
    p = _smooth(_normalize(expected_probs), eps)
    obs = np.asarray(observed_counts, dtype=float)
    if obs.shape != p.shape:
        raise ValueError("chi_square needs one observed count per expected probability")
    n = obs.sum()
    if n <= 0 or p.size < 2:
        return 0.0, 1.0
    res = stats.chisquare(obs, f_exp=p * n)
    return float(res.statistic), float(res.pvalue)


class DriftMonitor:
    """Checks recent predictions against a :class:`Reference`; see :meth:`status`."""

    def __init__(self, reference: Reference, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()
        self.reference = reference

    @property
    def reference(self) -> Reference:
        """The reference distribution (setting it clears the cached Monte Carlo null distributions)."""
        return self._reference

    @reference.setter
    def reference(self, value: Reference) -> None:
        self._reference = value
        self._null_cache: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def make_reference(cls, predicted: Iterable[str], confidences: Iterable[float] | None = None,
                       class_names: Sequence[str] | None = None, config: DriftConfig | None = None) -> Reference:
        """Reference from predictions, with ``config.confidence_bins`` equal confidence bins."""
        bins = (config or DriftConfig()).confidence_bins
        return Reference.from_predictions(predicted, confidences, class_names, bins)

    # -- status -------------------------------------------------------------------------------------
    def _judge(self, method: str, statistic: float, p_value: float | None, lot: bool = False) -> str:
        c = self.config
        if method == "psi":
            return "alert" if statistic >= c.psi_alert else "warning" if statistic >= c.psi_warn else "ok"
        assert p_value is not None
        alert, warn = (c.lot_p_value, c.lot_p_warn) if lot else (c.p_value, c.p_warn)
        return "alert" if p_value < alert else "warning" if p_value < warn else "ok"

    def _compare(self, method: str, expected: np.ndarray, counts: np.ndarray, lot: bool = False) -> dict[str, Any]:
        # statistic (+ p-value for chi2) and status of counts against expected probabilities
        eps = self.config.epsilon
        if method == "psi":
            stat, p = psi(expected, counts, eps), None
        else:
            stat, p = chi_square(expected, counts, eps)
            if lot and self.config.lot_simulations > 0:
                p = self._monte_carlo_p(expected, counts, stat)
        out: dict[str, Any] = {"statistic": _f(stat)}
        if method == "chi2":
            out["p_value"] = _f(p)
        out["status"] = self._judge(method, stat, p, lot)
        return out

    def _monte_carlo_p(self, expected: np.ndarray, counts: np.ndarray, stat: float) -> float:
        # P(chi2 statistic >= stat) for counts drawn from the (smoothed) reference multinomial
        n, k = int(counts.sum()), len(counts)
        null = self._null_cache.get((n, k))
        if null is None:
            p = _smooth(_normalize(expected), self.config.epsilon)
            rng = np.random.default_rng([self.config.seed, n, k])
            draws = rng.multinomial(n, p, size=self.config.lot_simulations)
            null = np.sort((((draws - n * p) ** 2) / (n * p)).sum(axis=1))
            if len(self._null_cache) >= 256:   # bound memory: lot sizes seen are few in practice
                self._null_cache.clear()
            self._null_cache[(n, k)] = null
        exceed = len(null) - np.searchsorted(null, stat * (1 - 1e-9), side="left")
        return float((1 + exceed) / (1 + len(null)))

    def _class_vectors(self, preds: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
        # categories (reference classes + "other" when unknown classes occur), expected probs, counts
        names = list(self.reference.class_names)
        index = {k: i for i, k in enumerate(names)}
        counts = np.zeros(len(names) + 1)
        for cls_name in preds:
            counts[index.get(cls_name, len(names))] += 1
        expected = np.append(np.asarray(self.reference.class_probs, float), 0.0)
        if counts[-1] == 0 and OTHER not in index:
            return names, expected[:-1], counts[:-1]
        return names + [OTHER if OTHER not in index else f"{OTHER}_unknown"], expected, counts

    def _class_shift(self, preds: Sequence[str], method: str) -> dict[str, Any]:
        names, expected, counts = self._class_vectors(preds)
        out = self._compare(method, expected, counts)
        observed = counts / counts.sum()
        out["expected"] = {k: _f(v) for k, v in zip(names, expected)}
        out["observed"] = {k: _f(v) for k, v in zip(names, observed)}
        return out

    def _confidence_shift(self, confs: Sequence[float]) -> dict[str, Any] | None:
        ref = self.reference
        if ref.confidence_hist is None or ref.confidence_edges is None or len(confs) < self.config.min_window:
            return None
        edges = np.asarray(ref.confidence_edges, float)
        c = np.clip(np.asarray(confs, float), 0.0, 1.0)
        counts = _histogram(c, edges)
        expected = np.asarray(ref.confidence_hist, float)
        out = self._compare(self.config.method, expected, counts)
        mean = float(c.mean())
        ref_mean = ref.confidence_mean if ref.confidence_mean is not None else float(
            np.dot(expected, (edges[:-1] + edges[1:]) / 2))
        out.update({"n": len(confs), "edges": [_f(e) for e in edges], "expected": [_f(v) for v in expected],
                    "observed": [_f(v) for v in counts / counts.sum()], "mean": _f(mean),
                    "reference_mean": _f(ref_mean), "direction": "lower" if mean < ref_mean else "higher"})
        return out

    def _unknown_rate(self, decisions: Sequence[str]) -> dict[str, Any] | None:
        # the one-sided binomial test of the module docs; None when no record carries a decision
        if not decisions:
            return None
        c, ref = self.config, self.reference
        n, k = len(decisions), sum(d == UNKNOWN for d in decisions)
        rate, source = (ref.unknown_rate, "reference") if ref.unknown_rate is not None else (
            c.unknown_false_alarm, "false_alarm")
        tested = max(rate, 1.0 / (ref.n + 1) if ref.n else c.epsilon)
        out: dict[str, Any] = {"n": n, "unknown": k, "recent": _f(k / n), "reference": _f(rate),
                               "reference_source": source, "test": "binomial, one-sided", "p_value": None,
                               "threshold": c.p_value, "alert": False, "status": "insufficient_data"}
        if n >= c.min_window:
            p = float(stats.binom.sf(k - 1, n, tested)) if k else 1.0
            status = self._judge("chi2", 0.0, p)  # the p-value thresholds of the class shift
            out.update(p_value=_f(p), status=status, alert=status == "alert")
        return out

    def _lots(self, records: Sequence[tuple[str, float | None, Any, Any]]) -> list[dict[str, Any]]:
        groups: dict[str, list[str]] = defaultdict(list)
        for pred, _, lot, _ in records:
            if lot is not None:
                groups[str(lot)].append(pred)
        method = self.config.lot_method
        flagged = []
        for lot, preds in groups.items():
            if len(preds) < self.config.lot_min_size:
                continue
            names, expected, counts = self._class_vectors(preds)
            res = self._compare(method, expected, counts, lot=True)
            if res["status"] == "ok":
                continue
            frac = counts / counts.sum()
            top = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))[: self.config.top_classes]
            flagged.append({"lot": lot, "n": len(preds), **res,
                            "top_classes": [{"class": names[i], "fraction": _f(frac[i]), "expected": _f(expected[i])}
                                            for i in top if counts[i] > 0]})
        # most severe first: alert before warning, then smallest p-value / largest PSI
        flagged.sort(key=lambda d: (-_SEVERITY[d["status"]], _severity_key(d), d["lot"]))
        return flagged

    def status(self, recent: Iterable[Sequence[Any]]) -> dict[str, Any]:
        """Drift report (JSON-ready) of the most recent ``config.window`` records
        ``(predicted_class, confidence | None[, lot | None[, decision | None]])``."""
        records = [_record(r) for r in recent][-self.config.window:]
        preds = [r[0] for r in records]
        confs = [r[1] for r in records if r[1] is not None]
        n, method = len(records), self.config.method
        report: dict[str, Any] = {"status": "insufficient_data", "window": n, "method": method,
                                  "class_shift": None, "confidence_shift": None,
                                  "unknown_rate": self._unknown_rate([r[3] for r in records if r[3] is not None])}
        if n >= self.config.min_window:
            report["class_shift"] = self._class_shift(preds, method)
            report["confidence_shift"] = self._confidence_shift(confs)
            shifts = [s["status"] for s in (report["class_shift"], report["confidence_shift"], report["unknown_rate"])
                      if s is not None and s["status"] != "insufficient_data"]
            report["status"] = max(shifts, key=_SEVERITY.__getitem__)
        lots = self._lots(records)
        report["lot_method"] = self.config.lot_method
        report["lots"] = lots
        report["flagged_lots"] = [d["lot"] for d in lots]
        report["lot_status"] = lots[0]["status"] if lots else "ok"
        return report


def _record(r: Sequence[Any]) -> tuple[str, float | None, Any, str | None]:
    # normalise one record to (class, confidence or None, lot or None, decision or None)
    if isinstance(r, str) or len(r) not in (2, 3, 4):
        raise ValueError(f"drift records are (class, confidence[, lot[, decision]]) tuples, not {r!r}")
    conf = r[1]
    if conf is not None:
        conf = float(conf)
        if not math.isfinite(conf):
            conf = None
    decision = r[3] if len(r) == 4 else None
    return str(r[0]), conf, (r[2] if len(r) >= 3 else None), (None if decision is None else str(decision))


def _severity_key(d: Mapping[str, Any]) -> float:
    # smaller = more severe (None stands for an infinite statistic / zero p-value)
    if "p_value" in d:
        return 0.0 if d["p_value"] is None else d["p_value"]
    return -math.inf if d["statistic"] is None else -d["statistic"]


def _f(x: float | None) -> float | None:
    # plain JSON float (no numpy scalars, no NaN / inf)
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
