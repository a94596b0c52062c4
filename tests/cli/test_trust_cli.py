"""The trust layer through the CLI (issue 18): train records the select / calib split and fits temperature, sets
and the unknown score; predict writes decision / unknown_score / set; evaluate reports ece, coverage and the
decided share; --alpha changes the sets; a model without a trust layer still predicts; image classifiers too."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.cli import run_cli
from helpers.runs import REPO


@pytest.fixture(scope="module")
def trust_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny FFN run with 54 validation maps (enough for the select / calib split) and its val file."""
    from helpers.runs import train_wafer_run

    tmp = tmp_path_factory.mktemp("trust")
    return train_wafer_run(tmp, 0, epochs=2, per_class=(8, 6), data_seed=1, name="trust"), tmp / "trust0_1.pkl.xz"


def test_train_records_split_and_trust(trust_run) -> None:
    import torch

    run, va = trust_run
    metrics = json.loads((run / "metrics.json").read_text())
    t = metrics["trust"]
    assert t["n_select"] + t["n_calib"] == metrics["n_val"] == 54 and t["n_calib"] >= 20
    assert metrics["val"]["n_samples"] == t["n_select"]  # the val report is on select
    split = pd.read_csv(run / "calibration_split.csv")
    assert len(split) == 54 and set(split["part"]) == {"select", "calib"}
    assert not split.duplicated(["source", "index"]).any()
    for key in ("ece", "ece_before", "mce", "mce_before"):
        assert 0.0 <= t["calib"][key] <= 1.0
    s = t["select"]
    assert 0.0 <= s["coverage"] <= 1.0 and abs(s["decided_share"] + s["review_share"] + s["unknown_share"] - 1) < 1e-9
    assert np.isfinite(t["unknown_threshold"]) and t["temperature"][0] > 0
    assert (run / "plots" / "reliability.png").stat().st_size > 1000
    assert (run / "plots" / "risk_coverage.png").stat().st_size > 1000
    ck = torch.load(run / "model.ckpt", weights_only=True)
    assert ck["trust"]["kind"] == "trust/1" and ck["trust"]["calib_probs"].shape == (t["n_calib"], 9)
    ref = json.loads((run / "drift_reference.json").read_text())
    assert ref["unknown_rate"] == pytest.approx(s["unknown_share"])


def test_predict_writes_decisions_and_alpha_changes_sets(trust_run, tmp_path, capsys) -> None:
    run, va = trust_run
    out = tmp_path / "p.csv"
    code, _, err = run_cli(["predict", "--model", run, "--data", va, "--out", out], capsys)
    assert code == 0, err
    df = pd.read_csv(out, keep_default_na=False)
    cols = list(df.columns)
    assert cols.index("confidence") < cols.index("decision") < cols.index("unknown_score") < cols.index("set")
    names = [c[5:] for c in cols if c.startswith("prob_")]
    for dec, members in zip(df["decision"], df["set"]):
        ms = [m for m in members.split(";") if m]
        assert set(ms) <= set(names)
        assert dec == "unknown" or (dec == ms[0] if len(ms) == 1 else dec == "review")
    assert np.isfinite(df["unknown_score"].astype(float)).all()
    sizes = df["set"].map(lambda v: len([m for m in v.split(";") if m]))
    out2 = tmp_path / "p2.csv"
    code, _, err = run_cli(["predict", "--model", run, "--data", va, "--out", out2, "--alpha", "0.5"], capsys)
    assert code == 0, err
    sizes2 = pd.read_csv(out2, keep_default_na=False)["set"].map(lambda v: len([m for m in v.split(";") if m]))
    assert sizes2.sum() <= sizes.sum() and (sizes2 <= sizes).all()  # a larger alpha never grows a set
    code, _, err = run_cli(["predict", "--model", run, "--data", va, "--out", out2, "--alpha", "1.5"], capsys)
    assert code == 2 and "--alpha" in err and "Traceback" not in err


def test_evaluate_reports_calibration_and_decisions(trust_run, tmp_path, capsys) -> None:
    run, va = trust_run
    out = tmp_path / "ev.json"
    code, _, err = run_cli(["evaluate", "--model", run, "--data", va, "--out", out], capsys)
    assert code == 0, err
    rep = json.loads(out.read_text())
    for key in ("ece", "mce", "coverage", "mean_set_size"):
        assert key in rep
    t = rep["trust"]
    assert t["calibrated"] and 0 <= t["ece_before"] <= 1 and set(t["per_class_coverage"]) <= set(rep["class_names"])
    assert (tmp_path / "ev_plots" / "reliability.png").is_file() and (tmp_path / "ev_plots" / "risk_coverage.png").is_file()


def test_few_val_maps_and_calibrate_false_give_no_trust_layer(tmp_path, capsys) -> None:
    from helpers.runs import train_wafer_run

    run = train_wafer_run(tmp_path)  # 18 validation maps: too few to split
    assert "trust" not in json.loads((run / "metrics.json").read_text())
    data = tmp_path / "wm0_1.pkl.xz"
    out = tmp_path / "p.csv"
    code, _, err = run_cli(["predict", "--model", run, "--data", data, "--out", out], capsys)
    assert code == 0, err
    df = pd.read_csv(out, keep_default_na=False)
    assert (df["decision"] == df["predicted"]).all() and (df["set"] == "").all()


def test_multilabel_sets_list_undecided_labels(tmp_path) -> None:
    from adrcs.api import predict, train
    from adrcs.config import load_config

    from helpers.frames import make_mixed_frame

    tr, va = tmp_path / "tr.pkl.xz", tmp_path / "va.pkl.xz"
    make_mixed_frame(np.random.default_rng(5), n=120).to_pickle(tr)
    make_mixed_frame(np.random.default_rng(6), n=60).to_pickle(va)
    cfg = load_config(REPO / "configs" / "mixedwm38_ffn.yaml",
                      {"epochs": 1, "input_size": 16, "device": "cpu", "batch_size": 16, "model_args": {"width": 8},
                       "progress": False})
    train(cfg, [tr], [va], tmp_path / "run", say=lambda s: None)
    t = json.loads((tmp_path / "run" / "metrics.json").read_text())["trust"]
    assert len(t["temperature"]) == 8 and "per_label_coverage" in t["select"]
    rows = predict(tmp_path / "run", va, tmp_path / "p.csv", say=lambda s: None)
    names = [c[5:] for c in rows.columns if c.startswith("prob_")]
    for dec, undecided in zip(rows["decision"], rows["set"].fillna("")):
        parts = [u for u in undecided.split("|") if u]
        assert set(parts) <= set(names)
        assert dec in ("review", "unknown") if parts else dec != "review"
