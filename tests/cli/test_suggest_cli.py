"""`adrcs suggest`: the CSV of maps to label (n rows in rank order, the documented columns) for wafer-map runs
(single- and multi-label) and image classifiers; --unlabeled-only; one-line errors with exit code 2."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adrcs.api_suggest import COLUMNS
from helpers.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TESTS = Path(__file__).resolve().parents[1]
RUNS = TESTS / "data" / "legacy" / "runs"
INPUTS = TESTS / "data" / "legacy" / "inputs"
SAMPLES = TESTS.parent / "src" / "adrcs" / "samples"
VAL = SAMPLES / "wm811k_sample_val.pkl.xz"


@pytest.fixture(scope="module")
def wafer_run(tmp_path_factory) -> Path:
    """A tiny FFN trained for this module (`train_wafer_run`); its training files lie beside it."""
    from helpers.runs import train_wafer_run

    return train_wafer_run(tmp_path_factory.mktemp("suggest"))


def read(out: Path) -> pd.DataFrame:
    return pd.read_csv(out, keep_default_na=False)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["badge", "coreset", "uncertainty", "random"])
def test_suggest_writes_n_ranked_rows(wafer_run, tmp_path, capsys, method):
    pool = [wafer_run.parent / "wm0_0.pkl.xz", wafer_run.parent / "wm0_1.pkl.xz"]   # 36 + 18 maps
    out = tmp_path / "to_label.csv"
    code, stdout, err = run_cli(["suggest", "--model", wafer_run, "--data", *pool, "--n", 10, "--out", out,
                                 "--method", method, "--seed", 3], capsys)
    assert code == 0, err
    assert f"10 of 54 maps suggested for labelling ({method}, seed 3)" in stdout and "scoring 54 maps" in stdout
    t = read(out)
    assert list(t.columns) == COLUMNS and len(t) == 10 and t["rank"].tolist() == list(range(1, 11))
    assert (t["method"] == method).all() and not t.duplicated(["source", "source_index"]).any()
    assert set(t["source"]) <= {str(p) for p in pool} and ((0 <= t["confidence"]) & (t["confidence"] <= 1)).all()
    score = pd.to_numeric(t["score"])
    if method == "random":
        assert score.isna().all()
    else:
        assert (score >= 0).all() or method == "coreset"       # coreset's first pick: inf (nothing covered)
    if method == "uncertainty":
        assert (np.diff(score) <= 1e-9).all()                  # least sure first
        conf = t["confidence"]                                 # margin score 1 - (p1 - p2), p1 = confidence
        assert ((1 - conf - 1e-5 <= score) & (score <= 2 - 2 * conf + 1e-5)).all()
    again = tmp_path / "again.csv"
    code, _, err = run_cli(["suggest", "-m", wafer_run, "--data", *pool, "--n", 10, "-o", again, "--method", method,
                            "--seed", 3], capsys)
    assert code == 0, err
    assert read(again).equals(t)                               # same seed, same suggestions


def test_suggest_legacy_run_and_whole_pool(tmp_path, capsys):
    out = tmp_path / "all.csv"
    code, stdout, err = run_cli(["suggest", "-m", RUNS / "wafer", "-d", VAL, "--n", 100000, "-o", out], capsys)
    assert code == 0, err
    t = read(out)
    assert "suggesting all of them" in stdout and len(t) == t["source_index"].nunique() > 0
    assert sorted(t["rank"]) == list(range(1, len(t) + 1)) and (pd.to_numeric(t["score"]) >= 0).all()


def test_unlabeled_only_leaves_labelled_maps_out(lswmd_pickle, tmp_path, capsys):
    from adrcs.data import load_many

    ds = load_many([lswmd_pickle])
    unlabelled = set(ds.meta["index"][~ds.labeled_mask].astype(int))
    for method in ("badge", "coreset"):
        out = tmp_path / f"{method}.csv"
        code, stdout, err = run_cli(["suggest", "-m", RUNS / "wafer", "-d", lswmd_pickle, "--n", 3, "-o", out,
                                     "--method", method, "--unlabeled-only"], capsys)
        assert code == 0, err
        t = read(out)
        assert len(t) == 3 and set(t["source_index"].astype(int)) <= unlabelled
        assert f"leaving out {len(ds) - len(unlabelled)} labelled maps" in stdout
    out = tmp_path / "every.csv"
    code, _, _ = run_cli(["suggest", "-m", RUNS / "wafer", "-d", lswmd_pickle, "--n", 3, "-o", out], capsys)
    assert code == 0 and len(read(out)) == 3   # without the flag labelled maps stay in the pool


def test_multilabel_and_image_classifier_runs(tmp_path, capsys):
    out = tmp_path / "mixed.csv"
    code, _, err = run_cli(["suggest", "-m", RUNS / "multilabel", "-d", SAMPLES / "mixedwm38_sample_val.pkl.xz",
                            "--n", 4, "-o", out], capsys)
    assert code == 0, err
    t = read(out)
    assert len(t) == 4 and t["predicted"].str.len().gt(0).all()
    out = tmp_path / "images.csv"
    code, _, err = run_cli(["suggest", "-m", RUNS / "image_classify", "-d", INPUTS / "classes", "--n", 2, "-o", out,
                            "--method", "uncertainty"], capsys)
    assert code == 0, err
    t = read(out)
    assert len(t) == 2 and all(Path(s).is_file() for s in t["source"]) and (t["lot"] == "").all()


@pytest.mark.parametrize("argv,needle", [
    (["--model", RUNS / "wafer", "--data", VAL, "--n", 0], "--n must be at least 1 (got 0)"),
    (["--model", RUNS / "wafer", "--data", VAL, "--n", "ten"], "--n must be a whole number"),
    (["--model", RUNS / "wafer", "--data", VAL, "--n", "2.5"], "--n must be a whole number"),
    (["--model", RUNS / "wafer", "--data", VAL, "--method", "entropy"], "--method must be one of badge, coreset"),
    (["--model", RUNS / "detect", "--data", INPUTS / "boxes" / "trainval.txt"],
     "suggest supports wafer-map models and image classifiers"),
    (["--data", VAL], "--model is required"),
    (["--model", RUNS / "wafer"], "--data is required"),
    (["--model", TESTS, "--data", VAL], "no model.ckpt here"),
    (["--model", RUNS / "wafer", "--data", VAL, "--unlabeled-only"], "carries a label already"),
])
def test_bad_requests_are_one_line_exit_2(tmp_path, capsys, argv, needle):
    code, stdout, err = run_cli(["suggest", *argv, "--out", tmp_path / "o.csv"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()


def test_out_must_not_be_a_folder(tmp_path, capsys):
    code, _, err = run_cli(["suggest", "-m", RUNS / "wafer", "-d", VAL, "-o", tmp_path], capsys)
    assert code == 2 and "--out must be a CSV file" in err
