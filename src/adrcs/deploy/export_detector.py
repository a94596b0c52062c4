"""`adrcs export --format onnx` for detectors: the backbone + FPN + head as ``model.onnx`` (`detector_graph`)
and ``model.onnx.json``, the metadata `predict` needs to run it with the decoding in Python.

What is checked (under ``check`` in the metadata): the ONNX checker passes; ONNX Runtime's raw head outputs
on sample images (`detector_graph.sample_images`) equal PyTorch's within ``export_onnx.TOLERANCE`` (max abs
difference per output, and relative to the largest magnitude when that is over 1, as for classifiers); and
the final detections (decoded by the torch model's own post-processing from either set of raw outputs) match
PyTorch's: the same number of boxes per image, each torch box with an ONNX box of the same label within
``BOX_TOLERANCE`` pixels and ``TOLERANCE`` in score. INT8 is not offered for detectors yet.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from adrcs.deploy.detector_graph import (INPUT_NAME, DetectorGraph, check_exportable, decode, level_info,
                                         output_names, sample_images)
from adrcs.deploy.export_onnx import (META_FORMAT, ONNX_NAME, OPSET, TOLERANCE, checkpoint_sha256,
                                     write_metadata)
from adrcs.errors import InputError

Printer = Callable[[str], None]
BOX_TOLERANCE = 1e-2  # pixels of the network input


def refuse_int8(run_dir: Any = None) -> None:
    """The one-line error for INT8 requests on a detector."""
    raise InputError(run_dir, "INT8 is not supported for detectors yet (--int8 / --runtime onnx-int8); export "
                              "without --int8 and use --runtime onnx")


def export_detector(run_dir: str | Path, pipe: Any, out: Path, int8: bool = False, say: Printer = print,
                    n_check: int | None = None) -> dict[str, Any]:
    """Export, check and describe a loaded `DetectorPipeline` (CPU) into `out`; returns the metadata."""
    if int8:
        refuse_int8(run_dir)
    check_exportable(pipe, run_dir)
    run_dir = Path(run_dir)
    net, size = pipe.net.eval(), int(pipe.input_size)
    graph = DetectorGraph(net, size).eval()
    names = output_names(graph, size, int(pipe.in_chans))
    x = sample_images(pipe, **({"n": n_check} if n_check else {}))
    t0 = time.time()
    _export(graph, torch.from_numpy(x[:2]), names, out / ONNX_NAME)
    check = check_detector(out / ONNX_NAME, graph, names, x, size)
    check["data"] = f"{len(x)} synthetic images (noisy board, bright / dark rectangles)"
    meta = _metadata(pipe, graph, names, run_dir, x, check, time.time() - t0)
    diffs = ", ".join(f"{k} {v:.2e}" for k, v in check["max_abs_diff"].items())
    b = check["boxes"]
    say(f"exported {out / ONNX_NAME} ({(out / ONNX_NAME).stat().st_size / 1e6:.2f} MB): ONNX checker passed; on "
        f"{check['data']} max abs difference to PyTorch: {diffs}; detections: {b['matched']} of {b['n_torch']} "
        f"boxes match ({b['n_onnx']} from ONNX, max box difference {b['max_abs_diff_px']:.2e} px) -> "
        f"{'passed' if check['passed'] else 'FAILED'} (tolerance {TOLERANCE:g})")
    return write_metadata(out, meta, check, say)


def _export(graph: torch.nn.Module, example: torch.Tensor, names: list[str], path: Path) -> None:
    axes = {n: {0: "batch"} for n in (INPUT_NAME, *names)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(graph, (example,), str(path), dynamo=False, input_names=[INPUT_NAME], output_names=names,
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True)


def torch_raw(graph: DetectorGraph, x: np.ndarray, batch_size: int = 8) -> list[np.ndarray]:
    """The graph's raw outputs in PyTorch (the reference)."""
    outs: list[list[np.ndarray]] = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            res = [t.float().numpy() for t in graph(torch.from_numpy(x[i:i + batch_size]))]
            outs = [[r] for r in res] if not outs else [o + [r] for o, r in zip(outs, res)]
    return [np.concatenate(o) for o in outs]


def check_detector(path: Path, graph: DetectorGraph, names: list[str], x: np.ndarray,
                   size: int) -> dict[str, Any]:
    """ONNX checker, raw outputs against PyTorch's, and the decoded detections against the torch model's."""
    import onnx

    from adrcs.inference.onnx_runtime import make_session, run_session

    onnx.checker.check_model(str(path))  # raises on an invalid model
    got = run_session(make_session(path, threads=1), INPUT_NAME, x, batch_size=8)
    ref = torch_raw(graph, x)
    diff = {n: float(np.abs(a - b).max()) for n, a, b in zip(names, got, ref)}
    rel = {n: diff[n] / max(1.0, float(np.abs(r).max())) for n, r in zip(names, ref)}
    levels = level_info(graph, size, x.shape[1])
    with torch.inference_mode():
        want = graph.net(list(torch.from_numpy(x)))  # the torch model end to end (its own forward)
    boxes = compare_detections(want, decode(graph.net, levels, names, got, size))
    passed = max(rel.values()) <= TOLERANCE and boxes["match"]
    return {"onnx_checker": "passed", "n": int(len(x)), "max_abs_diff": diff, "max_rel_diff": rel, "boxes": boxes,
            "tolerance": TOLERANCE, "box_tolerance_px": BOX_TOLERANCE, "passed": bool(passed)}


def compare_detections(want: list[dict[str, torch.Tensor]], got: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Do two detection lists agree (same count per image; each wanted box has a got box of its label within
    ``BOX_TOLERANCE`` px and ``TOLERANCE`` in score)? Counts and the largest differences of the matched boxes."""
    n_want = n_got = matched = 0
    box_d = score_d = 0.0
    same_count = len(want) == len(got)
    for w, g in zip(want, got):
        wb, gb = w["boxes"].numpy(), g["boxes"].numpy()
        n_want, n_got = n_want + len(wb), n_got + len(gb)
        same_count &= len(wb) == len(gb)
        if not len(wb) or not len(gb):
            continue
        dist = np.abs(wb[:, None, :] - gb[None, :, :]).max(axis=2)
        sdist = np.abs(w["scores"].numpy()[:, None] - g["scores"].numpy()[None, :])
        cost = np.maximum(dist / BOX_TOLERANCE, sdist / TOLERANCE)  # <= 1: within both tolerances
        cost[w["labels"].numpy()[:, None] != g["labels"].numpy()[None, :]] = np.inf
        j = cost.argmin(axis=1)  # (identical boxes of one label may repeat: degenerate ones escape NMS)
        rows = np.arange(len(wb))
        d, s = dist[rows, j], sdist[rows, j]
        ok = cost[rows, j] <= 1.0
        matched += int(ok.sum())
        if ok.any():
            box_d, score_d = max(box_d, float(d[ok].max())), max(score_d, float(s[ok].max()))
    return {"n_torch": n_want, "n_onnx": n_got, "matched": matched, "max_abs_diff_px": box_d,
            "max_abs_diff_score": score_d, "match": bool(same_count and matched == n_want == n_got)}


def _metadata(pipe: Any, graph: DetectorGraph, names: list[str], run_dir: Path, x: np.ndarray,
              check: dict[str, Any], seconds: float) -> dict[str, Any]:
    import onnx
    import onnxruntime
    import torchvision

    net, size = graph.net, int(pipe.input_size)
    cal = pipe.score_calibration
    return {
        "format": META_FORMAT, "task": "detect", "onnx": ONNX_NAME, "run_dir": str(run_dir),
        "checkpoint_sha256": checkpoint_sha256(run_dir), "class_names": list(pipe.class_names), "multilabel": False,
        "input_size": size, "in_chans": int(pipe.in_chans), "image_mode": pipe.image_mode,
        "use_template": bool(pipe.use_template), "preprocessing": pipe.preprocessing,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", int(x.shape[1]), size, size],
                  "note": "prepare_input runs before the graph (decode, square bilinear resize, [0, 1], test / "
                          "template / |test - template| channels); normalisation and padding are in the graph"},
        "outputs": names, "label_offset": 1,
        "decoding": {"levels": level_info(graph, size, int(x.shape[1])),
                     "score_thresh": float(net.score_thresh), "nms_thresh": float(net.nms_thresh),
                     "detections_per_img": int(net.detections_per_img),
                     "topk_candidates": int(net.topk_candidates), "box_coder": type(net.box_coder).__name__,
                     "note": "outputs split per level by num_anchors_per_level; anchors, box decoding, top-k and "
                             "NMS by the torch model's own postprocess_detections (deploy.detector_graph.decode)"},
        "score_threshold": float(pipe.score_threshold),
        "score_calibration": None if cal is None else cal.state(),
        "model": pipe.detector, "model_args": dict(pipe.detector_args),
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "opset": OPSET},
        "check": check, "export_seconds": round(seconds, 2),
    }
