"""Whole-image classification of inspection images through the CLI: train, evaluate, predict."""
import json

import pandas as pd
import pytest

from helpers.cli import run_cli
from helpers.images import write_class_folders


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    import sys

    from adrcs.cli import main

    root = tmp_path_factory.mktemp("imgcls")
    data = write_class_folders(root / "data", templates=True)
    args = ["train", "--data", str(data), "--out", str(root / "run"), "--task", "image_classify", "--model", "cnn",
            "--input-size", "32", "--epochs", "15", "--batch-size", "8", "--lr", "0.01", "--val-fraction", "0.3",
            "--model-args", "{width: 8, dropout: 0.0}", "--device", "cpu", "--progress", "false",
            "--early-stopping-patience", "0"]
    try:
        main(args)
    except SystemExit as e:
        assert not e.code, e
    sys.stdout.flush()
    return root, data


@pytest.mark.slow
def test_train_writes_run_folder_with_templates(image_run):
    root, _ = image_run
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    assert metrics["use_template"] is True and metrics["n_val"] == 9
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix"} <= set(metrics["val"])
    from adrcs.image_classifier_pipeline import ImageClassifierPipeline

    pipe = ImageClassifierPipeline.load(root / "run")
    assert pipe.use_template and pipe.model_args["in_chans"] == 3 and len(pipe.class_names) == 3


@pytest.mark.slow
def test_evaluate_and_predict(image_run, capsys):
    root, data = image_run
    code, out, err = run_cli(["evaluate", "--model", root / "run", "--data", data, "--out", root / "ev.json"], capsys)
    assert code == 0, err
    rep = json.loads((root / "ev.json").read_text())
    assert rep["accuracy"] >= 0.6  # 30 easy images, 21 of them seen in training
    code, out, err = run_cli(["predict", "--model", root / "run", "--data", data, "--out", root / "pred.csv"], capsys)
    assert code == 0, err
    rows = pd.read_csv(root / "pred.csv")
    assert len(rows) == 30 and {"image", "predicted", "confidence", "prob_square"} <= set(rows.columns)


@pytest.mark.slow
def test_wafer_only_flags_on_an_image_model_are_refused(image_run, capsys):
    root, data = image_run
    for extra, needle in ((["--tta"], "--tta"), (["--threshold", "0.3"], "--threshold")):
        code, _, err = run_cli(["predict", "--model", root / "run", "--data", data, "--out", root / "p2.csv", *extra],
                               capsys)
        assert code == 2 and needle in err and "image model" in err
    code, _, err = run_cli(["evaluate", "--model", root / "run", "--data", data, data, "--out", root / "e2.json"],
                           capsys)
    assert code == 2 and "one --data path" in err


def test_errors_are_one_line(tmp_path, capsys):
    code, out, err = run_cli(["train", "--out", tmp_path / "r", "--task", "image_classify"], capsys)
    assert code == 2 and "no training data" in err and err.count("\n") == 1
    code, out, err = run_cli(["train", "--data", tmp_path / "missing", "--out", tmp_path / "r",
                              "--task", "image_classify", "--model", "cnn"], capsys)
    assert code == 2 and "missing" in err and err.count("\n") == 1
    code, out, err = run_cli(["train", "--data", tmp_path, "--out", tmp_path / "r", "--task", "detect",
                              "--detector", "yolo"], capsys)
    assert code == 2 and "unknown detector" in err
