"""The runtime switch of `predict` / `evaluate`: a run folder's wafer-map model for ``--runtime torch|onnx``.

``onnx`` uses the run folder's checked ``model.onnx`` (`export_onnx.is_current`: it passed its check and was
exported from the current ``model.ckpt``), exporting and checking it first when it is missing or stale.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from adrcs.deploy.export_onnx import ONNX_NAME, export_onnx, is_current
from adrcs.inference.onnx_runtime import OnnxPredictor, check_runtime
from adrcs.pipeline import Pipeline

Printer = Callable[[str], None]


def load_onnx(run_dir: str | Path, say: Printer = print, threads: int | None = None) -> OnnxPredictor:
    """The run's model on ONNX Runtime; ``model.onnx`` exported (and checked) first when missing or stale."""
    run_dir = Path(run_dir)
    if not is_current(run_dir):
        say(f"runtime onnx: no checked {ONNX_NAME} for the current model.ckpt in {run_dir}; exporting it")
        export_onnx(run_dir, say=say)
    return OnnxPredictor(Pipeline.load(run_dir), run_dir / ONNX_NAME, threads)


def load_wafer_model(run_dir: str | Path, runtime: str = "torch", say: Printer = print) -> Any:
    """The wafer-map model of a run folder for `runtime` (torch: `Pipeline`; onnx: `OnnxPredictor`, described
    in one line through `say`)."""
    if check_runtime(runtime) == "torch":
        return Pipeline.load(run_dir)
    model = load_onnx(run_dir, say=say)
    say(model.describe())
    return model
