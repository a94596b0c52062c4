"""Training in 2 CPU processes (DDP over gloo, ``ddp_spawn``) on tiny data, against one process with the same seed.

What is compared, and why loosely: each DDP process reads half of every epoch (Lightning's DistributedSampler),
so an epoch has half the optimizer steps, and BatchNorm normalises each process's batch alone; the two runs
do not follow the same path, so their weights differ. What must hold exactly: the run completes, the DDP run
did take half the steps per epoch (2 processes really shared the data), its model.ckpt loads and predicts, and
metrics.json is written by rank 0 alone. What must hold loosely: both runs learn the 4 easy patterns (val
macro-F1 >= 0.5, chance is 0.25) and their val macro-F1 differ by < 0.3.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adrcs.config import load_config

EPOCHS, BATCH = 12, 8


def _tiny_cfg(**extra):
    return load_config(None, {"input_size": 16, "epochs": EPOCHS, "batch_size": BATCH, "augment": "none",
                              "imbalance": "none", "early_stopping_patience": 0, "calibrate": False, "lr": 1e-2,
                              "model_args": {"width": 4, "dropout": 0.0}, "device": "cpu", "progress": False,
                              "seed": 3, **extra})


def _steps_per_epoch(run: Path) -> float:
    hist = pd.read_csv(run / "logs" / "metrics.csv")
    steps = hist.dropna(subset=["train_loss"])["step"].to_numpy()
    return float(np.diff(steps).mean())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from adrcs.api import train_sets
    from helpers.wafers import make_wafer_set

    train, val = make_wafer_set(8, seed=0), make_wafer_set(4, seed=1)  # 32 and 16 maps: even halves per process
    tmp = tmp_path_factory.mktemp("ddp")
    out = {}
    for name, extra in (("single", {}), ("ddp", {"devices": 2, "strategy": "ddp_spawn"})):
        report = train_sets(_tiny_cfg(**extra), train, val, tmp / name, say=lambda s: None)
        out[name] = (tmp / name, report)
    return val, out


@pytest.mark.slow
def test_ddp_run_completes_loads_and_predicts(runs):
    from adrcs.pipeline import Pipeline

    val, out = runs
    run, report = out["ddp"]
    assert (run / "model.ckpt").is_file() and not (run / "checkpoints").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["macro_f1"] == pytest.approx(report["macro_f1"])
    assert 1 <= metrics["best_epoch"] <= EPOCHS
    pipe = Pipeline.load(run)
    probs = pipe.predict_proba(val)
    assert probs.shape == (len(val), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    cfg = (run / "config.yaml").read_text()
    assert "devices: 2" in cfg and "strategy: ddp_spawn" in cfg


@pytest.mark.slow
def test_two_processes_share_each_epoch(runs):
    _, out = runs
    single, ddp = _steps_per_epoch(out["single"][0]), _steps_per_epoch(out["ddp"][0])
    assert single == 32 / BATCH and ddp == 32 / BATCH / 2


@pytest.mark.slow
def test_ddp_metrics_match_one_process_loosely(runs):
    _, out = runs
    f1_single, f1_ddp = out["single"][1]["macro_f1"], out["ddp"][1]["macro_f1"]
    assert f1_single >= 0.5 and f1_ddp >= 0.5, (f1_single, f1_ddp)
    assert abs(f1_single - f1_ddp) < 0.3, (f1_single, f1_ddp)


def test_strategy_and_num_nodes_are_checked():
    from adrcs.engine.trainer import resolve_strategy
    from adrcs.errors import InputError

    assert _tiny_cfg()["num_nodes"] == 1 and _tiny_cfg()["strategy"] == "auto"
    assert resolve_strategy("auto", 2) == "ddp" and resolve_strategy("auto", 1, 2) == "ddp"
    assert resolve_strategy("auto", 1) == "auto" and resolve_strategy("ddp_spawn", 2) == "ddp_spawn"
    with pytest.raises(InputError, match="strategy"):
        _tiny_cfg(strategy="horovod")
    with pytest.raises(InputError, match="num_nodes"):
        _tiny_cfg(num_nodes=0)
    with pytest.raises(InputError, match="one process"):
        load_config(None, {"task": "detect", "devices": 2})
