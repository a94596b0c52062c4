"""The runtime switch of `predict` / `evaluate` / `serve`: a run folder's model for
``--runtime torch|onnx|onnx-int8``.

``onnx`` uses the run folder's checked ``model.onnx`` (`export_onnx.is_current`: it passed its check and was
exported from the current ``model.ckpt``), exporting and checking it first when it is missing or stale;
``onnx-int8`` uses ``model.int8.onnx`` from the same export (exported with ``--int8`` first when missing).
Wafer-map models (`load_wafer_model`), image classifiers and detectors (`load_image_model`; detectors have no
INT8 yet: a one-line error).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from adrcs.deploy.export_onnx import INT8_NAME, ONNX_NAME, export_onnx, is_current, read_metadata
from adrcs.inference.onnx_runtime import OnnxPredictor, check_runtime
from adrcs.pipeline import Pipeline

Printer = Callable[[str], None]


def has_int8(run_dir: str | Path) -> bool:
    """True when the run's current export includes ``model.int8.onnx`` (its metadata has the ``int8`` report)."""
    run_dir = Path(run_dir)
    return (is_current(run_dir) and (run_dir / INT8_NAME).is_file()
            and "int8" in (read_metadata(run_dir) or {}))


def ensure_export(run_dir: str | Path, int8: bool = False, say: Printer = print) -> Path:
    """The run's checked ``model.onnx`` (``model.int8.onnx`` with `int8`), exported first when missing or stale."""
    run_dir = Path(run_dir)
    name = INT8_NAME if int8 else ONNX_NAME
    if not (has_int8(run_dir) if int8 else is_current(run_dir)):
        say(f"runtime {'onnx-int8' if int8 else 'onnx'}: no checked {name} for the current model.ckpt in "
            f"{run_dir}; exporting it")
        export_onnx(run_dir, int8=int8, say=say)
    return run_dir / name


def load_onnx(run_dir: str | Path, say: Printer = print, threads: int | None = None,
              int8: bool = False) -> OnnxPredictor:
    """The run's wafer-map model on ONNX Runtime (``model.int8.onnx`` with `int8`); exported (and checked) first
    when missing or stale."""
    path = ensure_export(run_dir, int8, say)
    return OnnxPredictor(Pipeline.load(run_dir), path, threads, runtime="onnx-int8" if int8 else "onnx")


def load_wafer_model(run_dir: str | Path, runtime: str = "torch", say: Printer = print) -> Any:
    """The wafer-map model of a run folder for `runtime` (torch: `Pipeline`; onnx, onnx-int8: `OnnxPredictor`,
    described in one line through `say`)."""
    runtime = check_runtime(runtime)
    if runtime == "torch":
        return Pipeline.load(run_dir)
    model = load_onnx(run_dir, say=say, int8=runtime == "onnx-int8")
    say(model.describe())
    return model


def load_image_model(run_dir: str | Path, kind: str, runtime: str = "torch", say: Printer = print,
                     threads: int | None = None) -> Any:
    """The image classifier (`kind` "image_classify") or detector ("detect") of a run folder for `runtime` (torch:
    its pipeline; onnx / onnx-int8: `OnnxImageClassifier` / `OnnxDetector`, described in one line through `say`).
    A run of another kind fails as that pipeline's `load` says."""
    from adrcs.tasks import get_task

    runtime = check_runtime(runtime)
    task = get_task(kind)
    if runtime == "torch":
        return task.load(run_dir, "cpu")
    int8 = runtime == "onnx-int8"
    if int8 and task.name == "detect":
        from adrcs.deploy.export_detector import refuse_int8

        refuse_int8(run_dir)
    base = task.load(run_dir, "cpu")  # the kind's own error for a run of another kind, before any export
    path = ensure_export(run_dir, int8, say)
    if task.name == "detect":
        from adrcs.deploy.onnx_detector import OnnxDetector

        model: Any = OnnxDetector.wrap(base, path, read_metadata(run_dir) or {}, threads)
    else:
        from adrcs.inference.onnx_image_classifier import OnnxImageClassifier

        model = OnnxImageClassifier.wrap(base, path, threads, runtime)
    say(model.describe())
    return model
