"""The sinogram pipeline end to end: feature step, cache, training, save/load, CLI."""
import json

import numpy as np
import pandas as pd
import pytest

from adrcs.config import load_config
from adrcs.errors import InputError
from adrcs.features.cache import FeatureCache, fit_with_cache
from adrcs.features.sinogram import SinogramFeatures, capped_subsample, knn_classes
from adrcs.pipeline import Pipeline
from adrcs.transforms.resize import resize_stack

QUICK = {"features": "sinogram", "model": "cnn1d", "input_size": 16, "epochs": 3, "batch_size": 8, "lr": 3e-3,
         "early_stopping_patience": 0, "model_args": {"width": 8, "hidden": 16, "dropout": 0.0}, "device": "cpu",
         "progress": False, "sbae_args": {"steps": 20, "channels": 4, "hidden": 8},
         "selector_args": {"population": 6, "iterations": 3, "w": 0.9}, "selector": "gwo"}


def tiny_set(n_per_class=6, seed=0, kinds=("center", "donut", "edge_ring", "scratch")):
    from helpers.wafers import make_wafer_set

    return make_wafer_set(n_per_class, seed, kinds)


@pytest.mark.slow
def test_feature_step_shapes_and_state_round_trip():
    ds = tiny_set()
    maps = resize_stack(ds.maps, 16)
    f = SinogramFeatures(encoder="sbae", sbae_args={"steps": 10, "channels": 4, "hidden": 8}, selector="none")
    f.fit(maps, ds.labels, say=lambda m: None)
    assert f.n_pool_ == 4 * 8 * 8  # c * (S/2) * angles(S/2): m*n*c/4
    z = f.transform(maps)
    assert z.shape == (len(ds), f.n_pool_) and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)  # standardised with training statistics
    g = SinogramFeatures.from_state(f.state())
    np.testing.assert_allclose(g.transform(maps), z, atol=1e-5)
    with pytest.raises(ValueError, match="expected maps"):
        f.transform(maps[:, :8, :8])


def test_no_encoder_ablation_uses_one_hot_maps():
    ds = tiny_set(n_per_class=3)
    maps = resize_stack(ds.maps, 16)
    f = SinogramFeatures(encoder="none", selector="none", radon_angles=4).fit(maps, ds.labels, say=lambda m: None)
    assert f.n_pool_ == 3 * 16 * 4 and f.sbae_ is None


def test_capped_subsample_keeps_rare_classes():
    y = np.array([0] * 1000 + [1] * 20 + [2] * 5)
    idx = capped_subsample(y, 120, seed=0)
    assert len(idx) == 40 + 20 + 5 and (y[idx] == 2).sum() == 5 and (y[idx] == 1).sum() == 20
    assert len(capped_subsample(y, 0, 0)) == len(y)
    multi = np.array([[1, 0], [0, 1], [1, 0], [1, 1]])
    assert knn_classes(multi).tolist() == [1, 0, 1, 2]


@pytest.mark.slow
def test_cache_reuses_both_stages(tmp_path):
    ds = tiny_set(n_per_class=4)
    maps = resize_stack(ds.maps, 16)
    kw = dict(sbae_args={"steps": 5, "channels": 4, "hidden": 8}, selector="gwo",
              selector_args={"population": 4, "iterations": 2})
    cache = FeatureCache(tmp_path)
    a = SinogramFeatures(**kw)
    assert fit_with_cache(a, maps, ds.labels, cache, say=lambda m: None) == {"encoder": False, "selection": False}
    b = SinogramFeatures(**kw)
    assert fit_with_cache(b, maps, ds.labels, cache, say=lambda m: None) == {"encoder": True, "selection": True}
    np.testing.assert_array_equal(a.support_, b.support_)
    np.testing.assert_allclose(a.transform(maps), b.transform(maps), atol=1e-6)
    c = SinogramFeatures(**{**kw, "selector": "pso"})  # new search, same encoder
    assert fit_with_cache(c, maps, ds.labels, cache, say=lambda m: None) == {"encoder": True, "selection": False}
    assert FeatureCache.from_setting("none").root is None


def test_config_checks_model_kind():
    with pytest.raises(InputError, match="1-D model"):
        load_config(None, {"features": "sinogram", "model": "ffn"})
    with pytest.raises(InputError, match="features: sinogram"):
        load_config(None, {"model": "cnn1d"})
    with pytest.raises(InputError, match="selector"):
        load_config(None, {**QUICK, "selector": "bees"})
    assert load_config(None, {**QUICK, "input_size": 26})["input_size"] == 26


@pytest.fixture(scope="module")
def sinogram_run(tmp_path_factory):
    from adrcs.api import train
    from adrcs.data.writer import save_wafer_maps

    root = tmp_path_factory.mktemp("sino")
    save_wafer_maps(tiny_set(), root / "train.pkl.xz")
    save_wafer_maps(tiny_set(n_per_class=3, seed=1), root / "val.pkl.xz")
    cfg = load_config(None, {**QUICK, "feature_cache": str(root / "cache")})
    report = train(cfg, [root / "train.pkl.xz"], [root / "val.pkl.xz"], root / "run", say=lambda m: None)
    return root, report


@pytest.mark.slow
def test_train_writes_pipeline_that_predicts_identically_after_load(sinogram_run):
    root, report = sinogram_run
    run = root / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    feats = metrics["features"]
    assert feats["encoder"] == "sbae" and feats["selector"] == "gwo" and 0 < feats["selected"] <= feats["pool_size"]
    assert (run / "features" / "selection.json").is_file() and (run / "plots" / "selection_convergence.png").is_file()
    assert "macro_f1" in report
    pipe = Pipeline.load(run)
    assert pipe.features is not None and pipe.preprocessing["features"]["kind"] == "sinogram"
    val = tiny_set(n_per_class=3, seed=1)
    p1 = pipe.predict_proba(val)
    p2 = Pipeline.load(run).predict_proba(val)
    np.testing.assert_allclose(p1, p2, atol=1e-6)
    assert p1.shape == (len(val), len(pipe.class_names))
    np.testing.assert_allclose(pipe.predict_proba(val, tta=True).sum(1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_cli_evaluate_predict_and_cached_retrain(sinogram_run, capsys):
    from helpers.cli import run_cli

    root, _ = sinogram_run
    code, out, err = run_cli(["evaluate", "--model", root / "run", "--data", root / "val.pkl.xz",
                              "--out", root / "ev.json"], capsys)
    assert code == 0, err
    assert {"accuracy", "macro_f1"} <= set(json.loads((root / "ev.json").read_text()))
    code, out, err = run_cli(["predict", "--model", root / "run", "--data", root / "val.pkl.xz",
                              "--out", root / "pred.csv"], capsys)
    assert code == 0, err
    assert len(pd.read_csv(root / "pred.csv")) == 12
    # another classifier on the same features: nothing refitted
    args = ["train", "--train", root / "train.pkl.xz", "--val", root / "val.pkl.xz", "--out", root / "run2",
            "--model", "lenet5_1d", "--epochs", "1", "--feature-cache", root / "cache"]
    for k, v in QUICK.items():
        if k not in ("model", "epochs", "model_args"):
            args += [f"--{k.replace('_', '-')}", json.dumps(v) if isinstance(v, dict) else str(v)]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err + out
    assert "from the cache" in out
    hits = json.loads((root / "run2" / "metrics.json").read_text())["features"]["cache_hits"]
    assert hits == {"encoder": True, "selection": True}


def test_shipped_sinogram_config_is_the_papers_setup():
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "wm811k_sinogram.yaml")
    assert cfg["features"] == "sinogram" and cfg["model"] == "cnn1d" and cfg["encoder"] == "sbae"
    assert cfg["selector"] == "erd" and cfg["balance"] == "cae"
    assert cfg["model_args"]["positions"] > 0  # conv-pool-FC over pooled positions, as the paper's 1DCNN
    assert cfg["sbae_args"]["sparsity"] > 0 and cfg["radon_angles"] == 0
