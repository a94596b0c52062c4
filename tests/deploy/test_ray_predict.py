"""`adrcs predict --engine ray`: on a local Ray with 2 workers the Parquet shards hold the local CSV's columns and
rows (same maps, classes, decisions and probabilities within 1e-5) for pickle and SINF files; the one-line errors
(Ray missing, image models, a CSV --out) and how a worker's reading error reaches the driver."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.cli import run_cli
from helpers.runs import train_wafer_run

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "adrcs" / "samples"


def _run(tmp: Path) -> Path:
    """The tiny ffn run; its pickles written with Python-backed strings (pandas with pyarrow, which Ray brings,
    writes ArrowStringArray columns that the strict unpickler refuses)."""
    with pd.option_context("mode.string_storage", "python"):
        return train_wafer_run(tmp)


@pytest.mark.slow
def test_ray_predict_equals_local_predict(tmp_path: Path, capsys) -> None:
    pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    run = _run(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    for f in ("wm0_0.pkl.xz", "wm0_1.pkl.xz"):
        shutil.copy(tmp_path / f, data / f)
    shutil.copy(SAMPLES / "wafer_sample_01.sinf", data / "wafer_sample_01.sinf")
    (data / "broken.pkl").write_bytes(b"not a pickle")
    skip = ["--on-error", "skip"]

    code, _, err = run_cli(["predict", "--model", run, "--data", data, "--out", tmp_path / "local.csv",
                            "--runtime", "torch", *skip], capsys)
    assert code == 0, err
    code, out, err = run_cli(["predict", "--engine", "ray", "--workers", "2", "--model", run, "--data", data,
                              "--out", tmp_path / "ray", *skip], capsys)
    assert code == 0, err
    out = " ".join(out.split())  # the console wraps long lines
    assert "ray: local, 2 worker(s)" in out and "(runtime onnx, ray x2)" in out
    assert "1 file(s) gave no maps" in out and "broken.pkl" in out

    local = pd.read_csv(tmp_path / "local.csv", keep_default_na=False)
    shards = sorted((tmp_path / "ray").glob("*.parquet"))
    assert shards
    ray_rows = pd.concat([pd.read_parquet(s) for s in shards], ignore_index=True)
    assert list(ray_rows.columns) == list(local.columns)
    assert len(ray_rows) == len(local) and set(local["source"]) == {str(p) for p in sorted(data.iterdir())
                                                                    if p.name != "broken.pkl"}
    key = ["source", "source_index"]
    local = local.sort_values(key).reset_index(drop=True)
    ray_rows = ray_rows.sort_values(key).reset_index(drop=True)
    # local numbers maps across all files, Ray within each file
    local_pos = local.groupby("source")["index"].rank(method="first").astype(int) - 1
    assert (ray_rows["index"].to_numpy() == local_pos.to_numpy()).all()
    for col in ("source", "source_index", "lot", "wafer", "predicted", "decision", "set", "true"):
        assert (ray_rows[col].astype(str).to_numpy() == local[col].astype(str).to_numpy()).all(), col
    floats = ["die_count", "fail_count", "yield", "confidence"] + [c for c in local.columns if c.startswith("prob_")]
    for col in floats + ["unknown_score"]:
        a, b = (pd.to_numeric(t[col], errors="coerce").to_numpy(float) for t in (ray_rows, local))
        assert np.allclose(a, b, rtol=0, atol=1e-5, equal_nan=True), col


def test_engine_ray_without_ray_is_one_line_exit_2(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, _, err = run_cli(["predict", "--engine", "ray", "--model", tmp_path / "run", "--data", tmp_path,
                            "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert "pip install 'adrcs[ray]'" in err and len(err.strip().splitlines()) == 1


def test_engine_ray_is_refused_for_image_models_and_csv_out(tmp_path: Path) -> None:
    from adrcs.deploy.ray_predict import check_out
    from adrcs.errors import InputError
    from adrcs.tasks import Request, get_task

    for name in ("detect", "image_classify"):
        with pytest.raises(InputError, match="--engine ray is for wafer-map models"):
            get_task(name).check_image_request(Request(data=[tmp_path], engine="ray", runtime="auto"))
    with pytest.raises(InputError, match="folder of Parquet shards"):
        check_out(tmp_path / "predictions.csv")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "a.parquet").write_bytes(b"")
    with pytest.raises(InputError, match="holds Parquet shards already"):
        check_out(tmp_path / "old")


def test_a_workers_reading_error_comes_back_as_one_line() -> None:
    from adrcs.deploy.ray_predict import MARK, _input_error

    wrapped = RuntimeError(f"ray.exceptions.RayTaskError(ReadFailure): task failed\n  ReadFailure: {MARK}"
                           "lots/a.stdf: not an STDF file\n  more traceback")
    err = _input_error(wrapped)
    assert err is not None and str(err) == "lots/a.stdf: not an STDF file"
    assert _input_error(RuntimeError("something else")) is None
