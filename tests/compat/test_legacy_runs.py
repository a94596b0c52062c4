"""Run folders written by an older ADRCS (264f045, see tests/data/legacy/SOURCE.json) load and predict exactly
as that code did: one tiny run per saved-model kind, predictions compared column by column.

Rewrite the fixtures with `python scripts/make_legacy_fixtures.py --old-src <old tree>/src`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.cli import run_cli

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy"
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "adrcs" / "samples"
INPUTS = {
    "wafer": SAMPLES / "wm811k_sample_val.pkl.xz",
    "multilabel": SAMPLES / "mixedwm38_sample_val.pkl.xz",
    "sinogram": SAMPLES / "wm811k_sample_val.pkl.xz",
    "detect": LEGACY / "inputs" / "boxes" / "trainval.txt",
    "image_classify": LEGACY / "inputs" / "classes",
}
TASKS = {"wafer": "wafer", "multilabel": "wafer", "sinogram": "wafer", "detect": "detect",
         "image_classify": "image_classify"}


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Paths made comparable: `source` by file name, `image` relative to the fixture folder."""
    df = df.copy()
    if "source" in df:
        df["source"] = df["source"].map(lambda s: Path(s).name)
    if "image" in df:
        df["image"] = df["image"].map(lambda s: str(s).replace(str(LEGACY) + "/", ""))
    return df


def assert_same_predictions(old: pd.DataFrame, new: pd.DataFrame) -> None:
    """Every column the old CSV had is in the new one with the same values (numbers to 1e-6)."""
    assert len(new) == len(old)
    missing = [c for c in old.columns if c not in new.columns]
    assert not missing, f"columns lost: {missing}"
    for col in old.columns:
        a, b = old[col], new[col]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            np.testing.assert_allclose(b.to_numpy(float), a.to_numpy(float), atol=1e-6, err_msg=col)
        else:
            assert a.fillna("").astype(str).tolist() == b.fillna("").astype(str).tolist(), col


@pytest.mark.parametrize("kind", list(INPUTS))
def test_legacy_run_predicts_as_before(kind: str, tmp_path: Path, capsys) -> None:
    from adrcs.tasks import task_of

    run = tmp_path / "run"
    shutil.copytree(LEGACY / "runs" / kind, run)
    assert task_of(run).name == TASKS[kind]
    out = tmp_path / ("pred" if kind == "detect" else "pred.csv")
    code, _, err = run_cli(["predict", "--model", run, "--data", INPUTS[kind], "--out", out], capsys)
    assert code == 0, err
    new = pd.read_csv(out / "predictions.csv" if kind == "detect" else out)
    old = pd.read_csv(LEGACY / "expected" / f"{kind}.csv")
    assert_same_predictions(_normalise(old), _normalise(new))


def test_legacy_run_evaluates_as_before(tmp_path: Path, capsys) -> None:
    """`evaluate` on an old run's val file gives the metrics that run reported for it."""
    import json

    run = tmp_path / "run"
    shutil.copytree(LEGACY / "runs" / "wafer", run)
    report = tmp_path / "eval.json"
    code, _, err = run_cli(["evaluate", "--model", run, "--data", INPUTS["wafer"], "--out", report], capsys)
    assert code == 0, err
    old = json.loads((LEGACY / "runs" / "wafer" / "metrics.json").read_text())["val"]
    new = json.loads(report.read_text())
    new = new.get("metrics", new)
    assert new["macro_f1"] == pytest.approx(old["macro_f1"], abs=1e-6)
    assert new["accuracy"] == pytest.approx(old["accuracy"], abs=1e-6)
