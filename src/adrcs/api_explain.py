"""Python API of `adrcs explain`: class activation maps of a trained run over the data it is given, drawn as
heat overlays (one PNG per map or image) and summed up in ``explanations.csv``.

The run's kind decides how data is read and explained (`tasks.task_of`): wafer-map models read maps with
`read_maps` (any format; HiResCAM at die resolution by default), image classifiers and detectors read one image
path (list file, VOC root, class folders, a folder of images or one image; detectors: class-agnostic EigenCAM,
boxes drawn on top). See `adrcs.inference.explain` for the methods and layers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from adrcs.errors import InputError

Printer = Callable[[str], None]
CSV_NAME = "explanations.csv"
COLUMNS = ["source", "index", "lot", "wafer", "predicted", "confidence", "target", "cam_peak_row", "cam_peak_col",
           "file"]
AGNOSTIC = "class-agnostic"


def _file_name(i: int, width: int, parts: Sequence[str]) -> str:
    """``<index>_<part>_<part>.png``: the index zero-padded, each part made safe, empty parts left out."""
    from adrcs.api_lots import safe_name

    return "_".join([f"{i:0{width}d}"] + [p for p in (safe_name(x) for x in parts) if p]) + ".png"


def _peak(cam: np.ndarray) -> tuple[int, int]:
    """(row, col) of the CAM's maximum (-1, -1 for an empty CAM)."""
    if cam.size == 0:
        return -1, -1
    r, c = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return int(r), int(c)


def _decided(probs: np.ndarray, names: Sequence[str], multilabel: bool, threshold: float
             ) -> tuple[list[str], np.ndarray]:
    """The predicted class names per row (multi-label: "A;B" or "none") and their confidences."""
    from adrcs.inference.decisions import confidence, decide

    d = decide(probs, multilabel, threshold)
    if multilabel:
        shown = [";".join(n for n, h in zip(names, r) if h) or "none" for r in d]
    else:
        shown = [names[int(i)] for i in d]
    return shown, confidence(probs, multilabel, threshold)


def _check_args(out: Path, limit: int | None) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(out, "--out must be a folder (it is a file)")
    if limit is not None and int(limit) < 1:
        raise InputError(None, f"--limit must be at least 1 (got {limit})")


def explain(model_dir: str | Path, data: Sequence[str | Path] | str | Path, out: str | Path,
            reading: dict[str, Any] | None = None, target: Any = "predicted", method: str | None = None,
            limit: int | None = None, say: Printer = print, *, batch_size: int = 32,
            threshold: float = 0.5, scale: int | None = None) -> dict[str, Any]:
    """Explain a run's decisions on `data`: writes ``out/<index>_<lot>_<wafer or source>.png`` heat overlays and
    ``out/explanations.csv`` (source, index, lot, wafer, predicted, confidence, target, cam_peak_row,
    cam_peak_col, file; the peak in the map's dies or the image's pixels). reading: trust_pickle, limits, fab,
    on_error (wafer maps; images use on_error). target: "predicted" or a class name; method: see
    `inference.explain.METHODS` (None: hirescam, detectors eigencam); limit: the first N maps / images only.
    Returns counts, method, layer and paths."""
    from adrcs.tasks import task_of

    out = Path(out)
    _check_args(out, limit)
    task = task_of(model_dir)
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    if not paths:
        raise InputError(None, "no data: give --data PATH...")
    reading = dict(reading or {})
    if task.name == "wafer":
        rows, info = _explain_wafers(model_dir, paths, out, reading, target, method, limit, say, batch_size,
                                     threshold, scale)
    else:
        if len(paths) > 1:
            raise InputError(paths[1], "image models take one --data path (a list file, a folder or an image)")
        rows, info = _explain_images(task.name, model_dir, paths[0], out, reading.get("on_error", "stop"), target,
                                     method, limit, say, batch_size)
    table = pd.DataFrame(rows, columns=COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / CSV_NAME, index=False)
    say(f"{len(table)} explained ({info['method']} at {info['layer']}) -> {out} ({CSV_NAME} + one PNG each)")
    return {"explained": len(table), **info, "out": str(out), "csv": str(out / CSV_NAME)}


def _explain_wafers(model_dir: str | Path, paths: list, out: Path, reading: dict[str, Any], target: Any,
                    method: str | None, limit: int | None, say: Printer, batch_size: int, threshold: float,
                    scale: int | None) -> tuple[list[list[Any]], dict[str, Any]]:
    """Wafer maps: read, explain in batches, one overlay per map; the CSV rows."""
    from adrcs.api_reading import read_maps
    from adrcs.data.wafer_ids import wafer_columns
    from adrcs.engine.progress import progress_steps
    from adrcs.inference.explain import check_method, map_explanations
    from adrcs.pipeline import Pipeline
    from adrcs.report.cam_overlay import wafer_cam_png

    pipe = Pipeline.load(model_dir)
    if pipe.features is not None:
        raise InputError(model_dir, "explain supports 2-D map models; this is a sinogram-feature model (its 1-D "
                                    "features cannot be mapped back onto the die grid)")
    method = check_method(method)
    ds = read_maps(paths, say, **reading)
    if limit is not None and len(ds) > int(limit):
        ds = ds.subset(np.arange(int(limit)))
    ids = wafer_columns(ds)
    src, src_idx = ds.meta["source"].astype(str).to_numpy(), ds.meta["index"].astype(str).to_numpy()
    n, width = len(ds), len(str(max(len(ds) - 1, 0)))
    out.mkdir(parents=True, exist_ok=True)
    rows: list[list[Any]] = []
    layer = ""
    with progress_steps(n, f"explaining {n} maps", say) as step:
        for s in range(0, n, batch_size):
            res = map_explanations(pipe, ds.maps[s:s + batch_size], target, method, threshold=threshold,
                                   batch_size=batch_size)
            layer = res.layer
            shown, conf = _decided(res.probabilities, pipe.class_names, pipe.multilabel, threshold)
            for j, cam in enumerate(res.cams):
                i = s + j
                lot, wafer = ids["lot"].iat[i], ids["wafer"].iat[i]
                name = _file_name(i, width, [lot, wafer or f"{Path(src[i]).name}-{src_idx[i]}"])
                (out / name).write_bytes(wafer_cam_png(ds.maps[i], cam, scale))
                r, c = _peak(cam)
                rows.append([src[i], i, lot, wafer, shown[j], round(float(conf[j]), 6),
                             ";".join(pipe.class_names[k] for k in res.targets[j]), r, c, name])
                step(name)
    return rows, {"kind": "wafer", "method": method, "layer": layer}


def _explain_images(kind: str, model_dir: str | Path, data: str | Path, out: Path, on_error: str, target: Any,
                    method: str | None, limit: int | None, say: Printer, batch_size: int
                    ) -> tuple[list[list[Any]], dict[str, Any]]:
    """Image classifiers and detectors: read the images, explain in batches, one overlay per image."""
    from adrcs.api_reading import report_skipped
    from adrcs.data.image_check import drop_unreadable
    from adrcs.engine.progress import progress_steps
    from adrcs.inference.explain import (check_detector_request, check_method, detector_explanations,
                                         image_explanations)
    from adrcs.report.cam_overlay import image_cam_png

    detector = kind == "detect"
    if detector:
        from adrcs.api_images import load_detection_data
        from adrcs.detector_pipeline import DetectorPipeline

        method = check_detector_request(method, target)
        pipe = DetectorPipeline.load(model_dir)
        ds = load_detection_data(data, allow_plain=True)
    else:
        from adrcs.api_image_classify import load_image_data
        from adrcs.image_classifier_pipeline import ImageClassifierPipeline

        pipe = ImageClassifierPipeline.load(model_dir)
        method = check_method(method)
        ds = load_image_data(data, require_labels=False)
    if limit is not None and len(ds) > int(limit):
        ds = ds.subset(np.arange(int(limit)))
    skipped: list[dict[str, str]] = []
    if on_error == "skip":
        with progress_steps(len(ds), f"checking {len(ds)} images", say) as step:
            ds, skipped = drop_unreadable(ds, step, templates=pipe.use_template)
    n, width = len(ds), len(str(max(len(ds) - 1, 0)))
    out.mkdir(parents=True, exist_ok=True)
    rows: list[list[Any]] = []
    layer = ""
    bs = max(1, batch_size if not detector else 4)
    with progress_steps(n, f"explaining {n} images", say) as step:
        for s in range(0, n, bs):
            idx = range(s, min(s + bs, n))
            imgs = [ds.read_image(i, pipe.image_mode) for i in idx]
            tmps = [ds.read_template(i, pipe.image_mode) if pipe.use_template else None for i in idx]
            if detector:
                res = detector_explanations(pipe, imgs, templates=tmps, target=target)
            else:
                res = image_explanations(pipe, imgs, target, method, templates=tmps, batch_size=bs)
            layer = res.layer
            for j, i in enumerate(idx):
                path = str(ds.paths[i])
                name = _file_name(i, width, [Path(path).stem])
                if detector:
                    det = res.detections[j]
                    best = int(np.argmax(det["scores"])) if len(det["scores"]) else -1
                    pred = pipe.class_names[int(det["labels"][best])] if best >= 0 else ""
                    conf = float(det["scores"][best]) if best >= 0 else 0.0
                    png = image_cam_png(imgs[j], res.cams[j], detections=det, class_names=pipe.class_names)
                    tgt = AGNOSTIC
                else:
                    p = res.probabilities[j]
                    pred, conf = pipe.class_names[int(p.argmax())], float(p.max())
                    png = image_cam_png(imgs[j], res.cams[j])
                    tgt = ";".join(pipe.class_names[k] for k in res.targets[j])
                (out / name).write_bytes(png)
                r, c = _peak(res.cams[j])
                rows.append([path, i, "", "", pred, round(conf, 6), tgt, r, c, name])
                step(name)
    report_skipped(skipped, say)
    return rows, {"kind": kind, "method": method, "layer": layer}
