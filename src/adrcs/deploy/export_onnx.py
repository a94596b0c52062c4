"""`adrcs export --format onnx`: a run's network as ``model.onnx`` (+ ``model.int8.onnx`` with ``--int8``) and
``model.onnx.json``, the metadata `predict` needs to run it.

What is checked (and recorded under ``check`` in the metadata): the ONNX checker passes, and ONNX Runtime's
outputs (logits, probabilities, features) on sample data (`onnx_graphs.sample_inputs`) equal PyTorch's within
``TOLERANCE``: max abs difference of the probabilities; of logits and features divided by their largest
magnitude when that is over 1 (``max_rel_diff``; fp32 sums of large values differ in their last bits). An
export that fails the check is kept for inspection but ``check.passed`` is false and ``--runtime onnx``
refuses it (and exports again).

INT8 (``--int8``): ONNX Runtime's static quantisation (QDQ, per-channel int8 weights, uint8 activations: the
VNNI path on x86) calibrated on half of the sample data; the metadata's ``int8`` block reports, on the other
half, how often its decisions agree with fp32 and, when the sample has the model's classes, accuracy / macro-F1
before and after.

Exported with the TorchScript exporter (``dynamo=False``: no onnxscript dependency), opset ``OPSET``, a free
batch dimension. Detectors: `export_detector` (backbone + FPN + head raw outputs; decoding stays in Python).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from adrcs.deploy.onnx_graphs import OUTPUT_NAMES, graph_for, sample_inputs, torch_outputs
from adrcs.errors import InputError

Printer = Callable[[str], None]
ONNX_NAME, INT8_NAME, META_NAME = "model.onnx", "model.int8.onnx", "model.onnx.json"
META_FORMAT = "adrcs-onnx/1"
OPSET = 17
TOLERANCE = 1e-4
FORMATS = ("onnx",)


def checkpoint_sha256(run_dir: str | Path) -> str:
    """SHA-256 of the run's ``model.ckpt`` (the metadata ties an export to the checkpoint it came from)."""
    h = hashlib.sha256()
    with open(Path(run_dir) / "model.ckpt", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_metadata(folder: str | Path) -> dict[str, Any] | None:
    """``model.onnx.json`` of a folder, or None when missing / unreadable."""
    try:
        return json.loads((Path(folder) / META_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_current(run_dir: str | Path) -> bool:
    """True when the run folder holds a ``model.onnx`` that passed its check and came from its ``model.ckpt``."""
    meta = read_metadata(run_dir)
    return (meta is not None and (Path(run_dir) / ONNX_NAME).is_file() and meta.get("format") == META_FORMAT
            and bool(meta.get("check", {}).get("passed"))
            and meta.get("checkpoint_sha256") == checkpoint_sha256(run_dir))


def load_for_export(run_dir: str | Path) -> tuple[str, Any]:
    """(task name, the loaded model on the CPU); one-line errors for runs that cannot be exported."""
    from adrcs.tasks import task_of

    task = task_of(run_dir)
    return task.name, task.load(run_dir, "cpu")


def export_onnx(run_dir: str | Path, out: str | Path | None = None, int8: bool = False, say: Printer = print,
                n_check: int | None = None) -> dict[str, Any]:
    """Export a run folder's model to ``out`` (default: the run folder), check it, optionally quantise it to
    INT8; writes ``model.onnx``, [``model.int8.onnx``] and ``model.onnx.json``, returns the metadata."""
    run_dir = Path(run_dir)
    kind, pipe = load_for_export(run_dir)
    out = Path(out) if out is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    if kind == "detect":
        from adrcs.deploy.export_detector import export_detector

        return export_detector(run_dir, pipe, out, int8=int8, say=say, n_check=n_check)
    graph, input_name = graph_for(kind, pipe)
    x, labels, what = sample_inputs(kind, pipe, **({"n": n_check} if n_check else {}))
    t0 = time.time()
    _export(graph, torch.from_numpy(np.ascontiguousarray(x[:2])), input_name, out / ONNX_NAME)
    ref = torch_outputs(graph, x)
    check = check_model(out / ONNX_NAME, input_name, x, ref)
    check["data"] = what
    meta = _metadata(kind, pipe, run_dir, input_name, x, check, time.time() - t0)
    say(f"exported {out / ONNX_NAME} ({_mb(out / ONNX_NAME)}): ONNX checker passed; on {what} max abs difference "
        f"to PyTorch: probabilities {check['max_abs_diff']['probabilities']:.2e}, logits "
        f"{check['max_abs_diff']['logits']:.2e}, features {check['max_abs_diff']['features']:.2e} (relative "
        f"{check['max_rel_diff']['features']:.2e}) -> {'passed' if check['passed'] else 'FAILED'} (tolerance "
        f"{TOLERANCE:g})")
    if int8:
        meta["int8"] = quantize_int8(out / ONNX_NAME, out / INT8_NAME, input_name, x, labels, pipe.multilabel)
        q = meta["int8"]
        unit = "images" if kind == "image_classify" else "maps"
        no_labels = ("random images carry no labels" if kind == "image_classify"
                     else "the sample has other classes than the model")
        say(f"INT8 {out / INT8_NAME} ({_mb(out / INT8_NAME)}), calibrated on {q['n_calibration']} of the {unit}: "
            f"decisions agree with fp32 on {100 * q['agreement']:.1f} % of the other {q['n']}; max abs probability "
            f"difference {q['max_abs_diff_probabilities']:.3g}"
            + (f"; accuracy {q['accuracy_fp32']:.4f} -> {q['accuracy_int8']:.4f}, macro-F1 {q['macro_f1_fp32']:.4f} "
               f"-> {q['macro_f1_int8']:.4f} ({q['macro_f1_change_points']:+.2f} points)" if "macro_f1_fp32" in q
               else f" ({no_labels}: agreement only)"))
    return write_metadata(out, meta, check, say)


def write_metadata(out: Path, meta: dict[str, Any], check: dict[str, Any], say: Printer) -> dict[str, Any]:
    """Write ``model.onnx.json``; InputError (after writing, so it can be inspected) when the check failed."""
    (out / META_NAME).write_text(json.dumps(meta, indent=2))
    say(f"metadata: {out / META_NAME}")
    if not check["passed"]:
        raise InputError(out / ONNX_NAME, f"the ONNX model differs from PyTorch by more than {TOLERANCE:g} (see "
                                          f"{META_NAME}); --runtime onnx will not use it")
    return meta


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.2f} MB"


def _export(graph: torch.nn.Module, example: torch.Tensor, input_name: str, path: Path) -> None:
    axes = {n: {0: "batch"} for n in (input_name, *OUTPUT_NAMES)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(graph, (example,), str(path), dynamo=False, input_names=[input_name],
                          output_names=list(OUTPUT_NAMES), dynamic_axes=axes, opset_version=OPSET,
                          do_constant_folding=True)


def check_model(path: Path, input_name: str, x: np.ndarray, ref: list[np.ndarray]) -> dict[str, Any]:
    """ONNX checker + ONNX Runtime outputs against the PyTorch reference `ref` (logits, probabilities, features)."""
    import onnx

    from adrcs.inference.onnx_runtime import make_session, run_session

    onnx.checker.check_model(str(path))  # raises on an invalid model
    got = run_session(make_session(path, threads=1), input_name, x)
    diff = {n: float(np.abs(a - b).max()) if a.size else 0.0 for n, a, b in zip(OUTPUT_NAMES, got, ref)}
    # logits and features: relative to their largest magnitude when that is over 1 (fp32 sums of large values)
    rel = {n: diff[n] / max(1.0, float(np.abs(r).max()) if r.size else 1.0)
           for n, r in zip(OUTPUT_NAMES, ref) if n != "probabilities"}
    passed = diff["probabilities"] <= TOLERANCE and max(rel.values()) <= TOLERANCE
    return {"onnx_checker": "passed", "n": int(len(x)), "max_abs_diff": diff, "max_rel_diff": rel,
            "tolerance": TOLERANCE, "passed": bool(passed)}


def _metadata(kind: str, pipe: Any, run_dir: Path, input_name: str, x: np.ndarray, check: dict[str, Any],
              seconds: float) -> dict[str, Any]:
    import onnx
    import onnxruntime

    inp = {"name": input_name, "dtype": str(x.dtype), "shape": ["batch", *map(int, x.shape[1:])]}
    meta: dict[str, Any] = {
        "format": META_FORMAT, "task": kind, "onnx": ONNX_NAME, "run_dir": str(run_dir),
        "checkpoint_sha256": checkpoint_sha256(run_dir), "class_names": list(pipe.class_names),
        "multilabel": bool(getattr(pipe, "multilabel", False)), "input_size": int(pipe.input_size),
        "preprocessing": pipe.preprocessing, "input": inp, "outputs": list(OUTPUT_NAMES),
        "decision_threshold": 0.5, "model": pipe.model_name, "model_args": pipe.model_args,
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                     "opset": OPSET},
        "check": check, "export_seconds": round(seconds, 2),
    }
    if input_name == "maps":
        inp["codes"] = {"off_wafer": 0, "good": 1, "fail": 2}
        inp["note"] = ("die codes resized to input_size as preprocessing.resize says; the one-hot encoding is in "
                       "the graph")
    elif input_name == "sinogram_features":
        inp["note"] = ("selected sinogram features: the feature step (SBAE encoder, Radon, standardise + select) "
                       "runs before the graph, from model.ckpt (PyTorch / NumPy)")
    else:
        inp["note"] = "uint8 images resized to input_size (bilinear); x / 255 is in the graph"
    meta["trust"] = _trust_block(getattr(pipe, "trust", None))
    return meta


def _trust_block(trust: Any) -> dict[str, Any] | None:
    """The trust layer's plain parts: temperature (probabilities -> logits -> / T -> softmax or sigmoid),
    conformal quantiles and the unknown threshold; the unknown scorer itself stays in model.ckpt."""
    if trust is None:
        return None
    unknown = trust.unknown
    return {"temperature": trust.temperature.state(), "conformal": trust.conformal.state(),
            "unknown": None if unknown is None else {"method": getattr(unknown, "method", "ensemble"),
                                                     "threshold": float(unknown.threshold)},
            "calibration": "p -> log p (multi-label: log(p / (1 - p))) -> / temperature -> softmax (sigmoid)",
            "note": "decision / set / unknown score as inference.trust computes them from model.ckpt"}


class _Reader:
    """Calibration data for static quantisation: the sample inputs in batches of 32."""

    def __init__(self, input_name: str, x: np.ndarray) -> None:
        self.batches = iter([{input_name: x[i:i + 32]} for i in range(0, len(x), 32)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def quantize_int8(fp32: Path, int8: Path, input_name: str, x: np.ndarray, labels: np.ndarray | None,
                  multilabel: bool) -> dict[str, Any]:
    """Static INT8 quantisation of `fp32` to `int8`, calibrated on the even-numbered rows of `x`; agreement with
    fp32 (and accuracy / macro-F1 before and after, with `labels`) reported on the odd-numbered rows, which the
    calibration never saw (all rows when `x` has fewer than 2)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from adrcs.inference.onnx_runtime import make_session, run_session

    calib, held = (x[0::2], np.arange(len(x))[1::2]) if len(x) >= 2 else (x, np.arange(len(x)))
    pre = int8.with_name(int8.stem + ".pre.onnx")
    try:
        with _quiet():
            source = _preprocess(fp32, pre)
            quantize_static(str(source), str(int8), _Reader(input_name, calib), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
    finally:
        pre.unlink(missing_ok=True)
    xe = x[held]
    p32 = run_session(make_session(fp32, threads=1), input_name, xe)[1]
    p8 = run_session(make_session(int8, threads=1), input_name, xe)[1]
    d32, d8 = _decisions(p32, multilabel), _decisions(p8, multilabel)
    agree = (d32 == d8).all(axis=1) if multilabel else d32 == d8
    rep: dict[str, Any] = {"onnx": INT8_NAME, "method": "static QDQ, per-channel int8 weights, uint8 activations, "
                           "MinMax calibration", "n_calibration": int(len(calib)), "n": int(len(xe)),
                           "agreement": float(agree.mean()) if len(xe) else 1.0,
                           "max_abs_diff_probabilities": float(np.abs(p32 - p8).max()) if len(xe) else 0.0}
    if labels is not None and len(xe):
        y = labels[held]
        rep.update(_accuracy(y, d32, multilabel, "fp32"))
        rep.update(_accuracy(y, d8, multilabel, "int8"))
        rep["macro_f1_change_points"] = round(100 * (rep["macro_f1_int8"] - rep["macro_f1_fp32"]), 3)
    return rep


def _preprocess(fp32: Path, pre: Path) -> Path:
    """ONNX Runtime's recommended step before quantisation (shape inference, graph optimisation) into `pre`;
    `fp32` itself when that step fails (quantisation still works, with fewer fused ops)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(fp32), str(pre))
        return pre
    except Exception:  # noqa: BLE001 - optional step
        return fp32


@contextmanager
def _quiet() -> Iterator[None]:
    """No warnings, and errors only on the root logger (where the quantiser logs its advice)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _decisions(probs: np.ndarray, multilabel: bool) -> np.ndarray:
    return (probs >= 0.5).astype(int) if multilabel else probs.argmax(axis=1)


def _accuracy(y: np.ndarray, pred: np.ndarray, multilabel: bool, tag: str) -> dict[str, float]:
    from sklearn.metrics import f1_score

    acc = float((pred == y).all(axis=1).mean()) if multilabel else float((pred == y).mean())
    f1 = float(f1_score(y, pred, average="macro", zero_division=0))
    return {f"accuracy_{tag}": acc, f"macro_f1_{tag}": f1}
