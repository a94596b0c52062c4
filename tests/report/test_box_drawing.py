"""adrcs.report.boxes: annotated detection PNGs, predictions.json / .csv, the per-class AP chart."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from PIL import Image

from adrcs.data.image_formats import plain
from adrcs.data.image_set import ImageSet
from adrcs.report.boxes import class_colour, draw_detections, plot_per_class_ap, write_predictions

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ["open", "short"]


def _read(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGB"
        return np.asarray(im)


def test_draw_detections_changes_pixels_on_the_box_only(tmp_path):
    img = np.full((80, 100), 128, np.uint8)
    path = draw_detections(img, [[20, 30, 60, 70]], [1], [0.93], NAMES, tmp_path / "a" / "det.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    out = _read(path)
    assert out.shape == (80, 100, 3)
    colour = np.array(class_colour(1))
    assert (out[50, 20] == colour).all() and (out[69, 40] == colour).all()  # left and bottom edges
    assert (out[50, 40] == 128).all()  # inside the box: untouched
    assert (out[5, 90] == 128).all() and (out[75, 5] == 128).all()  # far away: untouched
    assert (out[20:30, 20:60] != 128).any()  # the "short 0.93" tag above the box


def test_draw_detections_ground_truth_and_rgb(tmp_path):
    img = np.zeros((64, 64, 3), np.uint8)
    path = draw_detections(img, np.zeros((0, 4)), [], [], NAMES, tmp_path / "gt.png",
                           gt_boxes=[[10, 10, 50, 50]], gt_labels=[0])
    out = _read(path)
    top = out[10, 10:50]
    assert (top == 255).all(axis=1).any() and (top == 0).all(axis=1).any()  # dashed white / black
    assert (out[30, 30] == 0).all()
    draw_detections(img, [[0, 0, 64, 64]], [0], None, NAMES, tmp_path / "noscore.png")  # scores optional
    assert (_read(tmp_path / "noscore.png")[32, 0] == class_colour(0)).all()


def test_write_predictions(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "other").mkdir(parents=True)
    Image.fromarray(np.full((40, 60), 90, np.uint8)).save(folder / "a_test.png")
    Image.fromarray(np.full((40, 60), 90, np.uint8)).save(folder / "a_temp.png")
    Image.fromarray(np.full((30, 30), 90, np.uint8)).save(folder / "b.png")
    ds = plain.read(folder)
    assert [p.name for p in ds.paths] == ["a_test.png", "b.png"] and ds.templates[0].name == "a_temp.png"
    preds = [{"boxes": np.array([[1, 2, 10, 20], [5, 5, 30, 35]], np.float32), "labels": np.array([0, 1]),
              "scores": np.array([0.6, 0.9], np.float32), "width": 60, "height": 40},
             {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64),
              "scores": np.zeros(0, np.float32), "width": 30, "height": 30}]
    json_path, csv_path = write_predictions(preds, ds, NAMES, tmp_path / "out", extra={"score_threshold": 0.5})
    doc = json.loads(json_path.read_text())
    assert doc["n_images"] == 2 and doc["n_boxes"] == 2 and doc["score_threshold"] == 0.5
    first, second = doc["images"]
    assert first["boxes"][0] == {"class": "short", "score": 0.9, "x1": 5.0, "y1": 5.0, "x2": 30.0, "y2": 35.0}
    assert first["template"].endswith("a_temp.png") and second["boxes"] == []
    rows = pd.read_csv(csv_path)
    assert len(rows) == 2 and set(rows["class"]) == {"open", "short"} and rows["image"].str.endswith("a_test.png").all()
    assert sorted(p.name for p in (tmp_path / "out" / "annotated").iterdir()) == ["a_test.png", "b.png"]
    assert first["annotated"] == "annotated/a_test.png"
    # images of one stem in two folders get distinct PNGs
    Image.fromarray(np.full((30, 30), 90, np.uint8)).save(folder / "other" / "b.png")
    both = ImageSet.concat([ds.subset([1]), plain.read(folder / "other")])
    write_predictions(preds[1:] * 2, both, NAMES, tmp_path / "out2")
    assert sorted(p.name for p in (tmp_path / "out2" / "annotated").iterdir()) == ["b.png", "b_2.png"]


def test_per_class_ap_chart(tmp_path):
    rep = {"per_class_ap": {"open": 0.8, "short": None, "spur": 0.1}, "map_50": 0.45}
    path = plot_per_class_ap(rep, tmp_path / "c" / "ap.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
