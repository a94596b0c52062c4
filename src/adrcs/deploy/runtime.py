"""The runtime switch of `predict` / `evaluate` / `serve`: a run folder's wafer-map model for
``--runtime torch|onnx|onnx-int8``.

``onnx`` uses the run folder's checked ``model.onnx`` (`export_onnx.is_current`: it passed its check and was
exported from the current ``model.ckpt``), exporting and checking it first when it is missing or stale;
``onnx-int8`` uses ``model.int8.onnx`` from the same export (exported with ``--int8`` first when missing).
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


def load_onnx(run_dir: str | Path, say: Printer = print, threads: int | None = None,
              int8: bool = False) -> OnnxPredictor:
    """The run's model on ONNX Runtime (``model.int8.onnx`` with `int8`); exported (and checked) first when
    missing or stale."""
    run_dir = Path(run_dir)
    name = INT8_NAME if int8 else ONNX_NAME
    if not (has_int8(run_dir) if int8 else is_current(run_dir)):
        say(f"runtime {'onnx-int8' if int8 else 'onnx'}: no checked {name} for the current model.ckpt in "
            f"{run_dir}; exporting it")
        export_onnx(run_dir, int8=int8, say=say)
    return OnnxPredictor(Pipeline.load(run_dir), run_dir / name, threads, runtime="onnx-int8" if int8 else "onnx")


def load_wafer_model(run_dir: str | Path, runtime: str = "torch", say: Printer = print) -> Any:
    """The wafer-map model of a run folder for `runtime` (torch: `Pipeline`; onnx, onnx-int8: `OnnxPredictor`,
    described in one line through `say`)."""
    runtime = check_runtime(runtime)
    if runtime == "torch":
        return Pipeline.load(run_dir)
    model = load_onnx(run_dir, say=say, int8=runtime == "onnx-int8")
    say(model.describe())
    return model
