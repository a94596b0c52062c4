"""Python API for whole-image defect classification of inspection images (`task: image_classify`).

Labels come from class folders, or from the dominant box class of VOC / DeepPCB annotations.
The model is a registered 2-D classifier (`ffn`, `cnn`) reading grey or RGB images, plus the
template and |image - template| channels when templates are present (`use_template`).
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pandas as pd

from adrcs.api_trust import MIN_CALIB, answer_columns, decision_report, fit_trust_outputs
from adrcs.config import save_config
from adrcs.data.image_set import ImageSet
from adrcs.errors import InputError

Printer = Callable[[str], None]


def run_kind(model_dir: str | Path) -> str | None:
    """"detect", "image_classify" or None (a wafer-map run / not a run) from the checkpoint's format."""
    from adrcs.tasks import checkpoint_format, task_names
    from adrcs.tasks.registry import get_task

    fmt = checkpoint_format(model_dir)
    return next((n for n in task_names(image=True) if get_task(n).format == fmt), None)


def load_image_data(path: str | Path, images: str | Path | None = None, annotations: str | Path | None = None,
                    require_labels: bool = True) -> ImageSet:
    """Any supported image layout; plain folders / single images when labels are not required.

    Whole-image labels missing (VOC, DeepPCB) are taken from the dominant box class."""
    from adrcs.data.image_formats import load_images

    try:
        ds = load_images(path, images=images, annotations=annotations)
    except InputError as e:
        if require_labels or "unknown image-data layout" not in str(e):
            raise
        from adrcs.data.image_formats import plain  # unlabeled folder of images or one image file

        ds = plain.read(path)
    if (ds.labels < 0).all() and ds.has_boxes:
        ds.labels = ds.dominant_labels()
    if require_labels and not (ds.labels >= 0).any():
        raise InputError(path, "no labeled images (need class folders or box annotations)")
    return ds


def train_image_classifier(cfg: dict[str, Any], data: str | Path, images: str | Path | None = None,
                           annotations: str | Path | None = None, val: str | Path | None = None,
                           out: str | Path = "runs/images", say: Printer = print) -> dict[str, Any]:
    """Train `cfg['model']` on whole-image labels; writes the same run folder as wafer-map training."""
    from adrcs.report.evaluation import evaluation_report
    from adrcs.tasks.fitting import fit
    from adrcs.engine.image_tensors import ImageTensors, decide_template
    from adrcs.image_classifier_pipeline import ImageClassifierPipeline

    out = Path(out)
    ds = load_image_data(data, images, annotations)
    ds = ds.subset(ds.labels >= 0)
    if val is not None:
        va = load_image_data(val)
        va = va.subset(va.labels >= 0)
        missing = sorted(set(va.class_names) - set(ds.class_names))
        if missing:
            raise InputError(val, f"classes {missing} are not in the training data")
        remap = np.array([ds.class_names.index(c) for c in va.class_names])
        va.labels, va.class_names = remap[va.labels], list(ds.class_names)
        tr = ds
    else:
        tr, va = ds.split(float(cfg["val_fraction"]), int(cfg["seed"]))
        say(f"no --val given: holding out {len(va)} of {len(ds)} images (stratified, seed {cfg['seed']})")
    use_template = decide_template(tr, cfg["use_template"]) and decide_template(va, cfg["use_template"])
    size, mode = int(cfg["input_size"]), cfg["image_mode"]
    calib = None
    if cfg["calibrate"] and len(va) >= 2 * MIN_CALIB:  # select: early stopping + temperature; calib: sets, unknown
        va, calib = va.split(float(cfg["calib_fraction"]), int(cfg["seed"]))
        say(f"validation images: {len(va)} select (early stopping, temperature), {len(calib)} calib "
            "(prediction sets, unknown threshold)")
    say(f"reading {len(tr)} + {len(va) + (len(calib) if calib else 0)} images at {size}x{size} "
        f"({mode}{', with templates' if use_template else ''})")
    train_t = ImageTensors(tr, tr.labels, size, mode, use_template)
    val_t = ImageTensors(va, va.labels, size, mode, use_template)
    in_chans = int(train_t.maps.shape[1])
    run_cfg = dict(cfg, model_args={**cfg["model_args"], "in_chans": in_chans}, train=[str(data)],
                   val=[str(val)] if val else [])
    out.mkdir(parents=True, exist_ok=True)
    save_config(run_cfg, out / "config.yaml")
    names = list(tr.class_names)
    lab_tr = SimpleNamespace(labels=tr.labels, class_names=names, multilabel=False)
    lab_va = SimpleNamespace(labels=va.labels, class_names=names, multilabel=False)

    def factory(net):
        return ImageClassifierPipeline(net=net, model_name=cfg["model"], model_args=run_cfg["model_args"],
                                       class_names=names, input_size=size, image_mode=mode, use_template=use_template)

    say(f"training {cfg['model']} on {len(tr)} images ({len(names)} classes), validating on {len(va)}")
    result = fit(run_cfg, lab_tr, lab_va, out, console_print=say, tensors=(train_t, val_t), pipeline_factory=factory)
    trust_info = None
    if calib is not None:
        pipe = result.pipeline
        calib_t = ImageTensors(calib, calib.labels, size, mode, use_template)
        p_sel, f_sel = pipe.predict_outputs(val_t.maps, calibrated=False)
        p_cal, f_cal = pipe.predict_outputs(calib_t.maps, calibrated=False)
        _, f_tr = pipe.predict_outputs(train_t.maps, calibrated=False)
        trust_info = fit_trust_outputs(run_cfg, pipe, (p_sel, f_sel, va.labels), (p_cal, f_cal, calib.labels),
                                       (f_tr, tr.labels), out, say)
    probs = result.pipeline.predict_tensor(val_t.maps)
    report = evaluation_report(va.labels, probs, names, False, out / "plots", f"Validation ({cfg['model']})", say,
                               history=result.history_csv)
    metrics = {"val": report, "train_seconds": result.train_seconds, "best_epoch": result.best_epoch,
               "n_train": len(tr), "n_val": len(va), "model": cfg["model"], "use_template": use_template}
    if trust_info is not None:
        metrics["trust"] = trust_info
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    say(f"run folder: {out} (model.ckpt, config.yaml, metrics.json, plots/, logs/)")
    return report


def image_trust_block(pipe: Any, raw: np.ndarray, probs: np.ndarray, feats: np.ndarray, y: np.ndarray,
                      plot_dir: Path, say: Printer) -> dict[str, Any]:
    """ECE / MCE before and after scaling (reliability diagram) and the decision numbers of `api_trust`."""
    from adrcs.metrics.calibration import calibration_report

    before, after = calibration_report(raw, y), calibration_report(probs, y)
    if pipe.trust is None:
        return {"ece": before["ece"], "mce": before["mce"], "calibrated": False}
    from adrcs.report.reliability_plots import plot_reliability

    plot_reliability(before, after, plot_dir / "reliability.png")
    return {"ece": after["ece"], "mce": after["mce"], "ece_before": before["ece"], "mce_before": before["mce"],
            "calibrated": True, **decision_report(pipe, pipe.trust, probs, feats, y, plot_dir, say)}


def evaluate_image_classifier(model_dir: str | Path, data: str | Path, images: str | Path | None = None,
                              annotations: str | Path | None = None, out: str | Path | None = None,
                              say: Printer = print, runtime: str = "torch") -> dict[str, Any]:
    """Classification report (the wafer-map report keys) of an image classifier on labeled images.
    runtime: torch | onnx | onnx-int8 (the run's checked model.onnx, exported first when missing); recorded."""
    from adrcs.deploy.runtime import load_image_model
    from adrcs.inference.onnx_runtime import check_runtime
    from adrcs.report.evaluation import evaluation_report

    runtime = check_runtime(runtime)
    pipe = load_image_model(model_dir, "image_classify", runtime, say)
    ds = load_image_data(data, images, annotations)
    ds = ds.subset(ds.labels >= 0)
    missing = sorted(set(ds.class_names[i] for i in np.unique(ds.labels)) - set(pipe.class_names))
    if missing:
        raise InputError(data, f"classes {missing} are unknown to the model (it knows {pipe.class_names})")
    y = np.array([pipe.class_names.index(ds.class_names[i]) for i in ds.labels])
    out_path = Path(out) if out else Path(model_dir) / "evaluation.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    plot_dir = out_path.parent / (out_path.stem + "_plots")
    raw, feats = pipe.predict_outputs(pipe.read_tensor(ds), calibrated=False)
    probs = pipe.trust.calibrate(raw) if pipe.trust is not None else raw
    report = evaluation_report(y, probs, pipe.class_names, False, plot_dir, f"Evaluation on {data}", say)
    report["trust"] = image_trust_block(pipe, raw, probs, feats, y, plot_dir, say)
    report.update({k: report["trust"][k] for k in ("ece", "mce", "coverage", "mean_set_size") if k in report["trust"]})
    report.update(model_dir=str(model_dir), data=[str(data)], runtime=runtime)
    out_path.write_text(json.dumps(report, indent=2))
    say(f"report: {out_path}")
    return report


def predict_image_classifier(model_dir: str | Path, data: str | Path, images: str | Path | None = None,
                             annotations: str | Path | None = None, out: str | Path = "predictions.csv",
                             score_threshold: float | None = None, say: Printer = print,
                             on_error: str = "stop", runtime: str = "torch") -> pd.DataFrame:
    """One CSV row per image: path, predicted class, confidence, probability per class. on_error "skip" leaves
    out images that cannot be decoded and lists them at the end. runtime: torch | onnx | onnx-int8 (the run's
    checked model.onnx, exported first when missing; named in the summary)."""
    from adrcs.api_reading import report_skipped
    from adrcs.data.image_check import drop_unreadable
    from adrcs.deploy.runtime import load_image_model
    from adrcs.engine.progress import progress_steps
    from adrcs.inference.onnx_runtime import check_runtime

    runtime = check_runtime(runtime)
    pipe = load_image_model(model_dir, "image_classify", runtime, say)
    ds = load_image_data(data, images, annotations, require_labels=False)
    skipped: list[dict[str, str]] = []
    if on_error == "skip":
        with progress_steps(len(ds), f"checking {len(ds)} images", say) as step:
            ds, skipped = drop_unreadable(ds, step, templates=pipe.use_template)
    with progress_steps(len(ds), f"reading {len(ds)} images", say) as step:
        probs, feats = pipe.predict_outputs(pipe.read_tensor(ds, step=step))
    rows = pd.DataFrame({"image": [str(p) for p in ds.paths],
                         "predicted": [pipe.class_names[i] for i in probs.argmax(axis=1)],
                         "confidence": probs.max(axis=1).round(6)})
    for col, values in answer_columns(pipe, probs, feats).items():
        rows[col] = values
    for j, n in enumerate(pipe.class_names):
        rows[f"prob_{n}"] = probs[:, j].round(6)
    out = Path(out)
    if out.suffix.lower() != ".csv":  # a folder was given
        out = out / "predictions.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out, index=False)
    say(f"{len(rows)} images classified -> {out} (runtime {runtime})")
    report_skipped(skipped, say)
    return rows
