"""Trust in a trained classifier's answers: the select / calib split of the validation maps, fitting the trust layer
at the end of ``train`` (`inference.trust`), and the numbers ``evaluate`` reports about it.

Honest protocol: temperature on ``select`` (the split early stopping used), conformal quantiles and the unknown
threshold on ``calib``, the unknown score's centres on the training split. ECE is reported on ``calib`` (not the
split that fitted the temperature), coverage and the decided share on ``select`` (not the split that fitted the
sets).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.inference.conformal import coverage_report
from adrcs.inference.trust import REVIEW, UNKNOWN, Answers, Trust, fit_trust
from adrcs.metrics.calibration import calibration_report

Printer = Callable[[str], None]
MIN_CALIB = 20  # fewer validation maps than twice this: no split, no trust layer
SPLIT_FILE = "calibration_split.csv"


def split_select_calib(val: WaferMapSet, fraction: float, seed: int) -> tuple[WaferMapSet, WaferMapSet]:
    """`val` split by seed into ``select`` and ``calib`` (``fraction`` of the maps), stratified by class (multi-label:
    by label combination; strata with one map go to select)."""
    rng = np.random.default_rng(seed + 7919)
    labels = val.labels
    keys = (["".join(map(str, r)) for r in np.asarray(labels)] if val.multilabel else list(np.asarray(labels)))
    is_calib = np.zeros(len(val), bool)
    for key in dict.fromkeys(keys):
        rows = np.flatnonzero([k == key for k in keys]) if val.multilabel else np.flatnonzero(labels == key)
        if len(rows) < 2:
            continue
        take = int(round(len(rows) * fraction))
        take = min(max(take, 1), len(rows) - 1)
        is_calib[rng.choice(rows, size=take, replace=False)] = True
    return val.subset(~is_calib), val.subset(is_calib)


def write_split(select: WaferMapSet, calib: WaferMapSet, out: Path) -> Path:
    """``calibration_split.csv``: source, index and part (select | calib) of every validation map."""
    rows = [pd.DataFrame({"source": ds.meta["source"].astype(str).values, "index": ds.meta["index"].values,
                          "part": part}) for part, ds in (("select", select), ("calib", calib))]
    path = out / SPLIT_FILE
    pd.concat(rows, ignore_index=True).to_csv(path, index=False)
    return path


def raw_outputs(pipe: Any, ds: WaferMapSet, limit: int | None = None, seed: int = 0,
                real_only: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network's uncalibrated probabilities, features and labels of `ds` (at most `limit` maps, drawn by seed;
    `real_only` leaves out synthetic maps)."""
    rows = np.arange(len(ds))
    if real_only and "synthetic" in ds.meta.columns:
        rows = rows[~ds.meta["synthetic"].to_numpy(bool)]
    if limit is not None and len(rows) > limit:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=limit, replace=False))
    sub = ds.subset(rows) if len(rows) != len(ds) else ds
    x = pipe.prepare(sub.maps)
    probs, feats = pipe.predict_outputs(x, calibrated=False)
    y = np.clip(sub.labels, 0, None) if sub.multilabel else sub.labels
    return probs, feats, y


def fit_trust_run(cfg: dict[str, Any], pipe: Any, train_set: WaferMapSet, select: WaferMapSet,
                  calib: WaferMapSet, out: Path, say: Printer) -> dict[str, Any]:
    """Fit the trust layer of a wafer-map model, save it in the checkpoint, write the split and plots; returns
    the metrics block."""
    method = None if cfg["unknown"] == "none" else cfg["unknown"]
    train_out = None
    if method:
        _, f_tr, y_tr = raw_outputs(pipe, train_set, limit=20_000, seed=int(cfg["seed"]), real_only=True)
        train_out = (f_tr, y_tr)
    info = fit_trust_outputs(cfg, pipe, raw_outputs(pipe, select), raw_outputs(pipe, calib), train_out, out, say)
    write_split(select, calib, out)
    return {**info, "split_file": SPLIT_FILE}


def fit_trust_outputs(cfg: dict[str, Any], pipe: Any, sel: tuple[np.ndarray, np.ndarray, np.ndarray],
                      cal: tuple[np.ndarray, np.ndarray, np.ndarray],
                      train: tuple[np.ndarray, np.ndarray] | None, out: Path, say: Printer) -> dict[str, Any]:
    """Any classifier: fit the trust layer from the network's raw (probabilities, features, labels) of select and
    calib and the training features (None: no unknown score), set `pipe.trust`, save the checkpoint, write the
    reliability and risk-coverage plots; returns the metrics block."""
    method = None if cfg["unknown"] == "none" or train is None else cfg["unknown"]
    (p_sel, f_sel, y_sel), (p_cal, f_cal, y_cal) = sel, cal
    f_tr, y_tr = train if train is not None else (None, None)
    trust = fit_trust(p_sel, y_sel, p_cal, y_cal, f_cal, f_tr, y_tr, multilabel=pipe.multilabel,
                      alpha=float(cfg["alpha"]), class_conditional=bool(cfg["class_conditional"]),
                      unknown_method=method, false_alarm=float(cfg["unknown_false_alarm"]), seed=int(cfg["seed"]))
    pipe.trust = trust
    store_trust(out, trust)
    plots = out / "plots"
    before = calibration_report(p_cal, y_cal, pipe.multilabel)
    after = calibration_report(trust.calibrate(p_cal), y_cal, pipe.multilabel)
    from adrcs.report.reliability_plots import plot_reliability

    plot_reliability(before, after, plots / "reliability.png", title="Reliability on the calib split")
    on_select = decision_report(pipe, trust, trust.calibrate(p_sel), f_sel, y_sel, plots, say=None)
    info = {"n_select": len(p_sel), "n_calib": len(p_cal),
            "temperature": [round(float(t), 4) for t in trust.temperature.temperatures],
            "calib": {"ece_before": before["ece"], "mce_before": before["mce"], "ece": after["ece"],
                      "mce": after["mce"]},
            "select": on_select, "alpha": float(cfg["alpha"]), "class_conditional": bool(cfg["class_conditional"]),
            "unknown": method or "none",
            "unknown_threshold": None if trust.unknown is None else float(trust.unknown.threshold)}
    say(f"trust: temperature {info['temperature'][:3]}{'...' if len(info['temperature']) > 3 else ''}; "
        f"ECE on calib {before['ece']:.4f} -> {after['ece']:.4f}; on select: coverage {_pct(on_select['coverage'])}"
        f" (1 - alpha = {1 - float(cfg['alpha']):.0%}), decided {_pct(on_select['decided_share'])}, review "
        f"{_pct(on_select['review_share'])}, unknown {_pct(on_select['unknown_share'])}")
    return info


def store_trust(run_dir: Path, trust: Trust) -> None:
    """Put the trust layer into the run's saved checkpoint in place: the weights and every other field stay as
    `train` wrote them (a loaded model has BatchNorm folded into its convolutions and must not be re-saved)."""
    from adrcs.inference.predictor import CHECKPOINT_NAME

    path = Path(run_dir) / CHECKPOINT_NAME
    ck = torch.load(path, map_location="cpu", weights_only=True)
    ck["trust"] = trust.state()
    tmp = path.with_suffix(".tmp")
    torch.save(ck, tmp)
    tmp.replace(path)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def decision_report(pipe: Any, trust: Trust, probs: np.ndarray, feats: np.ndarray, y: np.ndarray,
                    plot_dir: Path | None, say: Printer | None = print, alpha: float | None = None) -> dict[str, Any]:
    """Coverage, set sizes, decided / review / unknown shares (overall and per class) and accuracy / macro-F1 on the
    decided maps of calibrated `probs` against labels `y`; risk-coverage plot in `plot_dir`."""
    from sklearn.metrics import f1_score

    names = list(pipe.class_names)
    ans = trust.answer(probs, feats, names, alpha=alpha)
    sets = trust.sets_for(alpha).sets(probs) if len(probs) else np.zeros((0, len(names)), bool)
    cov = coverage_report(sets, y)
    decision = np.asarray(ans.decision, dtype=object)
    decided = (decision != REVIEW) & (decision != UNKNOWN)
    n = max(len(decision), 1)
    rep: dict[str, Any] = {
        "alpha": trust.sets_for(alpha).alpha, "coverage": cov.get("coverage"),
        "decided_share": float(decided.sum() / n), "review_share": float((decision == REVIEW).sum() / n),
        "unknown_share": float((decision == UNKNOWN).sum() / n), "n": int(len(decision)),
    }
    if pipe.multilabel:
        rep.update({k: cov.get(k) for k in ("per_label_coverage", "per_label_present_coverage", "joint_coverage",
                                            "undecided_share")})
        rep["per_label_coverage"] = {names[int(k)]: v for k, v in (rep["per_label_coverage"] or {}).items()}
        hard = (probs >= 0.5).astype(int)
        if decided.any():
            rep["decided_exact_match"] = float((hard[decided] == y[decided]).all(axis=1).mean())
            rep["decided_macro_f1"] = float(f1_score(y[decided], hard[decided], average="macro", zero_division=0))
        correct = (hard == y).all(axis=1)
    else:
        rep["mean_set_size"] = cov.get("mean_set_size")
        rep["per_class_coverage"] = {names[int(k)]: v for k, v in cov.get("per_class_coverage", {}).items()}
        pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, int)
        rep["per_class_decided_share"] = {names[k]: float(decided[y == k].mean()) for k in np.unique(y)}
        if decided.any():
            rep["decided_accuracy"] = float((pred[decided] == y[decided]).mean())
            rep["decided_macro_f1"] = float(f1_score(y[decided], pred[decided], labels=list(range(len(names))),
                                                     average="macro", zero_division=0))
        correct = pred == y
    conf = probs.max(axis=1) if not pipe.multilabel else np.where(probs >= 0.5, probs, 1 - probs).min(axis=1)
    if plot_dir is not None and len(probs):
        from adrcs.metrics.calibration import risk_coverage
        from adrcs.report.reliability_plots import plot_risk_coverage

        rep["aurc"] = risk_coverage(conf, correct)["aurc"]
        plot_risk_coverage(conf, correct, Path(plot_dir) / "risk_coverage.png")
    if say is not None:
        say(f"decided {_pct(rep['decided_share'])} (review {_pct(rep['review_share'])}, unknown "
            f"{_pct(rep['unknown_share'])}); coverage {_pct(rep['coverage'])} at alpha {rep['alpha']}"
            + (f"; on the decided maps macro-F1 {rep['decided_macro_f1']:.4f}" if "decided_macro_f1" in rep else ""))
    return rep


def trust_evaluation(pipe: Any, ds: WaferMapSet, plot_dir: Path, tta: bool | None, say: Printer,
                     alpha: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Calibrated probabilities of `ds` and the trust block of ``evaluate``: ece / mce before and after scaling
    (reliability diagram), coverage, set sizes, decided shares, accuracy on the decided maps."""
    with torch.inference_mode():
        raw, feats = pipe.predict_outputs(pipe.prepare(ds.maps), tta=tta, calibrated=False)
    y = np.clip(ds.labels, 0, None) if ds.multilabel else ds.labels
    if pipe.trust is None:
        rep = calibration_report(raw, y, pipe.multilabel)
        return raw, {"ece": rep["ece"], "mce": rep["mce"], "calibrated": False}
    probs = pipe.trust.calibrate(raw)
    before, after = calibration_report(raw, y, pipe.multilabel), calibration_report(probs, y, pipe.multilabel)
    from adrcs.report.reliability_plots import plot_reliability

    plot_reliability(before, after, Path(plot_dir) / "reliability.png")
    rep = {"ece": after["ece"], "mce": after["mce"], "ece_before": before["ece"], "mce_before": before["mce"],
           "calibrated": True, **decision_report(pipe, pipe.trust, probs, feats, y, plot_dir, say, alpha)}
    say(f"ECE {before['ece']:.4f} -> {after['ece']:.4f} after temperature scaling (MCE {after['mce']:.4f})")
    return probs, rep


def answer_columns(pipe: Any, probs: np.ndarray, feats: np.ndarray | None,
                   alpha: float | None = None) -> dict[str, Any]:
    """The predictions CSV's trust columns: decision, unknown_score, set (see `inference.trust`)."""
    names = list(pipe.class_names)
    if pipe.trust is None:  # a model trained before the trust layer: the plain decision, no set, no score
        if pipe.multilabel:
            dec = [";".join(n for n, h in zip(names, r) if h >= 0.5) or "none" for r in probs]
        else:
            dec = [names[i] for i in probs.argmax(axis=1)] if len(probs) else []
        return {"decision": dec, "unknown_score": np.full(len(probs), np.nan), "set": ["" for _ in dec]}
    ans: Answers = pipe.trust.answer(probs, feats, names, alpha=alpha)
    return {"decision": ans.decision, "unknown_score": np.round(ans.unknown_score, 4), "set": ans.sets}
