"""`adrcs export --format onnx` and `--runtime onnx`: the exported graph equals PyTorch (max abs difference
<= 1e-4) for every kind of wafer-map model (ffn, cnn, multi-label, the sinogram pipeline's 1-D network) and for
image classifiers (detectors: test_onnx_images.py); INT8 reports its agreement; predict / evaluate record the
runtime and export on the fly."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.cli import run_cli
from helpers.frames import WM811K
from helpers.runs import train_wafer_run
from helpers.wafers import MIXED

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "adrcs" / "samples" / "wm811k_sample_val.pkl.xz"


def _saved_run(tmp: Path, model: str, class_names: list[str], multilabel: bool = False, input_size: int = 16,
               model_args: dict | None = None, features=None) -> Path:
    """A run folder holding an untrained (random-weight) wafer-map model: seconds faster than training."""
    import torch

    from adrcs.models import create_model
    from adrcs.pipeline import Pipeline

    torch.manual_seed(0)
    args = dict(model_args or {})
    net = create_model(model, num_classes=len(class_names), multilabel=multilabel, **args)
    with torch.no_grad():  # BatchNorm statistics away from the identity, so folding them is exercised
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    run = tmp / f"{model}{'_ml' if multilabel else ''}{'_sino' if features is not None else ''}"
    Pipeline(net=net, model_name=model, model_args=args, class_names=list(class_names), multilabel=multilabel,
             input_size=input_size, features=features).save(run)
    return run


def _within_tolerance(meta: dict) -> bool:
    """The export's check: probabilities within 1e-4 absolute, logits / features within 1e-4 relative."""
    check = meta["check"]
    return (check["passed"] and check["max_abs_diff"]["probabilities"] <= 1e-4
            and max(check["max_rel_diff"].values()) <= 1e-4)


def _sample_maps(n: int) -> list[np.ndarray]:
    """The first `n` die-code maps of the shipped WM-811K validation sample (sizes vary)."""
    from adrcs.data.loader import load

    return list(load(SAMPLE).maps[:n])


def _same_outputs(run: Path, maps: list, tta: bool, tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """ONNX Runtime and PyTorch give the same probabilities and features for `maps`; returns both probabilities."""
    from adrcs.deploy.runtime import load_onnx
    from adrcs.pipeline import Pipeline

    onnx_model, torch_model = load_onnx(run, say=lambda s: None), Pipeline.load(run)
    p1, f1 = onnx_model.predict_outputs(onnx_model.prepare(maps), tta=tta)
    p2, f2 = torch_model.predict_outputs(torch_model.prepare(maps), tta=tta)
    assert p1.shape == p2.shape and f1.shape == f2.shape
    assert np.abs(p1 - p2).max() <= tol
    assert np.abs(f1 - f2).max() <= tol * max(1.0, float(np.abs(f2).max()))
    return p1, p2


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A tiny trained FFN run with a trust layer (45 validation maps), exported once with --int8."""
    tmp = tmp_path_factory.mktemp("onnx")
    return train_wafer_run(tmp, per_class=(4, 5))


@pytest.mark.slow
def test_export_trained_ffn_round_trip_and_int8(trained_run: Path, capsys) -> None:
    import onnx

    code, out, err = run_cli(["export", "--model", trained_run, "--format", "onnx", "--int8"], capsys)
    assert code == 0, err
    assert "ONNX checker passed" in out and "max abs difference" in out and "INT8" in out
    meta = json.loads((trained_run / "model.onnx.json").read_text())
    onnx.checker.check_model(str(trained_run / "model.onnx"))
    assert meta["check"]["onnx_checker"] == "passed" and _within_tolerance(meta)
    assert max(meta["check"]["max_abs_diff"].values()) <= 1e-4  # a trained tiny net: absolute too
    assert meta["class_names"] == WM811K and meta["input"]["name"] == "maps" and meta["input"]["dtype"] == "uint8"
    assert meta["preprocessing"]["die_codes"] == {"off_wafer": 0, "good": 1, "fail": 2}
    assert meta["trust"]["temperature"]["temperatures"] and meta["check"]["n"] > 0
    q = meta["int8"]
    assert (trained_run / "model.int8.onnx").is_file()
    assert 0.0 <= q["agreement"] <= 1.0 and "macro_f1_int8" in q and "macro_f1_change_points" in q
    maps = _sample_maps(40)
    _same_outputs(trained_run, maps, tta=False)
    _same_outputs(trained_run, maps[:8], tta=True)


@pytest.mark.slow
def test_predict_and_evaluate_runtime_onnx(trained_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    for name in ("model.onnx", "model.onnx.json", "model.int8.onnx"):
        (run / name).unlink(missing_ok=True)
    code, out, err = run_cli(["predict", "--model", run, "--data", SAMPLE, "--out", tmp_path / "onnx.csv",
                              "--runtime", "onnx"], capsys)
    assert code == 0, err
    assert "exporting it" in out and "runtime: onnx" in out and "(runtime onnx)" in out
    assert (run / "model.onnx").is_file()  # exported on the fly
    code, out, err = run_cli(["predict", "--model", run, "--data", SAMPLE, "--out", tmp_path / "torch.csv"], capsys)
    assert code == 0, err
    assert "(runtime torch)" in out
    a, b = pd.read_csv(tmp_path / "onnx.csv"), pd.read_csv(tmp_path / "torch.csv")
    assert list(a.columns) == list(b.columns)
    assert (a["predicted"] == b["predicted"]).all() and (a["decision"] == b["decision"]).all()
    probs = [c for c in a.columns if c.startswith("prob_")]
    assert np.abs(a[probs].to_numpy() - b[probs].to_numpy()).max() <= 2e-6  # rounded to 6 decimals
    code, out, err = run_cli(["evaluate", "--model", run, "--data", SAMPLE, "--out", tmp_path / "ev.json",
                              "--runtime", "onnx"], capsys)
    assert code == 0, err
    assert "exporting" not in out  # the checked export is reused
    assert json.loads((tmp_path / "ev.json").read_text())["runtime"] == "onnx"
    code, out, err = run_cli(["evaluate", "--model", run, "--data", SAMPLE, "--out", tmp_path / "ev2.json"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "ev2.json").read_text())["runtime"] == "torch"


@pytest.mark.slow
def test_runtime_onnx_int8_exports_int8_once_and_records_it(trained_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "model.int8.onnx").unlink(missing_ok=True)  # a current fp32 export without INT8: exported again
    code, out, err = run_cli(["evaluate", "--model", run, "--data", SAMPLE, "--out", tmp_path / "ev.json",
                              "--runtime", "onnx-int8"], capsys)
    assert code == 0, err
    assert "exporting it" in out and "runtime: onnx-int8 (model.int8.onnx" in out
    assert (run / "model.int8.onnx").is_file() and "int8" in json.loads((run / "model.onnx.json").read_text())
    assert json.loads((tmp_path / "ev.json").read_text())["runtime"] == "onnx-int8"
    code, out, err = run_cli(["predict", "--model", run, "--data", SAMPLE, "--out", tmp_path / "q.csv",
                              "--runtime", "onnx-int8"], capsys)
    assert code == 0, err
    assert "exporting" not in out and "(runtime onnx-int8)" in out
    probs = pd.read_csv(tmp_path / "q.csv").filter(like="prob_").to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)


@pytest.mark.slow
def test_stale_export_is_redone(trained_run: Path, tmp_path: Path) -> None:
    from adrcs.deploy.export_onnx import export_onnx, is_current, read_metadata
    from adrcs.deploy.runtime import load_onnx

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    export_onnx(run, say=lambda s: None)
    assert is_current(run)
    meta = read_metadata(run)
    meta["checkpoint_sha256"] = "0" * 64  # as if model.ckpt were retrained after the export
    (run / "model.onnx.json").write_text(json.dumps(meta))
    assert not is_current(run)
    said: list[str] = []
    load_onnx(run, say=said.append)
    assert any("exporting" in s for s in said) and is_current(run)


def test_multilabel_ffn_export_and_int8(tmp_path: Path) -> None:
    from adrcs.deploy.export_onnx import export_onnx

    from helpers.frames import make_mixed_arrays

    run = _saved_run(tmp_path, "ffn", MIXED, multilabel=True, input_size=24, model_args={"width": 8})
    meta = export_onnx(run, int8=True, say=lambda s: None, n_check=64)
    assert meta["multilabel"] and _within_tolerance(meta)
    assert "mixedwm38" in meta["check"]["data"] and "macro_f1_int8" in meta["int8"]  # the sample has its labels
    maps, _ = make_mixed_arrays(np.random.default_rng(0), n=10)
    _same_outputs(run, list(maps), tta=False)
    _same_outputs(run, list(maps[:4]), tta=True)


def test_cnn_export(tmp_path: Path) -> None:
    from adrcs.deploy.export_onnx import export_onnx

    run = _saved_run(tmp_path, "cnn", WM811K, input_size=32, model_args={"width": 8})
    meta = export_onnx(run, say=lambda s: None, n_check=32)
    assert _within_tolerance(meta)
    maps = _sample_maps(12)
    _same_outputs(run, maps, tta=False)


def test_sinogram_network_export(tmp_path: Path) -> None:
    """The sinogram pipeline: the feature step runs before the graph (from model.ckpt), the 1-D net in ONNX."""
    from adrcs.deploy.export_onnx import export_onnx
    from adrcs.deploy.onnx_graphs import random_maps
    from adrcs.features.sinogram import SinogramFeatures

    maps = random_maps(24, 16, seed=1)
    feats = SinogramFeatures(encoder="none", selector="none", radon_angles=4)
    feats.fit(maps, np.arange(24) % 3, say=lambda s: None)
    run = _saved_run(tmp_path, "cnn1d", WM811K[:3], input_size=16, model_args={"width": 4, "hidden": 16},
                     features=feats)
    meta = export_onnx(run, say=lambda s: None, n_check=16)
    assert meta["input"]["name"] == "sinogram_features" and meta["input"]["dtype"] == "float32"
    assert meta["input"]["shape"] == ["batch", feats.n_features_out] and "feature step" in meta["input"]["note"]
    assert _within_tolerance(meta)
    _same_outputs(run, list(random_maps(6, 20, seed=2)), tta=False)
    _same_outputs(run, list(random_maps(3, 16, seed=3)), tta=True)


def test_image_classifier_export(tmp_path: Path) -> None:
    import torch

    from adrcs.deploy.export_onnx import export_onnx
    from adrcs.image_classifier_pipeline import ImageClassifierPipeline
    from adrcs.models import create_model

    torch.manual_seed(0)
    args = {"width": 8, "in_chans": 1}
    run = tmp_path / "img"
    ImageClassifierPipeline(net=create_model("ffn", num_classes=2, **args), model_name="ffn", model_args=args,
                            class_names=["open", "short"], input_size=32).save(run)
    meta = export_onnx(run, say=lambda s: None, n_check=8)
    assert meta["task"] == "image_classify" and meta["input"]["name"] == "images"
    assert _within_tolerance(meta)
    # --runtime onnx for image classifiers and detectors: tests/deploy/test_onnx_images.py


@pytest.mark.parametrize("argv, message", [
    (["export", "--model", "nowhere", "--format", "tflite"], "--format must be onnx"),
    (["predict", "--model", "nowhere", "--data", "x.pkl", "--out", "p.csv", "--runtime", "tensorrt"],
     "--runtime must be torch, onnx or onnx-int8"),
    (["evaluate", "--model", "nowhere", "--data", "x.pkl", "--runtime", "tf"],
     "--runtime must be torch, onnx or onnx-int8"),
])
def test_bad_format_or_runtime_is_one_line(argv: list[str], message: str, capsys) -> None:
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
