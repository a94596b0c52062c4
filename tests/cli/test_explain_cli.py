"""`adrcs explain` on the tiny committed legacy runs: overlays + explanations.csv per run kind, one-line errors."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from adrcs.api_explain import COLUMNS
from helpers.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TESTS = Path(__file__).resolve().parents[1]
RUNS = TESTS / "data" / "legacy" / "runs"
INPUTS = TESTS / "data" / "legacy" / "inputs"
SAMPLES = TESTS.parent / "src" / "adrcs" / "samples"


def test_explain_wafer_run_writes_overlays_and_csv(tmp_path, capsys):
    out = tmp_path / "cams"
    code, stdout, err = run_cli(["explain", "--model", RUNS / "wafer", "--data", SAMPLES / "wm811k_sample_val.pkl.xz",
                                 "--out", out, "--limit", 5, "--scale", 3], capsys)
    assert code == 0, err
    assert "explaining 5 maps" in stdout and "5 explained (hirescam at stem.1)" in stdout
    table = pd.read_csv(out / "explanations.csv", keep_default_na=False)
    assert list(table.columns) == COLUMNS and len(table) == 5 and list(table["index"]) == list(range(5))
    assert (table["target"] == table["predicted"]).all()     # --target predicted (single-label)
    for _, row in table.iterrows():
        assert row["file"].startswith(f"{row['index']}_") and row["file"].endswith(".png") and "/" not in row["file"]
        im = Image.open(out / row["file"])
        assert im.format == "PNG" and im.width % 3 == 0 and im.width >= 3 * 20   # 3 px per die
        assert 0 <= row["cam_peak_row"] and 0 <= row["cam_peak_col"] and 0 <= row["confidence"] <= 1
    assert sorted(p.name for p in out.glob("*.png")) == sorted(table["file"])


def test_explain_target_class_and_method(tmp_path, capsys):
    out = tmp_path / "cams"
    code, stdout, err = run_cli(["explain", "-m", RUNS / "wafer", "-d", SAMPLES / "wm811k_sample_val.pkl.xz",
                                 "-o", out, "--limit", 2, "--target", "Donut", "--method", "gradcam"], capsys)
    assert code == 0, err
    table = pd.read_csv(out / "explanations.csv", keep_default_na=False)
    assert (table["target"] == "Donut").all() and "gradcam at" in stdout


@pytest.mark.parametrize("run,data,target", [("image_classify", INPUTS / "classes", "predicted"),
                                             ("detect", INPUTS / "boxes" / "trainval.txt", "class-agnostic")])
def test_explain_image_runs(tmp_path, capsys, run, data, target):
    out = tmp_path / run
    code, stdout, err = run_cli(["explain", "--model", RUNS / run, "--data", data, "--out", out, "--limit", 2], capsys)
    assert code == 0, err
    table = pd.read_csv(out / "explanations.csv", keep_default_na=False)
    assert len(table) == 2 and all((out / f).is_file() for f in table["file"])
    if target == "predicted":
        assert (table["target"] == table["predicted"]).all()
    else:
        assert (table["target"] == target).all() and "eigencam" in stdout
    img = Image.open(table["source"][0])
    assert Image.open(out / table["file"][0]).size == img.size           # overlay at the image's own size


@pytest.mark.parametrize("argv,needle", [
    (["--model", RUNS / "sinogram", "--data", SAMPLES / "wm811k_sample_val.pkl.xz"], "explain supports 2-D map models"),
    (["--data", SAMPLES / "wm811k_sample_val.pkl.xz"], "--model is required"),
    (["--model", RUNS / "wafer"], "--data is required"),
    (["--model", RUNS / "wafer", "--data", SAMPLES / "wm811k_sample_val.pkl.xz", "--target", "Blob"],
     "--target must be predicted or a class"),
    (["--model", RUNS / "wafer", "--data", SAMPLES / "wm811k_sample_val.pkl.xz", "--method", "x"], "--method must be"),
    (["--model", RUNS / "wafer", "--data", SAMPLES / "wm811k_sample_val.pkl.xz", "--limit", 0], "--limit must be"),
    (["--model", RUNS / "detect", "--data", INPUTS / "boxes" / "trainval.txt", "--target", "open"], "class-agnostic"),
    (["--model", TESTS, "--data", SAMPLES / "wm811k_sample_val.pkl.xz"], "no model.ckpt here"),
])
def test_bad_requests_are_one_line_exit_2(tmp_path, capsys, argv, needle):
    code, stdout, err = run_cli(["explain", *argv, "--out", tmp_path / "o"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err
