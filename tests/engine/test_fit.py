"""Tiny training runs: the loss falls and 32 maps are memorised."""

import numpy as np
import pandas as pd
import pytest

from adrcs.config import load_config
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.tasks.fitting import fit
from adrcs.engine.tensors import class_weights
from adrcs.pipeline import Pipeline


def tiny_set(n_per_class=8, seed=0, kinds=("center", "donut", "edge_ring", "scratch")):
    from helpers.wafers import make_wafer_set

    return make_wafer_set(n_per_class, seed, kinds)


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory):
    ds = tiny_set()
    cfg = load_config(None, {"input_size": 16, "epochs": 40, "batch_size": 8, "augment": "none", "lr": 3e-3,
                             "early_stopping_patience": 0, "model_args": {"width": 8, "dropout": 0.0},
                             "device": "cpu", "progress": False})
    run = tmp_path_factory.mktemp("overfit")
    return ds, fit(cfg, ds, ds, run, console_print=lambda *_: None)


@pytest.mark.slow
def test_loss_falls_and_memorises_32_maps(overfit_run):
    ds, result = overfit_run
    hist = pd.read_csv(result.history_csv)
    losses = hist["train_loss"].dropna().to_numpy()
    assert losses[-1] < 0.5 * losses[0]
    probs = result.pipeline.predict_proba(ds)
    assert (probs.argmax(1) == ds.labels).mean() == 1.0


@pytest.mark.slow
def test_run_folder_and_checkpoint_round_trip(overfit_run):
    ds, result = overfit_run
    assert (result.run_dir / "model.ckpt").is_file()
    assert (result.run_dir / "logs" / "metrics.csv").is_file()
    loaded = Pipeline.load(result.run_dir)
    assert loaded.class_names == ds.class_names and loaded.input_size == 16 and not loaded.multilabel
    assert loaded.preprocessing["resize"] == "nearest"
    np.testing.assert_allclose(loaded.predict_proba(ds), result.pipeline.predict_proba(ds), atol=1e-6)
    # test-time augmentation averages 8 views and still gives probabilities
    p = loaded.predict_proba(ds, tta=True)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_multilabel_fit(tmp_path):
    base = tiny_set(n_per_class=4)
    multi = np.zeros((len(base), 4), np.int8)
    multi[np.arange(len(base)), base.labels] = 1
    ds = WaferMapSet(base.maps, multi, base.class_names, base.meta, multilabel=True)
    cfg = load_config(None, {"input_size": 16, "epochs": 3, "batch_size": 8, "model": "cnn",
                             "model_args": {"width": 4}, "device": "cpu"})
    result = fit(cfg, ds, ds, tmp_path, console_print=lambda *_: None)
    assert result.pipeline.multilabel
    assert result.pipeline.predict_proba(ds).shape == (16, 4)


def test_class_weights():
    w = class_weights(np.array([100, 25, 0, 1]), "sqrt_weights")
    assert w[1] == pytest.approx(2 * w[0]) and w[3] == pytest.approx(10 * w[0])
    assert np.mean(w[[0, 1, 3]]) == pytest.approx(1.0)
    assert class_weights(np.array([1, 2]), "none") is None
    w = class_weights(np.array([1, 16]), "power", power=0.25)
    assert w[0] == pytest.approx(2 * w[1])


def test_bad_checkpoint_is_an_input_error(tmp_path):
    from adrcs.errors import InputError

    with pytest.raises(InputError, match="no model.ckpt"):
        Pipeline.load(tmp_path)
    (tmp_path / "model.ckpt").write_text("not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        Pipeline.load(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("n_per_class", [1, 5])
def test_one_cycle_with_few_steps(tmp_path, n_per_class):
    # 4 or 20 maps in batches of 4: 1 or 5 optimiser steps in the whole run
    ds = tiny_set(n_per_class=n_per_class)
    cfg = load_config(None, {"input_size": 16, "epochs": 1, "batch_size": 4, "scheduler": "onecycle",
                             "model_args": {"width": 4}, "device": "cpu"})
    result = fit(cfg, ds, ds, tmp_path, console_print=lambda *_: None)
    assert (result.run_dir / "model.ckpt").is_file()
    probs = result.pipeline.predict_proba(ds)  # the schedule took its few steps without NaNs
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert result.best_epoch == 1 and result.best_score is not None and 0.0 <= result.best_score <= 1.0


def test_history_counts_epochs_from_one(tmp_path):
    import pandas as pd

    ds = tiny_set(n_per_class=2)
    cfg = load_config(None, {"input_size": 16, "epochs": 2, "batch_size": 4, "model_args": {"width": 4},
                             "device": "cpu", "progress": False})
    result = fit(cfg, ds, ds, tmp_path, console_print=lambda *_: None)
    hist = pd.read_csv(result.history_csv)
    assert sorted(hist["epoch"].dropna().unique().astype(int)) == [1, 2]
    best = hist.loc[hist["val_macro_f1"].idxmax(), "epoch"]
    assert result.best_epoch == int(best)
