"""`adrcs maps` and `adrcs report` end to end on tiny data: file names, stacked maps, index.csv, bins, the HTML
report and its JSON; bad input -> exit 2 with one line."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.cli import run_cli
from helpers.frames import make_wm811k_frame
from helpers.runs import train_wafer_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")
WAFERS_A = ["W01", "W02", "W02", "", "../../etc", "stacked", "W07", "W08", "W09", "W10"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """lots.npz: lot A (10 maps: a repeated, a missing, a path-like and a reserved wafer id) and lot "B/../x"
    (1 map); plain.pkl.xz: 4 maps without lot or wafer ids; run: a tiny wafer model."""
    from adrcs.data.loader import load
    from adrcs.data.writer import save_wafer_maps_npz

    root = tmp_path_factory.mktemp("lots")
    pkl = root / "frame.pkl.xz"
    make_wm811k_frame(np.random.default_rng(4), per_class=2).to_pickle(pkl)
    ds = load(pkl).subset(np.arange(11))
    ds.meta["lot"] = ["A"] * 10 + ["B/../x"]
    ds.meta["wafer"] = WAFERS_A + ["1"]
    plain = root / "plain.pkl.xz"
    make_wm811k_frame(np.random.default_rng(5), classes=["Center", "none"], per_class=2).to_pickle(plain)
    return {"lots": save_wafer_maps_npz(ds, root / "lots.npz"), "plain": plain, "run": train_wafer_run(root)}


def _one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert err.startswith("adrcs: error:") and err.strip().count("\n") == 0, err
    return err


def _size(p: Path) -> tuple[int, int]:
    return Image.open(io.BytesIO(p.read_bytes())).size


def test_maps_writes_one_png_per_wafer_a_stacked_map_per_lot_and_an_index(data, tmp_path, capsys):
    out = tmp_path / "maps"
    code, stdout, err = run_cli(["maps", "--data", data["lots"], data["plain"], "--out", out], capsys)
    assert code == 0, err
    assert "15 wafer maps in 3 lot folder(s), 1 stacked map(s)" in stdout
    index = pd.read_csv(out / "index.csv", dtype=str, keep_default_na=False)
    assert list(index.columns) == ["map", "source", "source_index", "lot", "wafer", "file"] and len(index) == 15
    files = list(index["file"])
    assert len(set(files)) == 15 and all((out / f).is_file() for f in files)
    a = index[index["lot"] == "A"]["file"].tolist()
    assert a[:2] == ["A/W01.png", "A/W02.png"]
    assert a[2] == "A/W02-map2.png" and a[3] == "A/map3.png"          # repeated and missing ids: the map index
    assert a[4] == "A/etc.png" and a[5] == "A/stacked-map5.png"      # no path, never the stacked map's name
    assert index[index["lot"] == "B/../x"]["file"].tolist() == ["B_x/1.png"]
    assert index[index["lot"] == ""]["file"].tolist() == [f"_no_lot/map{i}.png" for i in range(11, 15)]
    assert (out / "A" / "stacked.png").is_file()
    assert not (out / "B_x" / "stacked.png").exists()               # one wafer
    assert not (out / "_no_lot" / "stacked.png").exists()             # no lot: nothing to stack
    assert sorted(p.name for p in out.iterdir()) == ["A", "B_x", "_no_lot", "index.csv"]
    w, h = _size(out / "A" / "W01.png")
    assert 200 <= max(w, h) <= 300                                    # about 256 px across by default


def test_maps_scale_no_stacked_and_bins(data, tmp_path, capsys, monkeypatch):
    from adrcs.data.loader import load

    code, _, err = run_cli(["maps", "--data", data["plain"], "--out", tmp_path / "s", "--scale", "3",
                            "--no-stacked"], capsys)
    assert code == 0, err
    m = load(data["plain"]).maps[0]
    assert _size(tmp_path / "s" / "_no_lot" / "map0.png") == (3 * m.shape[1], 3 * m.shape[0])
    assert not list((tmp_path / "s").rglob("stacked.png"))
    # --by bin on data without bins: one line
    _one_line_error(*run_cli(["maps", "--data", data["plain"], "--out", tmp_path / "b", "--by", "bin"], capsys)[::2])
    # data with bins (as fab files give them): one colour per bin
    ds = load(data["plain"])
    ds.bins = [np.where(m > 0, (m == 2) * 6 + 1, -1).astype(np.int32) for m in ds.maps[:3]] + [None]
    monkeypatch.setattr("adrcs.api_lots.read_maps", lambda *a, **k: ds)
    code, stdout, err = run_cli(["maps", "--data", data["plain"], "--out", tmp_path / "b", "--by", "bin",
                                 "--scale", "1"], capsys)
    assert code == 0, err
    assert "1 map(s) have no bins: drawn by die code" in stdout
    rgb = np.asarray(Image.open(tmp_path / "b" / "_no_lot" / "map0.png").convert("RGB"))
    assert len({tuple(c) for c in rgb.reshape(-1, 3)}) == 3           # white, bin 1, bin 7


@pytest.mark.parametrize("flags, says", [(["--by", "colour"], "--by must be code or bin"),
                                         (["--scale", "0"], "--scale must be 1..64"),
                                         (["--on-error", "maybe"], "--on-error must be stop or skip")])
def test_maps_bad_flags_exit_2_with_one_line(data, tmp_path, capsys, flags, says):
    err = _one_line_error(*run_cli(["maps", "--data", data["plain"], "--out", tmp_path / "m", *flags], capsys)[::2])
    assert says in err


def test_report_end_to_end(data, tmp_path, capsys):
    out = tmp_path / "rep" / "report.html"
    code, stdout, err = run_cli(["report", "--model", data["run"], "--data", data["lots"], data["plain"], "--out",
                                 out, "--low-confidence", "1.0", "--title", "Week <12>", "--no-tta"], capsys)
    assert code == 0, err
    assert "15 wafers in 3 lot(s), 15 flagged" in stdout
    page = out.read_text()
    assert "<title>Week &lt;12&gt;</title>" in page and "http" not in page
    assert page.count('<section class="lot"') == 3 and page.count('<figure class="wafer flagged') == 15
    assert page.count('<img class="cam"') == 15  # every doubtful wafer shows where the model looked
    assert "plain.pkl.xz:" in page                                      # no wafer id: file and row
    assert 'id="lots-table"' in page and 'id="pareto-table"' in page
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert [lot["lot"] for lot in report["lots"]] == ["A", "B/../x", ""]
    assert report["lots"][0]["wafers"] == 10 and len(report["lots"][0]["flagged_wafers"]) == 10
    assert report["model"] == data["run"].name and report["low_confidence"] == 1.0
    # the default threshold flags fewer (or as many) wafers
    code, stdout, err = run_cli(["report", "-m", data["run"], "-d", data["plain"], "-o", tmp_path / "r2.html"],
                                capsys)
    assert code == 0, err and (tmp_path / "r2.json").is_file()


def test_report_bad_input_exits_2_with_one_line(data, tmp_path, capsys):
    import torch

    image_run = tmp_path / "image_run"
    image_run.mkdir()
    torch.save({"format": "adrcs-image-classifier/1"}, image_run / "model.ckpt")
    cases = [(["--model", image_run], "image model"),
             (["--model", tmp_path / "nothing"], "no model.ckpt"),
             (["--model", data["run"], "--out", tmp_path / "r.pdf"], "must be an .html file"),
             (["--model", data["run"], "--low-confidence", "1.5"], "--low-confidence must be between 0 and 1")]
    for flags, says in cases:
        argv = ["report", "--data", data["plain"], "--out", tmp_path / "r.html", *flags]
        err = _one_line_error(*run_cli(argv, capsys)[::2])
        assert says in err, err
    assert not (tmp_path / "r.html").exists()
