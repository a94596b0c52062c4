"""The drift status ``GET /v1/stats`` gives per deployed model: `monitoring.drift.DriftMonitor`'s report on the
model's recent inspections, plus what an engineer reads first (added keys; the monitor's keys are kept):

- ``statistic``: the class-shift statistic (``name`` psi | chi2, ``value``, for chi2 its ``p_value``), the
  ``threshold`` it is judged against (PSI: ``psi_alert``, judged on the value; chi2: ``p_value``, judged on the
  p-value: ``threshold_on``), ``warn_threshold`` and ``alert``;
- ``changes``: the classes whose share moved most, ``{class, reference, recent, delta}`` (largest change first,
  at most ``DriftConfig.top_classes``, unchanged ones left out);
- ``unknown_rate``: recent vs reference share of ``unknown`` decisions and its alert (the monitor's check; only for
  a model with an unknown-pattern score, else ``{"status": "not_available"}``);
- ``alert``: the overall status is "alert"; ``kind`` and ``model_version``.

Records: the wafer model's are the newest wafer-map inspections (of any version, as before) of its product (a
product's champion: that part type's; the default champion: all others, `serve/products.py`); an image model's
are the newest image inspections of its version. One monitor per kind and loaded version (its Monte Carlo null
distributions stay cached).
"""
from __future__ import annotations

from typing import Any

from adrcs.monitoring.drift import DriftConfig, DriftMonitor


def _has_unknown_score(model: Any) -> bool:
    return getattr(getattr(model, "trust", None), "unknown", None) is not None


def statistic_summary(report: dict[str, Any], config: DriftConfig) -> dict[str, Any] | None:
    """The class-shift statistic, its threshold and alert flag (None while there is too little data)."""
    shift = report.get("class_shift")
    if shift is None:
        return None
    out: dict[str, Any] = {"name": report["method"], "value": shift["statistic"], "alert": shift["status"] == "alert"}
    if report["method"] == "psi":
        out.update(threshold=config.psi_alert, warn_threshold=config.psi_warn, threshold_on="value")
    else:
        out.update(p_value=shift.get("p_value"), threshold=config.p_value, warn_threshold=config.p_warn,
                   threshold_on="p_value")
    return out


def class_changes(report: dict[str, Any], top: int) -> list[dict[str, Any]]:
    """The classes whose share moved most between the reference and the recent window."""
    shift = report.get("class_shift")
    if shift is None:
        return []
    rows = []
    for name, expected in shift["expected"].items():
        recent = shift["observed"].get(name) or 0.0
        delta = recent - (expected or 0.0)
        if abs(delta) > 1e-9:
            rows.append({"class": name, "reference": expected, "recent": recent, "delta": round(delta, 6)})
    rows.sort(key=lambda r: (-abs(r["delta"]), r["class"]))
    return rows[:top]


class DriftViews:
    """Drift reports of the deployed models over the store's recent inspections."""

    def __init__(self, store: Any, host: Any, config: DriftConfig) -> None:
        self.store, self.host, self.config = store, host, config
        self._monitors: dict[tuple[str, str | None], tuple[str, DriftMonitor]] = {}

    def _monitor(self, kind: str, part: str | None, model: Any) -> DriftMonitor:
        have = self._monitors.get((kind, part))
        if have is None or have[0] != model.version:
            have = self._monitors[(kind, part)] = (model.version, DriftMonitor(model.reference, self.config))
        return have[1]

    def report(self, kind: str = "wafer", part_type: str | None = None) -> dict[str, Any]:
        """The drift report of the `kind` champion of product `part_type` (None: the default champion, judged on
        the maps it answered: those of no product with its own champion) against its own reference (``status``
        no_model / no_reference when there is none)."""
        try:
            model = self.host.current(kind, part_type)
        except LookupError as e:
            return {"status": "no_model", "detail": str(e), "kind": kind}
        if model.reference is None:
            return {"status": "no_reference", "detail": "the model's run folder has no validation class mix",
                    "kind": kind, "model_version": model.version}
        if kind == "wafer":
            own = {} if part_type is not None else self.host.products(kind)
            rows = self.store.recent_predictions(self.config.window, kind="wafer_map", with_decision=True,
                                                 part_type=part_type, other_parts=sorted(own))
        else:
            rows = self.store.recent_predictions(self.config.window, kind="image", model_version=model.version,
                                                 with_decision=True)
        scored = _has_unknown_score(model)
        out = self._monitor(kind, part_type, model).status([r if scored else r[:3] for r in rows])
        if out["unknown_rate"] is None:
            out["unknown_rate"] = {"status": "not_available" if not scored else "insufficient_data", "alert": False,
                                   "detail": "the model has no unknown-pattern score" if not scored
                                   else "no recent inspection carries a decision"}
        out.update(kind=kind, model_version=model.version, part_type=part_type, alert=out["status"] == "alert",
                   statistic=statistic_summary(out, self.config),
                   changes=class_changes(out, self.config.top_classes))
        return out

    def reports(self, kinds: list[str]) -> dict[str, dict[str, Any]]:
        """Kind -> `report` for each of `kinds`."""
        return {k: self.report(k) for k in kinds}

    def product_reports(self, kind: str = "wafer") -> dict[str, dict[str, Any]]:
        """Part type -> `report` of each product of `kind` with its own champion (and drift reference)."""
        return {p: self.report(kind, p) for p in sorted(self.host.products(kind))}
