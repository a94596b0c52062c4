"""`adrcs pretrain` and `adrcs train --init`: the folder it writes, fine-tuning from it, one-line errors."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from helpers.cli import run_cli as run

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = ["--input-size", "16", "--device", "cpu", "--batch-size", "16", "--model-args",
         "{width: 4, deep_mult: 2, hidden: 16}"]


@pytest.fixture
def data(tmp_path):
    from helpers.frames import write_noisy_splits

    return write_noisy_splits(tmp_path, {"unlabeled": 10, "train": 4, "val": 4})


@pytest.fixture
def pretrained(data, tmp_path, capsys):
    out = tmp_path / "pre"
    code, stdout, err = run(["pretrain", "--unlabeled", data["unlabeled"], data["train"], "--val", data["val"],
                             "--out", out, "--epochs", "2", "--temperature", "0.3", *SMALL], capsys)
    assert code == 0, err
    return out, stdout


def test_pretrain_writes_the_folder(pretrained, data):
    out, stdout = pretrained
    for name in ["encoder.pt", "config.yaml", "history.csv", "plots/pretrain_loss.png", "plots/features_tsne.png"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == [1, 2] and np.isfinite(history["loss"]).all()
    enc = torch.load(out / "encoder.pt", weights_only=True)
    assert enc["format"] == "adrcs-encoder/1" and enc["model"] == "ffn" and enc["input_size"] == 16
    assert enc["pretrain"]["n_maps"] == 56 and enc["pretrain"]["method"] == "simclr"
    assert enc["pretrain"]["tsne_maps"] == 16 and enc["pretrain"]["tsne_source"] == "--val"
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["pretrain"]["temperature"] == 0.3 and cfg["val"] == [str(data["val"])]
    assert "t-SNE of 16 --val maps" in " ".join(stdout.split())


def test_pretrain_config_reads_back_and_refuses_an_existing_encoder(pretrained, data, capsys):
    from adrcs.api_pretrain import load_pretrain_config

    out, _ = pretrained
    cfg = load_pretrain_config(out / "config.yaml", {"epochs": "1"})
    assert cfg["pretrain"]["temperature"] == 0.3 and cfg["input_size"] == 16 and cfg["epochs"] == 1
    code, _, err = run(["pretrain", "--unlabeled", data["train"], "--out", out, *SMALL], capsys)
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1


def test_val_maps_are_never_pretrained_on(data, tmp_path, capsys):
    out = tmp_path / "pre"
    code, stdout, err = run(["pretrain", "--unlabeled", data["train"], data["val"], "--val", data["val"],
                             "--out", out, "--epochs", "1", "--method", "byol", *SMALL], capsys)
    assert code == 0, err
    enc = torch.load(out / "encoder.pt", weights_only=True)
    assert enc["pretrain"]["n_maps"] == 16 and enc["pretrain"]["method"] == "byol"
    assert "left out 16 unlabelled maps identical to a --val map" in " ".join(stdout.split())


def test_train_init_fine_tunes_from_the_encoder(pretrained, data, tmp_path, capsys):
    pre, _ = pretrained
    run_dir = tmp_path / "run"
    code, stdout, err = run(["train", "--train", data["train"], "--val", data["val"], "--out", run_dir,
                             "--epochs", "1", "--init", pre, *SMALL], capsys)
    assert code == 0, err
    said = " ".join(stdout.split())  # the console wraps long lines
    assert f"init: encoder from {pre} (simclr, 2 epochs on 56 maps); head fresh" in said
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["init"] == str(pre)
    assert json.loads((run_dir / "metrics.json").read_text())["init"] == str(pre)


@pytest.mark.parametrize("args,needle", [
    (["--model", "cnn", "--model-args", "{width: 4}"], "pretrained for model 'ffn'"),
    (["--input-size", "24"], "input_size 16"),
])
def test_train_init_mismatch_is_one_line(pretrained, data, tmp_path, capsys, args, needle):
    pre, _ = pretrained
    code, _, err = run(["train", "--train", data["train"], "--val", data["val"], "--out", tmp_path / "run",
                        "--epochs", "1", "--init", pre, *SMALL, *args], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_pretrain_bad_options_are_one_line(data, tmp_path, capsys):
    for args, needle in [(["--method", "dino"], "--method"), (["--model", "cnn1d"], "1-D"),
                         (["--p-fail", "2"], "p_fail")]:
        code, _, err = run(["pretrain", "--unlabeled", data["train"], "--out", tmp_path / "x", *SMALL, *args], capsys)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x" / "encoder.pt").exists()
