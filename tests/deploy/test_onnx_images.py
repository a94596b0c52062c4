"""ONNX for the image tasks: a detector's backbone + FPN + head and an image classifier export with their raw
outputs within 1e-4 of PyTorch (recorded in model.onnx.json), and `predict` / `evaluate --runtime onnx` give
PyTorch's answers (same classes, same boxes) and record the runtime; unsupported requests are one-line errors."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.cli import run_cli
from helpers.images import write_class_folders
from helpers.runs import train_detector_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EXPORTS = ("model.onnx", "model.onnx.json", "model.int8.onnx")


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory) -> Path:
    """A slim FCOS (64 px input, test / template / difference channels) trained 1 epoch on 4 synthetic images."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_detector_run(tmp_path_factory.mktemp("onnx_det"), n=4, epochs=1)
    finally:
        torch.set_num_threads(n)


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny CNN image classifier (32 px, with templates) trained 1 epoch on 3 x 6 synthetic images."""
    from adrcs.cli import main

    root = tmp_path_factory.mktemp("onnx_cls")
    data = write_class_folders(root / "data", per_class=6, templates=True)
    args = ["train", "--data", str(data), "--out", str(root / "run"), "--task", "image_classify", "--model", "cnn",
            "--input-size", "32", "--epochs", "1", "--batch-size", "8", "--val-fraction", "0.3",
            "--model-args", "{width: 8}", "--device", "cpu", "--progress", "false", "--early-stopping-patience", "0"]
    try:
        main(args)
    except SystemExit as e:
        assert not e.code, e
    sys.stdout.flush()
    return root / "run", data


def _fresh_copy(run: Path, dest: Path) -> Path:
    """`run` copied to `dest` without any export (so `--runtime onnx` exports first)."""
    shutil.copytree(run, dest)
    for name in EXPORTS:
        (dest / name).unlink(missing_ok=True)
    return dest


def _same_boxes(a: dict, b: dict, px: float = 0.02, score: float = 2e-4) -> None:
    """Two predictions.json documents report the same boxes (rounded to 0.01 px and 1e-4 in score)."""
    assert [e["path"] for e in a["images"]] == [e["path"] for e in b["images"]]
    for ea, eb in zip(a["images"], b["images"]):
        assert len(ea["boxes"]) == len(eb["boxes"])
        for box in ea["boxes"]:
            assert any(o["class"] == box["class"] and abs(o["score"] - box["score"]) <= score
                       and max(abs(o[k] - box[k]) for k in ("x1", "y1", "x2", "y2")) <= px for o in eb["boxes"]), box


@pytest.mark.slow
def test_detector_export_round_trip(detector_run: Path, capsys) -> None:
    import onnx

    code, out, err = run_cli(["export", "--model", detector_run, "--format", "onnx"], capsys)
    assert code == 0, err
    assert "ONNX checker passed" in out and "max abs difference" in out and "boxes match" in out
    onnx.checker.check_model(str(detector_run / "model.onnx"))
    meta = json.loads((detector_run / "model.onnx.json").read_text())
    check = meta["check"]
    assert check["passed"] and check["onnx_checker"] == "passed"
    assert meta["outputs"] == ["cls_logits", "bbox_regression", "bbox_ctrness"]
    assert max(check["max_abs_diff"].values()) <= 1e-4  # every raw output, absolute
    assert check["boxes"]["match"] and check["boxes"]["n_torch"] == check["boxes"]["matched"] > 0
    assert meta["task"] == "detect" and meta["input_size"] == 64 and meta["use_template"] and meta["in_chans"] == 3
    assert meta["input"]["shape"] == ["batch", 3, 64, 64] and meta["input"]["dtype"] == "float32"
    levels = meta["decoding"]["levels"]
    assert levels["strides"] == [8, 16, 32, 64] and sum(levels["num_anchors_per_level"]) == 85
    assert meta["score_threshold"] == 0.3 and meta["score_calibration"] is not None
    assert meta["class_names"][:2] == ["open", "short"] and len(meta["checkpoint_sha256"]) == 64


@pytest.mark.slow
def test_detector_predict_and_evaluate_runtime_onnx(detector_run: Path, tmp_path: Path, capsys) -> None:
    run = _fresh_copy(detector_run, tmp_path / "run")
    data = detector_run.parent / "data" / "trainval.txt"
    code, out, err = run_cli(["predict", "--model", run, "--data", data, "--out", tmp_path / "onnx",
                              "--score-threshold", "0.0", "--no-annotated", "--runtime", "onnx"], capsys)
    assert code == 0, err
    assert "exporting it" in out and "runtime: onnx (model.onnx" in out and "(runtime onnx)" in out
    assert (run / "model.onnx").is_file()  # exported on the fly
    code, out, err = run_cli(["predict", "--model", run, "--data", data, "--out", tmp_path / "torch",
                              "--score-threshold", "0.0", "--no-annotated"], capsys)
    assert code == 0, err
    assert "(runtime torch)" in out
    a = json.loads((tmp_path / "onnx" / "predictions.json").read_text())
    b = json.loads((tmp_path / "torch" / "predictions.json").read_text())
    assert a["runtime"] == "onnx" and b["runtime"] == "torch" and a["n_boxes"] == b["n_boxes"] > 0
    _same_boxes(b, a)
    _same_boxes(a, b)
    code, out, err = run_cli(["evaluate", "--model", run, "--data", data, "--out", tmp_path / "ev.json",
                              "--runtime", "onnx"], capsys)
    assert code == 0, err
    assert "exporting" not in out  # the checked export is reused
    code, out, err = run_cli(["evaluate", "--model", run, "--data", data, "--out", tmp_path / "ev_torch.json"], capsys)
    assert code == 0, err
    ev, ev_t = (json.loads((tmp_path / n).read_text()) for n in ("ev.json", "ev_torch.json"))
    assert ev["runtime"] == "onnx" and ev_t["runtime"] == "torch"
    for key in ("map_50", "map_50_95", "precision", "recall", "f1"):
        assert ev[key] == pytest.approx(ev_t[key], abs=1e-6), key


@pytest.mark.slow
def test_image_classifier_runtime_onnx(classifier_run: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    trained, data = classifier_run
    run = _fresh_copy(trained, tmp_path / "run")
    code, out, err = run_cli(["predict", "--model", run, "--data", data, "--out", tmp_path / "onnx.csv",
                              "--runtime", "onnx"], capsys)
    assert code == 0, err
    assert "exporting it" in out and "(runtime onnx)" in out
    meta = json.loads((run / "model.onnx.json").read_text())
    assert meta["check"]["passed"] and max(meta["check"]["max_abs_diff"].values()) <= 1e-4
    assert meta["task"] == "image_classify" and meta["input"]["shape"] == ["batch", 3, 32, 32]
    code, out, err = run_cli(["predict", "--model", run, "--data", data, "--out", tmp_path / "torch.csv"], capsys)
    assert code == 0, err
    a, b = pd.read_csv(tmp_path / "onnx.csv"), pd.read_csv(tmp_path / "torch.csv")
    assert list(a.columns) == list(b.columns) and len(a) == 18
    assert (a["predicted"] == b["predicted"]).all()
    probs = [c for c in a.columns if c.startswith("prob_")]
    assert np.abs(a[probs].to_numpy() - b[probs].to_numpy()).max() <= 2e-6  # rounded to 6 decimals
    code, out, err = run_cli(["evaluate", "--model", run, "--data", data, "--out", tmp_path / "ev.json",
                              "--runtime", "onnx"], capsys)
    assert code == 0, err
    assert "exporting" not in out
    code, out, err = run_cli(["evaluate", "--model", run, "--data", data, "--out", tmp_path / "ev_t.json"], capsys)
    assert code == 0, err
    ev, ev_t = (json.loads((tmp_path / n).read_text()) for n in ("ev.json", "ev_t.json"))
    assert ev["runtime"] == "onnx" and ev_t["runtime"] == "torch" and ev["accuracy"] == ev_t["accuracy"]
    code, out, err = run_cli(["evaluate", "--model", run, "--data", data, "--out", tmp_path / "ev8.json",
                              "--runtime", "onnx-int8"], capsys)
    assert code == 0, err
    assert "runtime: onnx-int8 (model.int8.onnx" in out
    assert json.loads((tmp_path / "ev8.json").read_text())["runtime"] == "onnx-int8"
    assert 0.0 <= json.loads((run / "model.onnx.json").read_text())["int8"]["agreement"] <= 1.0


def _saved_detector(tmp: Path, name: str) -> Path:
    """A run folder holding an untrained detector (seconds faster than training)."""
    import torch

    from adrcs.detector_pipeline import DetectorPipeline
    from adrcs.models.detection import create_detector

    torch.manual_seed(0)
    net = create_detector(name, num_classes=2, in_chans=1, min_size=48, max_size=48).eval()
    run = tmp / name
    DetectorPipeline(net=net, detector=name, detector_args={}, class_names=["open", "short"], in_chans=1,
                     input_size=48, use_template=False, score_threshold=0.1).save(run)
    return run


def test_untrained_retinanet_export_at_an_unpadded_size(tmp_path: Path) -> None:
    """RetinaNet (two outputs, 9 anchors per location) at 48 px (padded to 64 inside the graph)."""
    from adrcs.deploy.export_onnx import export_onnx

    meta = export_onnx(_saved_detector(tmp_path, "retinanet_r18_slim"), say=lambda s: None, n_check=3)
    assert meta["outputs"] == ["cls_logits", "bbox_regression"] and meta["check"]["passed"]
    assert max(meta["check"]["max_abs_diff"].values()) <= 1e-4 and meta["check"]["boxes"]["match"]
    assert meta["decoding"]["levels"]["padded_size"] == 64 and meta["decoding"]["levels"]["anchors_per_location"] == 9


@pytest.mark.parametrize("name, argv, message", [
    ("fcos_r18_slim", ["export", "--int8"], "INT8 is not supported for detectors"),
    ("fcos_r18_slim", ["predict", "--data", "x", "--out", "p", "--runtime", "onnx-int8"],
     "INT8 is not supported for detectors"),
    ("fcos_r18_slim", ["evaluate", "--data", "x", "--runtime", "onnx-int8"], "INT8 is not supported for detectors"),
    ("faster_rcnn_r18_slim", ["export"], "two-stage detectors"),
])
def test_unsupported_detector_requests_are_one_line(name: str, argv: list[str], message: str, tmp_path: Path,
                                                    capsys) -> None:
    run = _saved_detector(tmp_path, name)
    code, out, err = run_cli([argv[0], "--model", run, *argv[1:]], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (run / "model.onnx").exists()
