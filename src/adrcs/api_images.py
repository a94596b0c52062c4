"""The Python API for inspection-image data (defect detection): train, evaluate, predict.

The CLI verbs call these for image data (``task: detect``); `is_detector_run` tells a detector
run folder from a wafer-map one. A detection run folder::

    RUN/
      model.ckpt          DetectorPipeline (format "adrcs-detector/1")
      config.yaml         the resolved config + data paths
      split.json          which images went to train and val
      metrics.json        {"val": detection_report, "calibration": {...}, train_seconds, best_epoch, n_train, ...}
      logs/metrics.csv    Lightning CSV log (one row per epoch); logs/tb/ TensorBoard
      plots/training_curves.png, plots/per_class_ap.png, plots/reliability.png, plots/val_examples/<stem>.png

Score calibration: at the end of training a per-class monotone map of box scores to hit probabilities
(`inference.box_calibration`, Platt scaling) is fitted on every box the detector reports on the validation
split (raw score >= 0) and stored in the checkpoint; predictions, reports and plots then show calibrated
scores, and the score threshold still applies to the raw score (the kept boxes, P/R/F1 and mAP do not
change). The validation split is also the one early stopping and the "auto" threshold used, so the ECE
after calibration in metrics.json is measured on the boxes it was fitted on (optimistic); images are few,
a separate calibration split can come later. `evaluate` measures it on other data.

cfg keys read (with their defaults when absent): detector ("fcos_r18_slim"), detector_args ({}),
input_size (640), use_template ("auto"), image_mode ("L"), epochs (30), batch_size (4),
eval_batch_size (4), optimizer ("adamw"), lr (1e-3), weight_decay (1e-4), scheduler ("cosine"),
augment ("flips" | "none"), score_threshold (0.5, or "auto": best F1 on val), seed (0), device ("auto"),
num_workers (0), early_stopping_patience (0), progress (True), val_fraction (0.2), train_crop (None),
paste_defects ("none" | "gan": GAN-made defects pasted into training images), paste_args ({}).

With paste_defects: gan the run folder also has synth/defect_gan/ (defect_gan.pt, history.csv,
training_curves.png, samples.png).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from adrcs.data.image_check import drop_unreadable
from adrcs.data.image_set import ImageSet
from adrcs.errors import InputError

Printer = Callable[[str], None]

N_VAL_EXAMPLES = 8


# ---------------------------------------------------------------- data


def load_detection_data(data: str | Path | ImageSet, images: str | Path | None = None,
                        annotations: str | Path | None = None, *, allow_plain: bool = False,
                        skipped: list[dict[str, str]] | None = None) -> ImageSet:
    """An ImageSet from `data` (returned as is when already one), read with `load_images`.

    allow_plain: also accept an image file, or a folder of images that no annotated format
    recognises, as unannotated images (`image_formats.plain`), for predict.
    """
    if isinstance(data, ImageSet):
        return data
    from adrcs.data.image_formats import detect, load_images, plain

    p = Path(data)
    if allow_plain and images is None and annotations is None and p.exists():
        if (p.is_file() and plain.sniff(p)) or (p.is_dir() and detect(p) is None and plain.sniff(p)):
            return plain.read(p, skipped=skipped)
    return load_images(p, images=images, annotations=annotations)


def _require_boxes(ds: ImageSet, source: Any, what: str) -> None:
    if not ds.has_boxes:
        raise InputError(_src(source), f"{what} has no box annotations: detection needs boxes "
                                       "(DeepPCB list files or Pascal VOC XML)")


def _src(data: Any) -> str | None:
    if isinstance(data, ImageSet):
        return data.notes.get("source") or (str(data.meta["source"].iloc[0]) if len(data) else None)
    return None if data is None else str(data)


def remap_classes(ds: ImageSet, class_names: list[str], source: Any, what: str) -> ImageSet:
    """`ds` with box labels re-indexed onto `class_names` (the model's / training set's list).

    Classes that carry at least one box in `ds` but are not in `class_names` raise InputError
    naming them; classes of `ds` without any box are ignored.
    """
    if list(ds.class_names) == list(class_names):
        return ds
    used = sorted({int(c) for b in ds.box_labels for c in b})
    extra = [ds.class_names[c] for c in used if ds.class_names[c] not in class_names]
    if extra:
        raise InputError(_src(source), f"{what} has classes the {'model' if what == 'data' else 'training data'} "
                                       f"lacks: {', '.join(extra)} (known: {', '.join(class_names)})")
    lut = np.array([class_names.index(c) if c in class_names else -1 for c in ds.class_names] + [-1], np.int64)
    out = ds.subset(np.arange(len(ds)))
    out.box_labels = [lut[b] for b in out.box_labels]
    out.class_names = list(class_names)
    return out


def _targets(ds: ImageSet) -> list[dict[str, np.ndarray]]:
    """Ground truth per image in original pixels, 0-based labels (`detection_report` with label_offset=0)."""
    return [{"boxes": b, "labels": bl} for b, bl in zip(ds.boxes, ds.box_labels)]


def _raw(preds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`preds` with the detector's raw scores as ``scores`` (the same dicts when not calibrated)."""
    return [{**p, "scores": p["raw_scores"]} if "raw_scores" in p else p for p in preds]


def _report(pipe, ds: ImageSet, batch_size: int,
            preds: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """detection_report of `pipe` on `ds` (every box kept for mAP; P/R/F1 at the pipeline's threshold), on the
    raw scores (the threshold is a raw score; per-class AP is the same on calibrated ones). `preds`: the
    score-0 predictions when already made."""
    from adrcs.metrics.detection import detection_report

    if preds is None:
        preds = pipe.predict(ds, batch_size=batch_size, score_threshold=0.0)
    report = detection_report(_raw(preds), _targets(ds), pipe.class_names, score_threshold=pipe.score_threshold,
                              label_offset=0)
    return report, preds


def _keep_above(preds: list[dict[str, Any]], thr: float) -> list[dict[str, Any]]:
    """Each image's boxes whose raw score is >= `thr`."""
    out = []
    for p in preds:
        k = np.asarray(p.get("raw_scores", p["scores"])) >= thr
        out.append({**p, **{key: p[key][k] for key in ("boxes", "labels", "scores", "raw_scores") if key in p}})
    return out


def _reliability(pipe, preds: list[dict[str, Any]], ds: ImageSet, plot: Path | None = None) -> dict[str, Any]:
    """Box-level ECE / MCE (15 bins) of every box in `preds` (raw score >= 0) before and after the pipeline's
    calibration, and the same on the boxes at or above its threshold; the reliability diagram to `plot`."""
    from adrcs.inference.box_calibration import box_reliability, match_boxes
    from adrcs.report.reliability_plots import plot_reliability

    s, c, h = match_boxes(_raw(preds), _targets(ds))
    cal = pipe.score_calibration
    after_s = s if cal is None else cal.apply(s, c)
    before, after = box_reliability(s, h), box_reliability(after_s, h)
    up = s >= pipe.score_threshold
    b_up, a_up = box_reliability(s[up], h[up]), box_reliability(after_s[up], h[up])
    if plot is not None:
        plot_reliability(before, after if cal is not None else None, plot,
                         title="Box score reliability (every reported box)")
    block = {"ece_before": before["ece"], "mce_before": before["mce"], "ece": after["ece"], "mce": after["mce"],
             "calibrated": cal is not None, "boxes": "every box the detector reports (raw score >= 0)",
             "n_boxes": int(len(s)), "n_hits": int(h.sum()),
             "above_threshold": {"score_threshold": float(pipe.score_threshold), "n_boxes": int(up.sum()),
                                 **{k: rep[m] if up.any() else None for k, rep, m in  # None: no box that high
                                    (("ece_before", b_up, "ece"), ("mce_before", b_up, "mce"), ("ece", a_up, "ece"),
                                     ("mce", a_up, "mce"))}},
             "bins_before": before["bins"], "bins": after["bins"]}
    return block


def _summary(report: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    aps = ", ".join(f"{c} {f(v)}" for c, v in report["per_class_ap"].items() if v is not None)
    return (f"mAP@0.5 {f(report['map_50'])}  mAP@0.5:0.95 {f(report['map_50_95'])}  precision "
            f"{report['precision']:.3f}  recall {report['recall']:.3f}  F1 {report['f1']:.3f} "
            f"(score >= {report['score_threshold']:g}, {report['n_images']} images)" + (f"; AP {aps}" if aps else ""))


# ---------------------------------------------------------------- train


def train_detection(cfg: dict[str, Any], data: str | Path | ImageSet, images: str | Path | None = None,
                    annotations: str | Path | None = None, val: str | Path | ImageSet | None = None, *,
                    out: str | Path, say: Printer = print) -> dict[str, Any]:
    """Train a detector as configured and write the run folder `out` (see the module docs).

    data / val: anything `load_images` reads (or an ImageSet); images, annotations: Pascal VOC
    folders of `data`. Without `val`, ``cfg['val_fraction']`` (0.2) of the images is held out
    with the fixed seed ``cfg['seed']``. Returns the validation report (metrics.json's ``val``).
    """
    from adrcs.config import save_config
    from adrcs.tasks.fitting import fit_detector
    from adrcs.report.boxes import annotated_names, draw_detections, plot_per_class_ap
    from adrcs.report.plots import plot_training_curves

    full = load_detection_data(data, images, annotations)
    _require_boxes(full, data, "training data")
    seed = int(cfg["seed"])
    if val is not None:
        val_set = load_detection_data(val)
        _require_boxes(val_set, val, "validation data")
        val_set = remap_classes(val_set, list(full.class_names), val, "validation data")
        train_set = full
    else:
        fraction = float(cfg["val_fraction"])
        try:
            train_set, val_set = full.split(fraction, seed)
        except ValueError as e:
            raise InputError(_src(data), f"cannot hold out a validation set: {e}") from e
        say(f"no --val given: holding out {len(val_set)} of {len(full)} images (seed {seed})")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run_cfg = dict(cfg, data=_src(data), images=None if images is None else str(images),
                   annotations=None if annotations is None else str(annotations), val=_src(val))
    save_config(run_cfg, out / "config.yaml")
    split = {"seed": seed, "val_fraction": None if val is not None else float(cfg["val_fraction"]),
             "val_source": _src(val), "train": [str(p) for p in train_set.paths],
             "val": [str(p) for p in val_set.paths]}
    (out / "split.json").write_text(json.dumps(split, indent=2))

    counts = ", ".join(f"{c} {n}" for c, n in train_set.class_counts("box").items() if n)
    say(f"training {cfg['detector']} on {len(train_set)} images ({counts} boxes), "
        f"validating on {len(val_set)}, input {int(cfg['input_size'])}px")
    result = fit_detector(cfg, train_set, val_set, out, say=say)
    pipe = result.pipeline
    raw = pipe.predict(val_set, batch_size=int(cfg["eval_batch_size"]), score_threshold=0.0)  # not calibrated
    if str(cfg["score_threshold"]).strip().lower() == "auto":  # best micro F1 on the validation split
        from adrcs.metrics.detection import best_f1_threshold

        thr, f1 = best_f1_threshold(raw, _targets(val_set), len(pipe.class_names), label_offset=0)
        pipe.score_threshold = thr
        say(f"score threshold: {thr:g} (best F1 {f1:.3f} on the validation split)")
    calibration, preds = _fit_calibration(pipe, raw, val_set, out, say)
    report, _ = _report(pipe, val_set, int(cfg["eval_batch_size"]), preds)
    metrics = {"val": report, "calibration": calibration, "train_seconds": result.train_seconds,
               "best_epoch": result.best_epoch,
               "n_train": len(train_set), "n_val": len(val_set), "detector": pipe.detector,
               "use_template": pipe.use_template, "input_size": pipe.input_size, "train_crop": cfg["train_crop"],
               "synthetic": result.synthetic}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))

    plots = out / "plots"
    if result.history_csv is not None:
        plot_training_curves(result.history_csv, plots / "training_curves.png")
    plot_per_class_ap(report, plots / "per_class_ap.png", title=None)
    n_ex = min(N_VAL_EXAMPLES, len(val_set))
    names = annotated_names(val_set.paths[:n_ex])
    for i, (p, name) in enumerate(zip(_keep_above(preds[:n_ex], pipe.score_threshold), names)):
        draw_detections(val_set.read_image(i, "RGB"), p["boxes"], p["labels"], p["scores"], pipe.class_names,
                        plots / "val_examples" / name, gt_boxes=val_set.boxes[i], gt_labels=val_set.box_labels[i])
    say(f"validation: {_summary(report)}")
    say(f"run folder: {out} (model.ckpt, config.yaml, split.json, metrics.json, plots/, logs/); "
        f"trained in {result.train_seconds:.0f}s, best epoch {result.best_epoch}")
    return report


def _fit_calibration(pipe, raw: list[dict[str, Any]], val_set: ImageSet, out: Path,
                     say: Printer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Fit the score calibration on the raw score-0 validation predictions `raw`, set it on `pipe`, save the
    checkpoint (with `pipe`'s threshold), write plots/reliability.png. Returns (metrics.json's calibration
    block, the calibrated predictions)."""
    from adrcs.detector_pipeline import DetectorPipeline
    from adrcs.inference.box_calibration import BoxScoreCalibration, calibrate_detections, match_boxes

    s, c, h = match_boxes(raw, _targets(val_set))
    cal = BoxScoreCalibration(len(pipe.class_names)).fit(s, c, h)
    pipe.score_calibration = cal
    saved = DetectorPipeline.load(out)  # keeps the checkpoint's extras (train_seconds, best_epoch, ...)
    saved.score_threshold, saved.score_calibration = pipe.score_threshold, cal
    saved.save(out)
    preds = [calibrate_detections(p, cal) for p in raw]
    block = _reliability(pipe, preds, val_set, out / "plots" / "reliability.png")
    del block["bins_before"], block["bins"]
    fitted = [n for n, f in zip(pipe.class_names, cal.fitted) if f]
    say(f"score calibration ({cal.method}, per class; fitted for {', '.join(fitted) or 'no class'}): box ECE on "
        f"the validation split {block['ece_before']:.4f} -> {block['ece']:.4f} (MCE {block['mce_before']:.4f} -> "
        f"{block['mce']:.4f}, {block['n_boxes']} boxes)")
    return {"method": cal.method, "fitted_on": "validation split (also used for early stopping and the auto "
            "threshold; ece/mce are measured on the same boxes)", **block,
            "per_class": cal.params(pipe.class_names)}, preds


# ---------------------------------------------------------------- evaluate / predict


def evaluate_detection(model_dir: str | Path, data: str | Path | ImageSet, images: str | Path | None = None,
                       annotations: str | Path | None = None, out: str | Path | None = None,
                       say: Printer = print, runtime: str = "torch") -> dict[str, Any]:
    """Evaluate a trained detector on annotated data; write the report JSON to `out`
    (default MODEL/evaluation.json) and ``<out stem>_plots/{per_class_ap,reliability}.png`` beside it.

    Besides `detection_report`'s keys the report has box-score calibration: ``ece``, ``mce`` (calibrated
    scores), ``ece_before``, ``mce_before`` (raw scores), 15 bins, over EVERY box the detector reports (raw score
    >= 0: the population the calibration was fitted on and mAP ranks), and ``calibration`` with the bins, box
    counts and the same four numbers on the boxes at or above the model's threshold. A model saved without a
    calibration reports its raw scores for both (``calibration.calibrated`` false). runtime: torch | onnx (the
    run's checked model.onnx, exported first when missing; decoding + NMS in PyTorch); recorded as ``runtime``.
    """
    from adrcs.deploy.runtime import load_image_model
    from adrcs.report.boxes import plot_per_class_ap

    pipe = load_image_model(model_dir, "detect", runtime, say)
    ds = load_detection_data(data, images, annotations)
    _require_boxes(ds, data, "data")
    ds = remap_classes(ds, list(pipe.class_names), data, "data")
    report, preds = _report(pipe, ds, batch_size=4)
    out_path = Path(out) if out else Path(model_dir) / "evaluation.json"
    plot_dir = out_path.parent / (out_path.stem + "_plots")  # as for every task's evaluate
    block = _reliability(pipe, preds, ds, plot_dir / "reliability.png")
    report.update({k: block[k] for k in ("ece", "mce", "ece_before", "mce_before")}, calibration=block)
    report.update(model_dir=str(model_dir), data=_src(data), runtime=runtime)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2))
    plot_per_class_ap(report, plot_dir / "per_class_ap.png")
    say(f"evaluation: {_summary(report)}")
    say(f"box score ECE {block['ece_before']:.4f} -> {block['ece']:.4f} (MCE {block['mce_before']:.4f} -> "
        f"{block['mce']:.4f}; {block['n_boxes']} boxes{'' if block['calibrated'] else ', model not calibrated'})")
    say(f"report: {out_path}; plots: {plot_dir}")
    return report


def predict_detection(model_dir: str | Path, data: str | Path | ImageSet, images: str | Path | None = None,
                      annotations: str | Path | None = None, *, out: str | Path, score_threshold: float | None = None,
                      say: Printer = print, annotated: bool = True, on_error: str = "stop",
                      runtime: str = "torch") -> Path:
    """Detect defects in every image of `data` and write the folder `out`: predictions.json,
    predictions.csv and annotated/<image stem>.png (ground truth dashed when `data` has boxes).
    ``score`` is the calibrated score when the model has a calibration, ``raw_score`` the detector's own
    (equal without one); `score_threshold` applies to the raw score.

    data: anything `load_images` reads, an image file or a folder of images (templates
    ``*_temp.*`` paired). Boxes are in each image's own pixels. Returns `out`.
    annotated: False writes no annotated/ images. on_error: "skip" leaves out images that cannot be decoded
    and lists them at the end (default "stop": the first one stops with its name). runtime: torch | onnx
    (recorded in predictions.json and the summary).
    """
    from adrcs.api_reading import report_skipped
    from adrcs.deploy.runtime import load_image_model
    from adrcs.engine.progress import progress_steps
    from adrcs.report.boxes import write_predictions

    pipe = load_image_model(model_dir, "detect", runtime, say)
    skipped: list[dict[str, str]] = []
    ds = load_detection_data(data, images, annotations, allow_plain=True,
                             skipped=skipped if on_error == "skip" else None)
    thr = pipe.score_threshold if score_threshold is None else float(score_threshold)
    if on_error == "skip":
        with progress_steps(len(ds), f"checking {len(ds)} images", say) as step:
            ds, undecodable = drop_unreadable(ds, step)
        skipped += undecodable
    with progress_steps(len(ds), f"detecting in {len(ds)} images", say) as step:
        preds = pipe.predict(ds, score_threshold=thr, step=step)
    out = Path(out)
    json_path, csv_path = write_predictions(preds, ds, pipe.class_names, out, annotate=annotated,
                                            extra={"model_dir": str(model_dir), "score_threshold": thr,
                                                   "calibrated": pipe.score_calibration is not None,
                                                   "skipped": skipped, "runtime": runtime})
    _add_raw_scores(preds, json_path, csv_path)
    n_boxes = sum(len(p["boxes"]) for p in preds)
    per_class = np.bincount(np.concatenate([p["labels"] for p in preds]) if preds else np.zeros(0, np.int64),
                            minlength=len(pipe.class_names))
    found = ", ".join(f"{c} {n}" for c, n in zip(pipe.class_names, per_class) if n) or "none"
    say(f"{len(ds)} images, {n_boxes} boxes (score >= {thr:g}; {found}) -> {json_path.name}, {csv_path.name}"
        f"{', annotated/' if annotated else ''} in {out} (runtime {runtime})")
    report_skipped(skipped, say)
    return out


def _add_raw_scores(preds: list[dict[str, Any]], json_path: Path, csv_path: Path) -> None:
    """Add ``raw_score`` to every box of `write_predictions`' JSON and CSV (same box order: by descending
    ``scores``, stable, image by image)."""
    import csv

    doc = json.loads(json_path.read_text())
    raws = []
    for p, entry in zip(preds, doc["images"]):
        order = np.argsort(-np.asarray(p["scores"], np.float32).reshape(-1), kind="stable")
        raw = np.asarray(p.get("raw_scores", p["scores"]), np.float32).reshape(-1)
        for item, j in zip(entry["boxes"], order):
            item["raw_score"] = round(float(raw[j]), 4)
            raws.append(item["raw_score"])
    json_path.write_text(json.dumps(doc, indent=2))
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    with open(csv_path, "w", newline="") as f:
        csv.writer(f).writerows([rows[0] + ["raw_score"]] + [r + [v] for r, v in zip(rows[1:], raws)])


def is_detector_run(model_dir: str | Path) -> bool:
    """True when `model_dir` (a run folder or a model.ckpt) holds a detector checkpoint."""
    from adrcs.detector_pipeline import DETECTOR_FORMAT
    from adrcs.tasks import checkpoint_format

    return checkpoint_format(model_dir) == DETECTOR_FORMAT
