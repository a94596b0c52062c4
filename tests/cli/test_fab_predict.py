"""Fab files through the documented CLI: predictions on a folder of STDF / KLARF / SINF / E142 / G85 files equal the
predictions on the same maps from a processed pickle; `evaluate --labels` on the shipped STDF sample."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.cli import run_cli
from helpers.runs import train_wafer_run

FORMATS = ("stdf", "klarf", "sinf", "e142", "g85")


def _maps(n: int, seed: int) -> list[np.ndarray]:
    """Round wafers (dies inside a circle, the grid trimmed to the dies as STDF and KLARF give it) with failing dies
    in a few patterns."""
    from helpers.klarf_writer import circle_map

    rng = np.random.default_rng(seed)
    base = circle_map(12, (5000.0, 4000.0))
    out = []
    for k in range(n):
        m = base.copy()
        if k % 3 == 0:
            m[(m > 0) & (rng.random(m.shape) < 0.15)] = 2
        elif k % 3 == 1:
            m[4:8, 4:8][m[4:8, 4:8] > 0] = 2
        else:
            r = np.arange(12)
            m[r, r][m[r, r] > 0] = 2
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        out.append(m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    return out


def _write(fmt: str, path: Path, maps: list[np.ndarray]) -> None:
    from helpers.klarf_writer import write_klarf
    from helpers.sinf_writer import write_e142, write_g85, write_sinf
    from helpers.stdf_writer import write_stdf

    pairs = [(f"{i + 1:02d}", m) for i, m in enumerate(maps)]
    lot = f"LOT-{fmt.upper()}"
    if fmt == "stdf":
        write_stdf(path, pairs, lot=lot, retests=3, sites=4, heads=2, ptr_per_die=2, gzip=True)
    elif fmt == "klarf":
        write_klarf(path, pairs, lot=lot)
    elif fmt == "sinf":
        write_sinf(path, pairs, lot=lot)
    elif fmt == "e142":
        write_e142(path, pairs, lot=lot)
    else:
        write_g85(path, pairs, lot=lot)


@pytest.mark.slow
def test_predictions_on_fab_files_equal_predictions_on_the_pickle(tmp_path: Path, capsys) -> None:
    from adrcs.data.wafer_map_set import WM811K_CLASSES, WaferMapSet
    from adrcs.data.writer import save_wafer_maps

    run = train_wafer_run(tmp_path)
    maps = _maps(6, seed=1)
    names = {"stdf": "lot.stdf.gz", "klarf": "lot.klarf", "sinf": "lot.sinf", "e142": "lot_e142.xml",
             "g85": "lot_g85.xml"}
    folder = tmp_path / "fab"
    folder.mkdir()
    for fmt in FORMATS:
        _write(fmt, folder / names[fmt], maps)
    ds = WaferMapSet(maps=maps, labels=np.full(len(maps), -1), class_names=list(WM811K_CLASSES),
                     meta=pd.DataFrame({"source": "same", "index": range(len(maps)), "lot": "P",
                                       "wafer": [str(i + 1) for i in range(len(maps))]}))
    pkl = save_wafer_maps(ds, tmp_path / "same.pkl.xz")

    code, _, err = run_cli(["predict", "--model", run, "--data", pkl, "--out", tmp_path / "pkl.csv"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["predict", "--model", run, "--data", folder, "--out", tmp_path / "fab.csv"], capsys)
    assert code == 0, err
    want = pd.read_csv(tmp_path / "pkl.csv", dtype={"wafer": str, "lot": str})
    got = pd.read_csv(tmp_path / "fab.csv", dtype={"wafer": str, "lot": str})
    probs = [c for c in want.columns if c.startswith("prob_")]
    assert probs and len(got) == len(FORMATS) * len(maps)
    for fmt in FORMATS:
        part = got[got["lot"] == f"LOT-{fmt.upper()}"].reset_index(drop=True)
        assert list(part["wafer"]) == list(want["wafer"]), fmt
        assert list(part["predicted"]) == list(want["predicted"]), fmt
        np.testing.assert_allclose(part[probs].to_numpy(), want[probs].to_numpy(), atol=1e-6, err_msg=fmt)
        for col in ("die_count", "fail_count"):
            assert list(part[col]) == list(want[col]), (fmt, col)


def test_evaluate_with_labels_on_the_stdf_sample(tmp_path: Path, capsys) -> None:
    from adrcs.samples import SAMPLES_DIR

    run = train_wafer_run(tmp_path)
    out = tmp_path / "evaluation.json"
    code, _, err = run_cli(["evaluate", "--model", run, "--data", SAMPLES_DIR / "lot_sample.stdf.gz",
                            "--labels", SAMPLES_DIR / "lot_sample_labels.csv", "--out", out], capsys)
    assert code == 0, err
    report = json.loads(out.read_text())
    n_labels = len(pd.read_csv(SAMPLES_DIR / "lot_sample_labels.csv"))
    assert n_labels == 25 and report["n_samples"] == n_labels and 0.0 <= report["accuracy"] <= 1.0
