"""Folders, globs, --on-error skip, the wafer columns of the predictions CSV, --labels, and the image-side
--no-annotated / skipping of undecodable images."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.cli import run_cli
from helpers.frames import make_wm811k_frame
from helpers.runs import train_wafer_run


def _lots(root: Path, n_files: int = 3) -> list[Path]:
    """`n_files` adrcs npz files (lot and wafer ids, labels) in root/a and root/b/c."""
    from adrcs.data.loader import load
    from adrcs.data.writer import save_wafer_maps_npz

    files = []
    root.mkdir(parents=True, exist_ok=True)
    for k in range(n_files):
        pkl = root / f"tmp{k}.pkl.xz"
        make_wm811k_frame(np.random.default_rng(k), per_class=1).to_pickle(pkl)
        ds = load(pkl)
        ds.meta["lot"] = f"LOT{k}"
        ds.meta["wafer"] = [f"{i + 1:02d}" for i in range(len(ds))]
        folder = root / ("a" if k == 0 else "b/c")
        folder.mkdir(parents=True, exist_ok=True)
        files.append(save_wafer_maps_npz(ds, folder / f"lot{k}.npz"))
        pkl.unlink()
    return files


def test_folder_and_glob_predict_with_wafer_columns(tmp_path: Path, capsys) -> None:
    run = train_wafer_run(tmp_path)
    files = _lots(tmp_path / "data")
    (tmp_path / "data" / "README.md").write_text("not data")  # ignored in folders
    out = tmp_path / "pred.csv"
    code, _, err = run_cli(["predict", "--model", run, "--data", tmp_path / "data", "--out", out], capsys)
    assert code == 0, err
    df = pd.read_csv(out, dtype={"wafer": str, "lot": str})
    assert len(df) == 27
    for col in ("lot", "wafer", "die_count", "fail_count", "yield"):
        assert col in df.columns
    assert set(df["lot"]) == {"LOT0", "LOT1", "LOT2"}
    assert df["wafer"].iloc[0] == "1"  # "01" normalised
    assert ((df["die_count"] > 0) & (df["fail_count"] <= df["die_count"])).all()
    assert np.allclose(df["yield"], 1 - df["fail_count"] / df["die_count"])
    glob = str(tmp_path / "data" / "**" / "lot*.npz")
    code, _, err = run_cli(["predict", "--model", run, "--data", glob, "--out", out], capsys)
    assert code == 0, err
    assert len(pd.read_csv(out)) == 27 and files


def test_on_error_skip_lists_bad_files(tmp_path: Path, capsys) -> None:
    run = train_wafer_run(tmp_path)
    _lots(tmp_path / "data", 2)
    bad = tmp_path / "data" / "a" / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "pred.csv"
    code, _, err = run_cli(["predict", "--model", run, "--data", tmp_path / "data", "--out", out], capsys)
    assert code == 2 and "broken.npz" in err and "Traceback" not in err
    code, stdout, err = run_cli(["predict", "--model", run, "--data", tmp_path / "data", "--out", out,
                                 "--on-error", "skip"], capsys)
    assert code == 0, err
    assert "skipped 1 unreadable file" in stdout and "broken.npz" in stdout
    assert len(pd.read_csv(out)) == 18
    code, _, err = run_cli(["info", tmp_path / "data", "--on-error", "maybe"], capsys)
    assert code == 2 and "--on-error" in err


def test_info_on_a_folder(tmp_path: Path, capsys) -> None:
    _lots(tmp_path / "data", 2)
    code, out, err = run_cli(["info", tmp_path / "data", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert len(result) == 2 and all(v["total"] == 9 for v in result.values())
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(["info", empty], capsys)
    assert code == 2 and "holds no wafer-map files" in err


def test_evaluate_with_labels_csv(tmp_path: Path, capsys) -> None:
    from adrcs.data.loader import load
    from adrcs.data.writer import save_wafer_maps_npz

    run = train_wafer_run(tmp_path)
    pkl = tmp_path / "v.pkl.xz"
    make_wm811k_frame(np.random.default_rng(3), per_class=2).to_pickle(pkl)
    ds = load(pkl)
    truth = [ds.class_names[i] for i in ds.labels]
    ds.labels[:] = -1  # the file carries no labels, like a fab file
    ds.meta["lot"], ds.meta["wafer"] = "L9", [str(i + 1) for i in range(len(ds))]
    data = save_wafer_maps_npz(ds, tmp_path / "nolabels.npz")
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"lot": "L9", "wafer": [f"{i + 1:03d}" for i in range(len(ds))], "label": truth}).to_csv(
        labels, index=False)
    code, _, err = run_cli(["evaluate", "--model", run, "--data", data, "--out", tmp_path / "e.json"], capsys)
    assert code == 2 and "no labeled maps" in err
    code, out, err = run_cli(["evaluate", "--model", run, "--data", data, "--labels", labels,
                              "--out", tmp_path / "e.json"], capsys)
    assert code == 0, err
    assert f"{len(ds)} of {len(ds)} maps matched" in out
    assert json.loads((tmp_path / "e.json").read_text())["n_samples"] == len(ds)
    pd.DataFrame({"lot": ["L9"], "wafer": ["1"], "label": ["Blob"]}).to_csv(labels, index=False)
    code, _, err = run_cli(["evaluate", "--model", run, "--data", data, "--labels", labels], capsys)
    assert code == 2 and "'Blob'" in err and "labels.csv" in err
    labels.write_text("x,y\n1,2\n")
    code, _, err = run_cli(["predict", "--model", run, "--data", data, "--labels", labels,
                            "--out", tmp_path / "p.csv"], capsys)
    assert code == 2 and "lot,wafer,label" in err


@pytest.mark.slow
def test_detection_predict_no_annotated_and_skip(tmp_path: Path, capsys) -> None:
    from helpers.runs import train_detector_run

    run = train_detector_run(tmp_path)
    imgs = tmp_path / "data" / "imgs"
    out = tmp_path / "pred"
    code, _, err = run_cli(["predict", "--model", run, "--data", imgs, "--out", out, "--no-annotated"], capsys)
    assert code == 0, err
    assert (out / "predictions.csv").is_file() and not (out / "annotated").exists()
    jpg = sorted(imgs.glob("*_test.jpg"))[0]
    jpg.write_bytes(jpg.read_bytes()[:200])  # truncated
    code, _, err = run_cli(["predict", "--model", run, "--data", imgs, "--out", tmp_path / "p2"], capsys)
    assert code == 2 and jpg.name in err
    code, stdout, err = run_cli(["predict", "--model", run, "--data", imgs, "--out", tmp_path / "p3",
                                 "--on-error", "skip"], capsys)
    assert code == 0, err
    assert "skipped 1 unreadable file" in stdout and jpg.name in stdout
    assert len(json.loads((tmp_path / "p3" / "predictions.json").read_text())["images"]) == 3
