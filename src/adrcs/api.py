"""The Python API behind the CLI verbs: `train`, `evaluate`, `predict`, `info`, `convert`, `synth_*`.

Each CLI verb is a thin wrapper over the function of the same name. Functions that read data
files take ``trust_pickle`` (unpickle anything: only for files you trust; default the strict
unpickler) and ``limits`` (`InputLimits`: uncompressed bytes, map side, map count).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from adrcs.config import save_config
from adrcs.data.fab import FabOptions
from adrcs.data.limits import InputLimits
from adrcs.api_reading import read_maps
from adrcs.data.loader import load, summarize
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.errors import InputError
from adrcs.api_trust import MIN_CALIB, answer_columns, fit_trust_run, split_select_calib, trust_evaluation
from adrcs.inference.decisions import confidence, decide
from adrcs.report.evaluation import evaluation_report
from adrcs.pipeline import Pipeline
from adrcs.api_train_steps import balance_run, distill_targets_run, sinogram_features_run

Printer = Callable[[str], None]


def _labeled(ds: WaferMapSet, what: str, say: Printer) -> WaferMapSet:
    n_unlabeled = int((~ds.labeled_mask).sum())
    if n_unlabeled:
        say(f"{what}: skipping {n_unlabeled} unlabeled maps (kept for predict)")
    out = ds.labeled()
    if len(out) == 0:
        raise InputError(ds.meta["source"].iloc[0] if len(ds) else None, f"{what} has no labeled maps")
    return out


def split_holdout(ds: WaferMapSet, fraction: float, seed: int) -> tuple[WaferMapSet, WaferMapSet]:
    """Stratified train/val split of a labeled set (used when no validation file is given)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(ds))
    strat = None
    if not ds.multilabel:
        counts = np.bincount(ds.labels, minlength=len(ds.class_names))
        n_test = int(np.ceil(fraction * len(ds)))
        present = int((counts > 0).sum())
        ok = counts[counts > 0].min() >= 2 and present <= n_test <= len(ds) - present
        strat = ds.labels if ok else None
    tr, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=strat)
    return ds.subset(tr), ds.subset(va)


def _resolve_multilabel(cfg: dict[str, Any], ds: WaferMapSet) -> None:
    want = cfg["multilabel"]
    if want != "auto" and bool(want) != ds.multilabel:
        kind = "multi-label" if ds.multilabel else "single-label"
        raise InputError(None, f"config multilabel={want} but the training data is {kind}")


def train(cfg: dict[str, Any], train_paths: Sequence[str | Path], val_paths: Sequence[str | Path] | None,
          out: str | Path, say: Printer = print, *, trust_pickle: bool = False,
          limits: InputLimits | None = None, fab: FabOptions | None = None, on_error: str = "stop",
          unlabeled_paths: Sequence[str | Path] | None = None) -> dict[str, Any]:
    """Train a classifier as configured; writes config.yaml, model.ckpt, metrics.json, plots/ and logs/.

    `unlabeled_paths`: wafer-map files whose maps (labels ignored) the run learns from without labels, as
    ``semi_supervised`` says (`api_unlabeled`). Returns the validation report (metrics.json's `val`)."""
    from adrcs.engine.fixmatch import semi_options

    semi_options(cfg.get("semi_args"))  # a bad option fails before any file is read
    train_all = _labeled(read_maps(train_paths, say, trust_pickle=trust_pickle, limits=limits, fab=fab,
                                   on_error=on_error), "train", say)
    _resolve_multilabel(cfg, train_all)
    if val_paths:
        val = _labeled(read_maps(val_paths, say, trust_pickle=trust_pickle, limits=limits, fab=fab,
                                 on_error=on_error), "val", say)
        try:
            val = val.with_classes(train_all.class_names)
        except ValueError as e:
            raise InputError(val_paths[0], str(e))
        train_set = train_all
    else:
        train_set, val = split_holdout(train_all, float(cfg["val_fraction"]), int(cfg["seed"]))
        say(f"no --val given: holding out {len(val)} of {len(train_all)} training maps (stratified)")
    pool = None
    if unlabeled_paths:
        from adrcs.api_unlabeled import honest_pool, read_unlabeled

        pool, pool_info = honest_pool(read_unlabeled(unlabeled_paths, say, trust_pickle=trust_pickle, limits=limits,
                                                     fab=fab, on_error=on_error), train_set, val, say)
    run_cfg = dict(cfg, train=[str(p) for p in train_paths], val=[str(p) for p in (val_paths or [])],
                   **({"unlabeled": [str(p) for p in unlabeled_paths]} if unlabeled_paths else {}))
    return train_sets(run_cfg, train_set, val, out, say, unlabeled=pool,
                      unlabeled_info=pool_info if pool is not None else None)


def train_sets(cfg: dict[str, Any], train_set: WaferMapSet, val: WaferMapSet, out: str | Path,
               say: Printer = print, unlabeled: WaferMapSet | None = None,
               unlabeled_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """`train` on datasets already in memory (labeled, same classes): balance, features, fit, evaluate.
    `unlabeled`: maps without labels (never val maps), used as ``cfg['semi_supervised']`` says.

    Writes the run folder and returns the validation report."""
    from adrcs.engine.fixmatch import resolve_method
    from adrcs.tasks.fitting import fit

    semi = resolve_method(cfg, 0 if unlabeled is None else len(unlabeled), say)
    if semi == "fixmatch" and train_set.multilabel:
        raise InputError(None, "semi_supervised: fixmatch is for single-label maps (this training data is "
                               "multi-label); use `adrcs pretrain` + --init for multi-label data")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    balance_info = None
    if cfg["balance"] != "none":  # after the split: synthesis only ever sees the training maps
        train_set, balance_info = balance_run(cfg, train_set, out, say)
    soft, distill_info = None, None
    if cfg.get("distill_from"):  # after balancing: synthetic maps get the teachers' targets too
        train_set, soft, distill_info = distill_targets_run(cfg, train_set, say,
                                                            unlabeled if semi == "distill" else None)
    features, features_info = None, None
    if cfg["features"] == "sinogram":  # fitted on the (balanced) training split only
        features, features_info = sinogram_features_run(cfg, train_set, out, say, unlabeled)
    say(f"training {cfg['model']} on {len(train_set)} maps ({len(train_set.class_names)} "
        f"{'labels' if train_set.multilabel else 'classes'}), validating on {len(val)}, input {cfg['input_size']}px"
        + (f", {features.n_features_out} sinogram features" if features is not None else ""))
    select, calib = val, None
    if cfg["calibrate"] and len(val) >= 2 * MIN_CALIB:  # select: early stopping + temperature; calib: sets, unknown
        select, calib = split_select_calib(val, float(cfg["calib_fraction"]), int(cfg["seed"]))
        say(f"validation maps: {len(select)} select (early stopping, temperature), {len(calib)} calib "
            "(prediction sets, unknown threshold)")
    if semi == "fixmatch":
        say(f"semi-supervised: fixmatch with {len(unlabeled)} unlabeled maps")
    result = fit(cfg, train_set, select, out, console_print=say, features=features, unlabeled=unlabeled, semi=semi,
                 soft_targets=soft)
    if not result.is_global_zero:  # DDP worker: rank 0 evaluates and writes the run folder
        return {}
    trust_info = None
    if calib is not None:
        trust_info = fit_trust_run(cfg, result.pipeline, train_set, select, calib, out, say)
    probs = result.pipeline.predict_proba(select, tta=None)
    y = np.clip(select.labels, 0, None) if select.multilabel else select.labels
    report = evaluation_report(y, probs, result.pipeline.class_names, result.pipeline.multilabel, out / "plots",
                               f"Validation ({cfg['model']}{', select split' if calib is not None else ''})", say,
                               history=result.history_csv)
    write_drift_reference(result.pipeline, probs, out, trust_info)
    metrics = {"val": report, "train_seconds": result.train_seconds, "best_epoch": result.best_epoch,
               "n_train": len(train_set), "n_val": len(val), "model": cfg["model"]}
    if cfg.get("init"):  # started from the encoder of `adrcs pretrain`
        metrics["init"] = cfg["init"]
    if unlabeled is not None:  # what the maps without labels were used for, and how many
        metrics["unlabeled"] = {**(unlabeled_info or {"n_maps": len(unlabeled)}), "method": semi if semi != "none"
                                else ("sbae" if cfg["features"] == "sinogram" and cfg["encoder"] != "none" else "none"),
                                "files": list(cfg.get("unlabeled", []))}
    if trust_info is not None:
        metrics["trust"] = trust_info
    if balance_info is not None:
        metrics["balance"] = balance_info
    if features_info is not None:
        metrics["features"] = features_info
    if distill_info is not None:
        metrics["distill"] = distill_info
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    say(f"run folder: {out} (model.ckpt, config.yaml, metrics.json, plots/, logs/); "
        f"trained in {result.train_seconds:.0f}s")
    return report


def write_drift_reference(pipe: Pipeline, probs: np.ndarray, out: Path,
                          trust_info: dict[str, Any] | None = None) -> Path | None:
    """``drift_reference.json``: the validation predictions' class mix and confidences, which the
    service's drift monitor compares live traffic with (single-label models), and the unknown rate on the
    select split (``unknown_rate``) when the model has an unknown score."""
    if pipe.multilabel or len(probs) == 0:
        return None
    from adrcs.monitoring.drift import DriftMonitor

    pred = [pipe.class_names[k] for k in probs.argmax(axis=1)]
    ref = DriftMonitor.make_reference(pred, probs.max(axis=1), class_names=list(pipe.class_names))
    data = ref.to_dict()
    if trust_info is not None and trust_info.get("unknown") != "none":
        data["unknown_rate"] = trust_info["select"]["unknown_share"]
    path = out / "drift_reference.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def _evaluate_set(pipe: Pipeline, ds: WaferMapSet, plot_dir: Path, tta: bool | None, title: str, say: Printer,
                  history: Path | None = None, alpha: float | None = None) -> dict[str, Any]:
    probs, trust = trust_evaluation(pipe, ds, plot_dir, tta, say, alpha)
    y = np.clip(ds.labels, 0, None) if ds.multilabel else ds.labels
    report = evaluation_report(y, probs, pipe.class_names, pipe.multilabel, plot_dir, title, say, history)
    report.update({k: trust[k] for k in ("ece", "mce", "coverage", "mean_set_size") if k in trust})
    report["trust"] = trust
    return report


def evaluate(model_dir: str | Path, data: Sequence[str | Path] | str | Path, out: str | Path | None = None,
             tta: bool | None = None, say: Printer = print, *, trust_pickle: bool = False,
             limits: InputLimits | None = None, fab: FabOptions | None = None, on_error: str = "stop",
             labels: str | Path | None = None, alpha: float | None = None, runtime: str = "torch") -> dict[str, Any]:
    """Evaluate a trained model on labeled data; write the report JSON to `out` and plots beside it.
    labels: a ``lot,wafer,label`` CSV giving the labels of maps whose files carry none (fab formats).
    alpha: prediction sets at this level (default: the one the model was trained with).
    runtime: torch | onnx (the run's checked model.onnx, exported first when missing); recorded as ``runtime``."""
    from adrcs.deploy.runtime import load_wafer_model
    from adrcs.inference.onnx_runtime import check_runtime

    runtime = check_runtime(runtime)
    pipe = load_wafer_model(model_dir, runtime, say)
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    ds = _with_labels(read_maps(paths, say, trust_pickle=trust_pickle, limits=limits, fab=fab, on_error=on_error),
                      labels, pipe, say)
    ds = _labeled(ds, "data", say)
    try:
        ds = ds.with_classes(pipe.class_names)
    except ValueError as e:
        raise InputError(paths[0], str(e))
    if ds.multilabel != pipe.multilabel:
        raise InputError(paths[0], "label kind (single/multi-label) does not match the model's")
    out_path = Path(out) if out else Path(model_dir) / "evaluation.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    plot_dir = out_path.parent / (out_path.stem + "_plots")
    report = _evaluate_set(pipe, ds, plot_dir, tta, title=f"Evaluation on {', '.join(map(str, paths))}", say=say,
                           alpha=alpha)
    report["model_dir"] = str(model_dir)
    report["data"] = [str(p) for p in paths]
    report["runtime"] = runtime
    out_path.write_text(json.dumps(report, indent=2))
    say(f"report: {out_path}; plots: {plot_dir}")
    return report


def _with_labels(ds: WaferMapSet, labels: str | Path | None, pipe: Pipeline, say: Printer) -> WaferMapSet:
    """`ds` labelled from a ``lot,wafer,label`` CSV when one is given (single-label models)."""
    if labels is None:
        return ds
    if pipe.multilabel:
        raise InputError(labels, "--labels takes single labels; this is a multi-label model")
    from adrcs.data.wafer_ids import apply_labels

    ds, counts = apply_labels(ds, labels, pipe.class_names)
    say(f"labels from {labels}: {counts['matched']} of {len(ds)} maps matched"
        + (f"; {counts['unmatched_rows']} CSV rows match no map" if counts["unmatched_rows"] else ""))
    return ds


def predict(model_dir: str | Path, data: Sequence[str | Path] | str | Path, out: str | Path,
            tta: bool | None = None, threshold: float = 0.5, say: Printer = print, *, trust_pickle: bool = False,
            limits: InputLimits | None = None, fab: FabOptions | None = None, on_error: str = "stop",
            labels: str | Path | None = None, alpha: float | None = None, runtime: str = "torch") -> pd.DataFrame:
    """Classify every map (labeled or not) and write one CSV row per map: index, source, source_index, lot,
    wafer, die_count, fail_count, yield, predicted, confidence, decision, unknown_score, set, [true],
    prob_<class>... (decision / set / unknown_score: `inference.trust`; alpha: sets at this level).
    labels: a ``lot,wafer,label`` CSV filling the ``true`` column for files that carry no labels.
    runtime: torch | onnx (the run's checked model.onnx, exported first when missing; named in the summary)."""
    from adrcs.deploy.runtime import load_wafer_model
    from adrcs.inference.onnx_runtime import check_runtime

    runtime = check_runtime(runtime)
    pipe = load_wafer_model(model_dir, runtime, say)
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    ds = read_maps(paths, say, trust_pickle=trust_pickle, limits=limits, fab=fab, on_error=on_error)
    ds = _with_labels(ds, labels, pipe, say)
    probs, feats = pipe.predict_outputs(pipe.prepare(ds.maps), tta=tta)
    rows = prediction_rows(pipe, ds, probs, feats, threshold, alpha)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out, index=False)
    say_predictions(rows, out, runtime, say)
    return rows


def say_predictions(rows: pd.DataFrame, out: str | Path, runtime: str, say: Printer) -> None:
    """predict's closing lines: how many maps went where, the predicted classes and the decisions."""
    counts = rows["predicted"].value_counts()
    say(f"{len(rows)} maps classified -> {out} (runtime {runtime}); predicted: "
        + ", ".join(f"{k} {v}" for k, v in counts.items()))
    sent = rows["decision"].isin(["review", "unknown"])
    if sent.any():
        say(f"decision: {int((rows['decision'] == 'review').sum())} to review, "
            f"{int((rows['decision'] == 'unknown').sum())} unknown pattern(s), {int((~sent).sum())} decided")


def map_rows(ds: WaferMapSet) -> pd.DataFrame:
    """The columns of predict's CSV that come from the maps alone: index (0..N-1), source, source_index, lot,
    wafer, die_count, fail_count, yield (counted on the maps as read, before any resizing)."""
    from adrcs.data.wafer_ids import wafer_columns

    rows = pd.DataFrame({"index": np.arange(len(ds)), "source": ds.meta["source"].values,
                         "source_index": ds.meta["index"].values})
    return pd.concat([rows, wafer_columns(ds)], axis=1)


def true_labels(ds: WaferMapSet) -> list[str] | None:
    """predict's ``true`` column (the label names; "" where a map has none), None when no map is labeled."""
    if not ds.labeled_mask.any():
        return None
    if ds.multilabel:
        return [";".join(n for n, h in zip(ds.class_names, r) if h > 0) or ("none" if m else "")
                for r, m in zip(ds.labels, ds.labeled_mask)]
    return [ds.class_names[i] if i >= 0 else "" for i in ds.labels]


def answer_rows(pipe: Any, rows: pd.DataFrame, probs: np.ndarray, feats: np.ndarray | None, threshold: float = 0.5,
                alpha: float | None = None, true: Sequence[str] | None = None) -> pd.DataFrame:
    """`rows` (`map_rows`) with the model's answers added in predict's column order: predicted, confidence,
    decision, unknown_score, set, [true], prob_<class>... (modified in place and returned)."""
    names = pipe.class_names
    decided = decide(probs, pipe.multilabel, threshold)
    if pipe.multilabel:
        rows["predicted"] = [";".join(n for n, h in zip(names, r) if h) or "none" for r in decided]
    else:
        rows["predicted"] = [names[i] for i in decided]
    rows["confidence"] = confidence(probs, pipe.multilabel, threshold)
    for col, values in answer_columns(pipe, probs, feats, alpha).items():
        rows[col] = values
    if true is not None:
        rows["true"] = list(true)
    for j, n in enumerate(names):
        rows[f"prob_{n}"] = probs[:, j].round(6)
    return rows


def prediction_rows(pipe: Any, ds: WaferMapSet, probs: np.ndarray, feats: np.ndarray | None,
                    threshold: float = 0.5, alpha: float | None = None) -> pd.DataFrame:
    """predict's output table for `ds` and the model's outputs on it (one row per map)."""
    return answer_rows(pipe, map_rows(ds), probs, feats, threshold, alpha, true_labels(ds))


def info(paths: Sequence[str | Path] | str | Path, *, trust_pickle: bool = False,
         limits: InputLimits | None = None, fab: FabOptions | None = None, on_error: str = "stop") -> dict[str, Any]:
    """What the loader sees in the given files, folders or globs: counts per class, sizes, unlabeled maps, lots.
    With ``on_error="skip"`` an unreadable file gets ``{"error": problem}`` instead of stopping."""
    from adrcs.data.data_paths import expand_data_paths

    out: dict[str, Any] = {}
    for p in expand_data_paths([paths] if isinstance(paths, (str, Path)) else list(paths)):
        try:
            out[str(p)] = summarize(load(p, trust_pickle=trust_pickle, limits=limits, fab=fab))
        except InputError as e:
            if on_error == "stop":
                raise
            out[str(p)] = {"error": e.problem}
    return out


def convert(path: str | Path, out: str | Path, say: Printer = print, *, trust_pickle: bool = False,
            limits: InputLimits | None = None, fab: FabOptions | None = None, on_error: str = "stop") -> dict[str, Any]:
    """Rewrite any readable wafer-map file as the ``adrcs convert`` npz (loads without unpickling;
    the service accepts it as an upload). Returns `summarize` of what was written."""
    from adrcs.data.writer import save_wafer_maps_npz

    if Path(out).suffix.lower() != ".npz":
        raise InputError(out, "the output of convert must be an .npz file (OUT.npz)")
    ds = load(path, trust_pickle=trust_pickle, limits=limits, fab=fab)
    save_wafer_maps_npz(ds, out)
    summary = summarize(ds)
    say(f"{summary['total']} maps ({summary['unlabeled']} unlabeled, {ds.notes['format']}) -> {out}")
    return summary


from adrcs.api_synth import synth_evaluate, synth_fit, synth_sample  # noqa: E402,F401 - re-exported
