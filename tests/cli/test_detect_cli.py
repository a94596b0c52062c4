"""Detection through the documented commands: train --config configs/deeppcb_detect.yaml --data LIST,
evaluate (report keys), predict (JSON/CSV + annotated PNGs); VOC with --images/--annotations."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers.cli import run_cli
from helpers.images import make_deeppcb

REPO = Path(__file__).resolve().parents[2]
QUICK = ["--input-size", "64", "--epochs", "2", "--batch-size", "2", "--device", "cpu", "--progress", "false",
         "--val-fraction", "0.34"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_deeppcb_train_evaluate_predict(tmp_path, capsys):
    lst = make_deeppcb(tmp_path / "data")
    code, out, err = run_cli(["train", "--config", REPO / "configs" / "deeppcb_detect.yaml", "--data", lst,
                              "--out", tmp_path / "run", *QUICK], capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "model.ckpt").is_file()
    code, out, err = run_cli(["evaluate", "--model", tmp_path / "run", "--data", lst, "--out", tmp_path / "r.json"],
                             capsys)
    assert code == 0, err
    rep = json.loads((tmp_path / "r.json").read_text())
    assert {"map_50", "map_50_95", "per_class_ap", "precision", "recall", "f1"} <= set(rep)
    code, out, err = run_cli(["predict", "--model", tmp_path / "run", "--data", lst, "--out", tmp_path / "pred",
                              "--score-threshold", "0.0"], capsys)
    assert code == 0, err
    rows = pd.read_csv(tmp_path / "pred" / "predictions.csv")
    assert {"class", "score", "x1", "y1", "x2", "y2"} <= set(rows.columns)
    assert len(list((tmp_path / "pred" / "annotated").glob("*.png"))) == 6


@pytest.mark.slow
def test_voc_with_named_folders(tmp_path, capsys):
    from PIL import Image

    imgs, anns = tmp_path / "pics", tmp_path / "xml"
    imgs.mkdir()
    anns.mkdir()
    for i in range(4):
        a = torch.full((64, 64), 120, dtype=torch.uint8)
        a[10:30, 10 + i:30 + i] = 240
        Image.fromarray(a.numpy()).save(imgs / f"p{i}.png")
        (anns / f"p{i}.xml").write_text(
            f"<annotation><filename>p{i}.png</filename><size><width>64</width><height>64</height></size>"
            f"<object><name>crack</name><bndbox><xmin>{10 + i}</xmin><ymin>10</ymin><xmax>{30 + i}</xmax>"
            "<ymax>30</ymax></bndbox></object></annotation>")
    code, out, err = run_cli(["train", "--config", REPO / "configs" / "voc_detect.yaml", "--data", tmp_path,
                              "--images", imgs, "--annotations", anns, "--out", tmp_path / "run", *QUICK,
                              "--val-fraction", "0.25"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["evaluate", "--model", tmp_path / "run", "--data", tmp_path, "--images", imgs,
                              "--annotations", anns, "--out", tmp_path / "r.json"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["per_class_ap"].keys() == {"crack"}
