"""`adrcs synth fit | sample | evaluate` and `adrcs train --balance`: files, round-trips, errors."""
import json

import numpy as np
import pytest

from adrcs.data.loader import load
from helpers.cli import run_cli as run


@pytest.fixture
def data(tmp_path):
    from helpers.frames import make_wm811k_frame

    paths = {}
    for name, seed, n in [("train", 1, 4), ("val", 2, 2)]:
        p = tmp_path / f"{name}.pkl.xz"
        make_wm811k_frame(np.random.default_rng(seed), classes=["Center", "Donut", "Edge-Ring", "none"],
                          per_class=n, sizes=(16, 22)).to_pickle(p)
        paths[name] = p
    return paths


@pytest.mark.slow
def test_synth_fit_sample_evaluate(data, tmp_path, capsys):
    syn_dir = tmp_path / "gan"
    code, out, err = run(["synth", "fit", "--method", "gan", "--train", data["train"], "--out", syn_dir,
                          "--size", "16", "--iterations", "3", "--g-width", "8", "--d-width", "8"], capsys)
    assert code == 0, err
    for name in ["synthesizer.pt", "train_maps.npz", "history.csv", "training_curves.png", "samples.png",
                 "config.yaml"]:
        assert (syn_dir / name).is_file(), name

    maps_path = tmp_path / "donut.pkl.xz"
    code, out, err = run(["synth", "sample", "--model", syn_dir, "--class", "Donut", "--n", "25",
                          "--out", maps_path], capsys)
    assert code == 0, err
    ds = load(maps_path)
    assert len(ds) == 25 and {ds.class_names[i] for i in ds.labels} == {"Donut"}
    assert all(m.shape == (16, 16) and set(np.unique(m)) <= {0, 1, 2} for m in ds.maps)
    assert ds.meta["synthetic"].all()

    # a classifier trained on real maps gives the feature space
    run_dir = tmp_path / "clf"
    code, out, err = run(["train", "--train", data["train"], "--val", data["val"], "--out", run_dir, "--epochs", "1",
                          "--input-size", "16", "--device", "cpu", "--batch-size", "8", "--model-args", "{width: 8}"],
                         capsys)
    assert code == 0, err
    report_path = tmp_path / "quality.json"
    code, out, err = run(["synth", "evaluate", "--model", syn_dir, "--classifier", run_dir, "--data", data["val"],
                          "--out", report_path, "--n", "20"], capsys)
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert set(report["classes"]) == {"Center", "Donut", "Edge-Ring", "none"}
    row = report["classes"]["Donut"]
    for key in ["fd", "fd_oversample", "kid", "kid_oversample", "classifier_accuracy", "memorised_share",
                "nn_distance", "n_train", "n_real"]:
        assert key in row, key
    assert 0 <= row["classifier_accuracy"] <= 1 and 0 <= row["memorised_share"] <= 1
    assert (tmp_path / "quality_grid.png").is_file()


@pytest.mark.slow
def test_train_with_balance_flag(data, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, err = run(["train", "--train", data["train"], "--val", data["val"], "--out", run_dir, "--epochs", "1",
                          "--input-size", "16", "--device", "cpu", "--batch-size", "8", "--model-args", "{width: 8}",
                          "--balance", "oversample", "--balance-target", "6"], capsys)
    assert code == 0, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["balance"]["added"] == {"Center": 2, "Donut": 2, "Edge-Ring": 2, "none": 2} | {
        c: 0 for c in metrics["balance"]["added"] if c not in ("Center", "Donut", "Edge-Ring", "none")}
    assert "balance=oversample" in out


@pytest.mark.parametrize("argv,message", [
    (["synth", "sample", "--model", "{tmp}", "--class", "Donut", "--out", "{tmp}/x.pkl"], "synthesizer.pt"),
    (["synth", "fit", "--train", "{train}", "--out", "{tmp}/s"], "--method"),
    (["synth", "fit", "--method", "vae", "--train", "{train}", "--out", "{tmp}/s"], "unknown synthesis method"),
    (["synth", "fit", "--method", "gan", "--train", "{train}", "--out", "{tmp}/s", "--itrations", "3"],
     "unknown gan synthesizer options"),
    (["train", "--train", "{train}", "--out", "{tmp}/r", "--balance", "smote"], "balance='smote'"),
])
def test_synth_errors_are_one_line(data, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, train=data["train"]) for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_sample_unknown_class(data, tmp_path, capsys):
    syn_dir = tmp_path / "cae"
    assert run(["synth", "fit", "--method", "cae", "--train", data["train"], "--out", syn_dir, "--size", "16",
                "--steps", "2"], capsys)[0] == 0
    code, out, err = run(["synth", "sample", "--model", syn_dir, "--class", "Dunut", "--out", tmp_path / "x.pkl"],
                         capsys)
    assert code == 2 and "unknown class 'Dunut'" in err
