"""CLI contract: train -> evaluate -> predict on tiny data, `info`, and one-line errors."""
import json

import numpy as np
import pandas as pd
import pytest

from adrcs.cli import expand_multi_value
from helpers.cli import run_cli as run


@pytest.fixture
def wm_files(tmp_path):
    from helpers.frames import make_wm811k_frame

    paths = []
    for i, n in enumerate([3, 2, 2]):
        p = tmp_path / f"part{i}.pkl.xz"
        make_wm811k_frame(np.random.default_rng(10 + i), per_class=n).to_pickle(p)
        paths.append(p)
    return paths


def test_expand_multi_value():
    assert expand_multi_value(["train", "--train", "a", "b", "--val", "c", "--epochs", "2"]) == \
        ["train", "--train", "a", "--train", "b", "--val", "c", "--epochs", "2"]


@pytest.mark.slow
def test_train_evaluate_predict(wm_files, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, err = run(["train", "--config", "configs/wm811k_ffn.yaml", "--train", wm_files[0], wm_files[1],
                          "--val", wm_files[2], "--out", run_dir, "--epochs", "2", "--input-size", "16",
                          "--device", "cpu", "--batch-size", "16", "--model-args", "{width: 8}"], capsys)
    assert code == 0, err
    for name in ["model.ckpt", "config.yaml", "metrics.json", "plots/confusion_matrix.png",
                 "plots/roc_curves.png", "plots/training_curves.png", "logs/metrics.csv"]:
        assert (run_dir / name).is_file(), name
    assert "Macro-F1" in out

    report_path = tmp_path / "report.json"
    code, out, err = run(["evaluate", "--model", run_dir, "--data", wm_files[2], "--out", report_path], capsys)
    assert code == 0, err
    report = json.loads(report_path.read_text())
    for key in ["accuracy", "macro_f1", "per_class", "confusion_matrix", "class_names", "roc_auc_macro"]:
        assert key in report
    assert set(report["per_class"]["Center"]) >= {"precision", "recall", "f1", "support"}
    assert len(report["confusion_matrix"]) == len(report["class_names"]) == 9

    # predict works on unlabeled maps too
    df = pd.read_pickle(wm_files[2])
    df["failureType"] = None
    df = df.drop(columns=["failureCode"])
    unlabeled = tmp_path / "unlabeled.pkl"
    df.to_pickle(unlabeled)
    pred_path = tmp_path / "pred.csv"
    code, out, err = run(["predict", "--model", run_dir, "--data", unlabeled, "--out", pred_path], capsys)
    assert code == 0, err
    pred = pd.read_csv(pred_path)
    assert len(pred) == len(df)
    assert {"index", "predicted", "confidence", "prob_Center", "prob_none"} <= set(pred.columns)
    np.testing.assert_allclose(pred.filter(like="prob_").sum(1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_multilabel_train_evaluate_predict(mixed_npz, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, err = run(["train", "--config", "configs/mixedwm38_ffn.yaml", "--train", mixed_npz, "--out", run_dir,
                          "--epochs", "1", "--input-size", "16", "--device", "cpu", "--val-fraction", "0.3"], capsys)
    assert code == 0, err
    report_path = tmp_path / "r.json"
    code, out, err = run(["evaluate", "--model", run_dir, "--data", mixed_npz, "--out", report_path], capsys)
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert {"exact_match", "per_label", "macro_f1", "accuracy", "class_names"} <= set(report)
    code, out, err = run(["predict", "--model", run_dir, "--data", mixed_npz, "--out", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 12


def test_info(wm_files, capsys):
    code, out, err = run(["info", wm_files[0], "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)[str(wm_files[0])]
    assert summary["total"] == 27 and summary["unlabeled"] == 0
    code, out, err = run(["info", wm_files[0]], capsys)
    assert code == 0 and "Edge-Ring" in out


@pytest.mark.parametrize("make_bad,needle", [
    (lambda p: None, "file not found"),
    (lambda p: p.write_text("hello"), "not a wafer-map file"),
    (lambda p: pd.DataFrame({"x": [1]}).to_pickle(p), "waferMap"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, make_bad, needle):
    bad = tmp_path / "bad.pkl"
    make_bad(bad)
    code, out, err = run(["info", bad], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and needle in lines[0]
    assert "Traceback" not in err


def test_bad_option_and_model_dir(tmp_path, wm_files, capsys):
    code, out, err = run(["train", "--train", wm_files[0], "--out", tmp_path / "r", "--colour", "red"], capsys)
    assert code == 2 and "unknown option --colour" in err
    code, out, err = run(["evaluate", "--model", tmp_path, "--data", wm_files[0]], capsys)
    assert code == 2 and "model.ckpt" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_evaluate_writes_plots_beside_report(wm_files, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = run(["train", "--train", wm_files[0], "--val", wm_files[1], "--out", run_dir, "--epochs", "1",
                        "--input-size", "16", "--model", "cnn", "--model-args", "{width: 4}"], capsys)
    assert code == 0, err
    code, _, err = run(["evaluate", "--model", run_dir, "--data", wm_files[2], "--out", tmp_path / "rep.json",
                        "--tta"], capsys)
    assert code == 0, err
    assert (tmp_path / "rep_plots" / "confusion_matrix.png").is_file()
    assert (tmp_path / "rep_plots" / "roc_curves.png").is_file()


# ---------------------------------------------------------------- safe loading flags


def test_info_refuses_code_in_pickles_and_trusts_on_request(tmp_path, capsys):
    import pickle
    import subprocess

    from helpers.frames import make_lswmd_frame

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (subprocess.check_call, (["touch", str(marker)],))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Evil()))
    code, out, err = run(["info", evil], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert str(evil) in lines[0] and "subprocess.check_call" in lines[0] and "--trust-pickle" in lines[0]
    assert not marker.exists()

    legacy = tmp_path / "good_legacy.pkl"  # old pandas names (Kaggle's LSWMD.pkl), loads both ways
    legacy.write_bytes(pickle.dumps(make_lswmd_frame(np.random.default_rng(0)), protocol=2)
                       .replace(b"pandas.core.indexes.", b"pandas.indexes."))
    for extra in ([], ["--trust-pickle"]):
        code, out, err = run(["info", "--json", legacy, *extra], capsys)
        assert code == 0, err
        assert json.loads(out)[str(legacy)]["total"] == 9


def test_max_uncompressed_mb_flag(tmp_path, capsys, wm_files):
    code, out, err = run(["info", wm_files[0], "--max-uncompressed-mb", "0.001"], capsys)
    assert code == 2 and "KiB limit (raise it with --max-uncompressed-mb)" in err and len(err.splitlines()) == 1
    code, out, err = run(["info", wm_files[0], "--max-uncompressed-mb", "-1"], capsys)
    assert code == 2 and "--max-uncompressed-mb must be > 0" in err


@pytest.mark.parametrize("verb", [["train"], ["evaluate"], ["predict"], ["info"], ["convert"], ["synth", "fit"],
                                  ["synth", "evaluate"], ["adapt"]])
def test_every_data_verb_takes_the_loading_flags(verb):
    import typer

    from adrcs.cli import app

    cmd = typer.main.get_command(app)
    for name in verb:
        cmd = cmd.commands[name]
    opts = {o for p in cmd.params for o in p.opts}
    assert {"--trust-pickle", "--max-uncompressed-mb"} <= opts


@pytest.mark.slow
def test_train_refuses_to_replace_a_run_without_overwrite(wm_files, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "--train", wm_files[0], "--out", run_dir, "--epochs", "1", "--input-size", "16",
            "--device", "cpu"]
    code, _, err = run(args, capsys)
    assert code == 0, err
    before = (run_dir / "model.ckpt").read_bytes()
    code, _, err = run(args, capsys)
    assert code == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (run_dir / "model.ckpt").read_bytes() == before
    code, _, err = run(args + ["--overwrite"], capsys)
    assert code == 0, err
