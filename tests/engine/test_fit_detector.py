"""Detection end to end: fit_detector / train_detection run folder, DetectorPipeline save/load/predict,
predict_detection output in original pixels, evaluate_detection, errors.

One tiny DeepPCB-style dataset (`helpers.images.make_deeppcb`: 96 px grey images with bright "open" and dark
"short" rectangles, templates, a trainval.txt list) is trained on once per module (input 64 px,
so predictions must be scaled back to the 96 px images).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers.images import DEEPPCB_SIDE, TINY_INPUT, make_deeppcb
from helpers.images import tiny_detect_cfg as tiny_cfg
from PIL import Image

from adrcs.api_images import (evaluate_detection, is_detector_run, load_detection_data, predict_detection,
                              train_detection)
from adrcs.data.image_formats import load_images
from adrcs.data.image_set import ImageSet
from adrcs.detector_pipeline import DETECTOR_FORMAT, DetectorPipeline, prepare_input
from adrcs.engine.detection_data import DetectionDataset
from adrcs.engine.fit_detector import resolve_use_template
from adrcs.tasks.fitting import fit_detector
from adrcs.errors import InputError

SIDE, INPUT = DEEPPCB_SIDE, TINY_INPUT  # image side on disk, the network's input side
REPORT_KEYS = {"map_50", "map_50_95", "per_class_ap", "precision", "recall", "f1", "per_class"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """One training run: {"list": list file, "run": run folder, "report": returned report, "lines": printed}."""
    root = tmp_path_factory.mktemp("detect")
    lst = make_deeppcb(root / "data")
    lines: list[str] = []
    report = train_detection(tiny_cfg(), lst, out=root / "run", say=lines.append)
    return {"list": lst, "run": root / "run", "report": report, "lines": lines, "root": root}


def _val_set(run: dict) -> ImageSet:
    full = load_images(run["list"])
    val_paths = set(json.loads((run["run"] / "split.json").read_text())["val"])
    return full.subset([i for i, p in enumerate(full.paths) if str(p) in val_paths])


# ---------------------------------------------------------------- train


@pytest.mark.slow
def test_train_detection_writes_run_folder(run):
    out = run["run"]
    for name in ("model.ckpt", "config.yaml", "split.json", "metrics.json", "logs/metrics.csv",
                 "plots/training_curves.png", "plots/per_class_ap.png"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()
    assert (out / "logs" / "tb").is_dir()
    metrics = json.loads((out / "metrics.json").read_text())
    assert REPORT_KEYS <= set(metrics["val"])
    assert {"train_seconds", "best_epoch", "n_train", "n_val", "detector", "use_template"} <= set(metrics)
    assert metrics["n_train"] == 4 and metrics["n_val"] == 2
    assert metrics["use_template"] is True and metrics["detector"] == "fcos_r18_slim"
    assert 1 <= metrics["best_epoch"] <= 5
    assert metrics["val"] == run["report"]
    assert metrics["val"]["per_class_ap"]["mousebite"] is None  # a DeepPCB class without ground truth
    split = json.loads((out / "split.json").read_text())
    assert len(split["train"]) == 4 and len(split["val"]) == 2 and not set(split["train"]) & set(split["val"])
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["input_size"] == INPUT and cfg["data"] == str(run["list"])
    assert sorted(p.name for p in (out / "plots" / "val_examples").iterdir()) == sorted(
        Path(p).stem + ".png" for p in split["val"])
    epochs = [ln for ln in run["lines"] if ln.startswith("epoch ")]
    assert len(epochs) == 5 and "val_map_50" in epochs[0] and "val_f1" in epochs[0]
    history = pd.read_csv(out / "logs" / "metrics.csv")
    assert history["val_map_50"].notna().sum() == 5
    # the saved weights are the best epoch's: the report recomputed on the val images (in original
    # pixels) agrees with the val_map_50 Lightning logged for that epoch (in resized pixels)
    best = history["val_map_50"].dropna().max()
    assert (metrics["val"]["map_50"] or 0.0) == pytest.approx(best, rel=1e-3, abs=1e-6)


@pytest.mark.slow
def test_checkpoint_holds_a_detector(run):
    ck = torch.load(run["run"] / "model.ckpt", map_location="cpu", weights_only=True)
    assert ck["format"] == DETECTOR_FORMAT
    assert ck["in_chans"] == 3 and ck["use_template"] is True and ck["input_size"] == INPUT
    assert ck["class_names"][:2] == ["open", "short"] and ck["best_epoch"] >= 1 and ck["train_seconds"] > 0
    assert is_detector_run(run["run"]) and is_detector_run(run["run"] / "model.ckpt")


@pytest.mark.slow
def test_load_save_round_trip_predicts_identically(run, tmp_path):
    pipe = DetectorPipeline.load(run["run"])
    val = _val_set(run)
    a = pipe.predict(val, batch_size=2, score_threshold=0.0)
    pipe.save(tmp_path / "copy", note="copied")
    again = DetectorPipeline.load(tmp_path / "copy")
    assert again.extra["note"] == "copied" and again.class_names == pipe.class_names
    b = again.predict(val, batch_size=1, score_threshold=0.0)  # batch size does not change anything
    assert len(a) == len(b) == 2
    for p, q in zip(a, b):
        np.testing.assert_allclose(p["boxes"], q["boxes"], atol=1e-4)
        np.testing.assert_array_equal(p["labels"], q["labels"])
        np.testing.assert_allclose(p["scores"], q["scores"], atol=1e-5)
        assert p["boxes"].dtype == np.float32 and p["labels"].dtype == np.int64
    # predict_arrays (the REST path) gives the same as predict for one image
    one = again.predict_arrays(val.read_image(0), val.read_template(0), score_threshold=0.0)
    np.testing.assert_allclose(one["boxes"], a[0]["boxes"], atol=1e-4)
    rgb = np.repeat(val.read_image(0)[..., None], 3, axis=-1)  # colour input is converted to the model's mode
    two = again.predict_arrays(rgb, val.read_template(0), score_threshold=0.0)
    np.testing.assert_allclose(two["scores"], a[0]["scores"], atol=1e-5)
    with pytest.raises(InputError, match="template"):
        again.predict_arrays(val.read_image(0))


@pytest.mark.slow
def test_predict_detection_writes_folder_in_original_pixels(run, tmp_path):
    out = predict_detection(run["run"], run["list"], out=tmp_path / "pred", score_threshold=0.0, say=lambda m: None)
    doc = json.loads((out / "predictions.json").read_text())
    assert doc["n_images"] == 6 and len(doc["images"]) == 6 and doc["score_threshold"] == 0.0
    coords = np.array([[b["x1"], b["y1"], b["x2"], b["y2"]] for im in doc["images"] for b in im["boxes"]])
    assert len(coords) > 0
    assert coords.min() >= 0 and coords.max() <= SIDE
    assert coords.max() > INPUT  # boxes are in the 96 px images' pixels, not the 64 px network input
    rows = pd.read_csv(out / "predictions.csv")
    assert list(rows.columns) == ["image", "class", "score", "x1", "y1", "x2", "y2", "raw_score"] and len(rows) == len(coords)
    pngs = sorted(p.name for p in (out / "annotated").iterdir())
    assert pngs == sorted(f"{i:04d}_test.png" for i in range(6))
    with Image.open(out / "annotated" / pngs[0]) as im:
        assert im.size == (SIDE, SIDE) and im.mode == "RGB"


@pytest.mark.slow
def test_predict_on_plain_images_and_one_file(run, tmp_path):
    src = run["list"].parent / "imgs"
    folder = tmp_path / "new"
    folder.mkdir()
    for name in ("0000_test.jpg", "0000_temp.jpg", "0001_test.jpg", "0001_temp.jpg"):
        shutil.copy(src / name, folder / name)
    plain = load_detection_data(folder, allow_plain=True)
    assert len(plain) == 2 and all(t is not None for t in plain.templates) and not plain.has_boxes
    out = predict_detection(run["run"], folder, out=tmp_path / "p1", say=lambda m: None)
    doc = json.loads((out / "predictions.json").read_text())
    assert [Path(im["path"]).name for im in doc["images"]] == ["0000_test.jpg", "0001_test.jpg"]
    assert (out / "predictions.csv").is_file() and len(list((out / "annotated").glob("*.png"))) == 2
    out = predict_detection(run["run"], folder / "0001_test.jpg", out=tmp_path / "p2", say=lambda m: None)
    doc = json.loads((out / "predictions.json").read_text())
    assert len(doc["images"]) == 1 and doc["images"][0]["template"].endswith("0001_temp.jpg")
    (folder / "0000_temp.jpg").unlink()  # the model uses templates: an image without one is refused
    with pytest.raises(InputError, match="template"):
        predict_detection(run["run"], folder, out=tmp_path / "p3", say=lambda m: None)


@pytest.mark.slow
def test_evaluate_detection(run, tmp_path):
    val = _val_set(run)
    rep = evaluate_detection(run["run"], val, out=tmp_path / "ev" / "eval.json", say=lambda m: None)
    assert REPORT_KEYS | {"model_dir", "data"} <= set(rep)
    saved = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert saved["map_50"] == rep["map_50"] and (tmp_path / "ev" / "eval_plots" / "per_class_ap.png").is_file()
    metrics = json.loads((run["run"] / "metrics.json").read_text())["val"]
    assert rep["map_50"] == metrics["map_50"] and rep["f1"] == metrics["f1"]  # the same model, the same images
    rep = evaluate_detection(run["run"], run["list"], say=lambda m: None)  # default: MODEL/evaluation.json
    assert rep["n_images"] == 6 and (run["run"] / "evaluation.json").is_file()
    odd = val.subset([0, 1])
    odd.class_names = ["scratch"] + odd.class_names[1:]  # class 0 ("open" boxes) renamed: the model lacks it
    with pytest.raises(InputError, match="scratch"):
        evaluate_detection(run["run"], odd, say=lambda m: None)


@pytest.mark.slow
def test_fit_detector_without_template_stops_early(tmp_path):
    ds = load_images(make_deeppcb(tmp_path / "d", n=4, seed=1))
    train, val = ds.subset([0, 1, 2]), ds.subset([3])
    lines: list[str] = []
    res = fit_detector(tiny_cfg(use_template=False, augment="none", epochs=10, early_stopping_patience=1, lr=1e-4),
                       train, val, tmp_path / "run", say=lines.append)
    assert res.pipeline.in_chans == 1 and res.pipeline.use_template is False
    assert 2 <= len(lines) < 10  # early stopping: mAP stays flat at a tiny learning rate
    assert res.best_epoch is not None and res.history_csv.is_file() and res.train_seconds > 0
    assert not (tmp_path / "run" / "checkpoints").exists()
    pipe = DetectorPipeline.load(tmp_path / "run")
    assert pipe.use_template is False and pipe.score_threshold == 0.3
    assert len(pipe.predict(val.subset([0]))) == 1


# ---------------------------------------------------------------- mapping, preprocessing


class _FixedNet(torch.nn.Module):
    """Stands in for a detector: the same detections for every input, in input pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, ...]] = []

    def forward(self, images):
        self.seen += [tuple(x.shape) for x in images]
        det = {"boxes": torch.tensor([[16.0, 16.0, 48.0, 48.0], [0.0, 0.0, 64.0, 64.0], [8.0, 8.0, 24.0, 24.0],
                                      [60.0, 60.0, 70.0, 70.0]]),
               "labels": torch.tensor([1, 0, 2, 2]), "scores": torch.tensor([0.9, 0.99, 0.3, 0.8])}
        return [det for _ in images]


def test_boxes_mapped_back_to_each_images_own_size(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.full((64, 96), 100, np.uint8)).save(folder / "wide.png")   # 96 wide, 64 high
    Image.fromarray(np.full((128, 32), 100, np.uint8)).save(folder / "tall.png")  # 32 wide, 128 high
    ds = load_detection_data(folder, allow_plain=True)
    net = _FixedNet()
    pipe = DetectorPipeline(net=net, detector="fake", detector_args={}, class_names=["a", "b"], in_chans=1,
                            input_size=64, use_template=False, score_threshold=0.5)
    tall, wide = pipe.predict(ds)  # sorted by name
    assert net.seen == [(1, 64, 64), (1, 64, 64)]
    # background (label 0) dropped, score 0.3 below the threshold, labels 0-based, the last box clipped
    np.testing.assert_array_equal(wide["labels"], [0, 1])
    np.testing.assert_allclose(wide["boxes"], [[24, 16, 72, 48], [90, 60, 96, 64]])
    np.testing.assert_allclose(tall["boxes"], [[8, 32, 24, 96], [30, 120, 32, 128]])
    assert (wide["width"], wide["height"]) == (96, 64)
    one = pipe.predict_arrays(np.full((64, 96, 3), 50, np.uint8), score_threshold=0.0)
    np.testing.assert_allclose(one["boxes"][0], [24, 16, 72, 48])
    assert len(one["labels"]) == 3 and net.seen[-1] == (1, 64, 64)


def test_prepare_input_matches_training_dataset(tmp_path):
    lst = make_deeppcb(tmp_path / "d", n=1)
    ds = load_images(lst)
    x_train, _ = DetectionDataset(ds, size=INPUT, use_template=True)[0]
    x = prepare_input(ds.read_image(0), ds.read_template(0), INPUT, True)
    assert x.shape == (3, INPUT, INPUT)
    torch.testing.assert_close(x, x_train)
    torch.testing.assert_close(prepare_input(ds.read_image(0), None, INPUT, False),
                               DetectionDataset(ds, size=INPUT)[0][0])


# ---------------------------------------------------------------- errors


def test_bad_model_dirs(tmp_path):
    with pytest.raises(InputError, match="no model.ckpt") as e:
        DetectorPipeline.load(tmp_path / "nowhere")
    assert "\n" not in str(e.value)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read the checkpoint"):
        DetectorPipeline.load(junk)
    wafer = tmp_path / "wafer"
    wafer.mkdir()
    torch.save({"format": "adrcs-wafer-classifier/1", "state_dict": {}}, wafer / "model.ckpt")
    with pytest.raises(InputError, match="not an ADRCS detector") as e:
        DetectorPipeline.load(wafer)
    assert "\n" not in str(e.value)
    assert not any(is_detector_run(p) for p in (tmp_path / "nowhere", junk, wafer))


def test_data_errors(tmp_path):
    lst = make_deeppcb(tmp_path / "d", n=4)
    val = load_images(lst).subset([0])
    val.class_names = ["open", "short", "scratch"]  # a val class the training data lacks
    val.box_labels = [np.full_like(b, 2) for b in val.box_labels]
    with pytest.raises(InputError, match="scratch"):
        train_detection(tiny_cfg(), lst, val=val, out=tmp_path / "r1", say=lambda m: None)
    folders = tmp_path / "cls" / "good"
    folders.mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folders / "a.png")
    with pytest.raises(InputError, match="no box annotations"):
        train_detection(tiny_cfg(), tmp_path / "cls", out=tmp_path / "r2", say=lambda m: None)
    ds = load_images(lst)
    assert resolve_use_template("auto", ds) is True and resolve_use_template(False, ds) is False
    no_temp = ds.subset([0, 1])
    no_temp.templates = [None, no_temp.templates[1]]
    assert resolve_use_template("auto", no_temp) is False
    with pytest.raises(InputError, match="no template"):
        resolve_use_template("true", no_temp)
    with pytest.raises(InputError, match="use_template"):
        resolve_use_template("maybe", ds)


@pytest.mark.slow
def test_auto_score_threshold_is_chosen_on_val_and_saved(tmp_path):
    lst = make_deeppcb(tmp_path / "data")
    lines: list[str] = []
    train_detection(tiny_cfg(epochs=2, score_threshold="auto"), lst, out=tmp_path / "run", say=lines.append)
    thr = DetectorPipeline.load(tmp_path / "run").score_threshold
    assert 0.1 <= thr <= 0.9 and any(f"score threshold: {thr:g}" in s for s in lines)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["val"]["score_threshold"] == thr
    with pytest.raises(InputError, match="score.threshold"):
        train_detection(tiny_cfg(epochs=1, score_threshold="high"), lst, out=tmp_path / "bad", say=lines.append)
