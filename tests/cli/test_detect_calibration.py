"""Detector score calibration end to end: the checkpoint key (and old checkpoints without it), metrics.json's
calibration block and plots/reliability.png after train, ece/mce in evaluate's JSON, raw_score in predict's
CSV/JSON, and the raw-score threshold (the same boxes and mAP with any calibration)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from adrcs.detector_pipeline import DetectorPipeline
from adrcs.inference.box_calibration import BoxScoreCalibration
from adrcs.models.detection import create_detector
from helpers.cli import run_cli
from helpers.images import TINY_INPUT
from helpers.runs import train_detector_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHIFT_DOWN = BoxScoreCalibration(2, a=[1.0, 1.5], b=[-3.0, -2.0], fitted=[True, True])


def _pipeline(calibration: BoxScoreCalibration | None) -> DetectorPipeline:
    """An untrained 2-class detector that reports every box (score_thresh 0)."""
    args = {"score_thresh": 0.0, "detections_per_img": 20}
    torch.manual_seed(0)
    net = create_detector("fcos_r18_slim", num_classes=2, in_chans=1, min_size=TINY_INPUT, max_size=TINY_INPUT,
                          **args)
    return DetectorPipeline(net=net.eval(), detector="fcos_r18_slim", detector_args=args, class_names=["a", "b"],
                            in_chans=1, input_size=TINY_INPUT, use_template=False, score_threshold=0.005,
                            score_calibration=calibration)


def test_checkpoint_round_trip_old_checkpoint_and_raw_threshold(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    pipe = _pipeline(SHIFT_DOWN)
    pipe.save(tmp_path / "new", best_epoch=3)
    ck = torch.load(tmp_path / "new" / "model.ckpt", weights_only=True)
    assert ck["score_calibration"] == SHIFT_DOWN.state()
    back = DetectorPipeline.load(tmp_path / "new")
    assert back.score_calibration.state() == SHIFT_DOWN.state()
    assert "score_calibration" not in back.extra and back.extra["best_epoch"] == 3
    det = back.predict_arrays(img)
    assert len(det["scores"]) > 0
    assert (det["raw_scores"] >= pipe.score_threshold).all()  # the threshold is on the raw score ...
    assert (det["scores"] < pipe.score_threshold).any()       # ... calibrated ones may fall below it
    np.testing.assert_allclose(det["scores"], SHIFT_DOWN.apply(det["raw_scores"], det["labels"]), rtol=1e-5)

    del ck["score_calibration"]  # a checkpoint written before calibration existed
    (tmp_path / "old").mkdir()
    torch.save(ck, tmp_path / "old" / "model.ckpt")
    old = DetectorPipeline.load(tmp_path / "old")
    assert old.score_calibration is None
    plain = old.predict_arrays(img)
    assert "raw_scores" not in plain
    np.testing.assert_array_equal(plain["boxes"], det["boxes"])   # the same boxes kept ...
    np.testing.assert_array_equal(plain["labels"], det["labels"])
    np.testing.assert_allclose(plain["scores"], det["raw_scores"])  # ... with the raw scores
    old.save(tmp_path / "old")
    assert torch.load(tmp_path / "old" / "model.ckpt", weights_only=True)["score_calibration"] is None


def _force(run, calibration: BoxScoreCalibration | None, dest) -> None:
    """A copy of `run`'s checkpoint with `calibration` (None: the key deleted, as in an old checkpoint)."""
    ck = torch.load(run / "model.ckpt", weights_only=True)
    if calibration is None:
        del ck["score_calibration"]
    else:
        ck["score_calibration"] = calibration.state()
    dest.mkdir()
    torch.save(ck, dest / "model.ckpt")


@pytest.mark.slow
def test_train_evaluate_predict_report_calibration(tmp_path, capsys):
    run = train_detector_run(tmp_path, n=6, epochs=1)
    lst = tmp_path / "data" / "trainval.txt"
    state = torch.load(run / "model.ckpt", weights_only=True)["score_calibration"]
    names = DetectorPipeline.load(run).class_names  # DeepPCB's six defect types
    assert state["kind"] == "box_score_calibration" and state["method"] == "platt"
    assert state["num_classes"] == len(names) == 6
    assert sum(state["counts"]) > 0  # fitted on the validation split's boxes
    block = json.loads((run / "metrics.json").read_text())["calibration"]
    assert {"ece_before", "mce_before", "ece", "mce", "per_class", "method", "n_boxes", "fitted_on"} <= set(block)
    assert 0.0 <= block["ece"] <= block["mce"] <= 1.0 and 0.0 <= block["ece_before"] <= 1.0
    assert set(block["per_class"]) == set(names)
    shift_down = BoxScoreCalibration(6, a=[1.0] * 6, b=[-3.0] * 6, fitted=[True] * 6)
    assert (run / "plots" / "reliability.png").stat().st_size > 0

    reports, rows = {}, {}
    for name, cal in (("trained", "keep"), ("shifted", shift_down), ("old", None)):
        model = run
        if cal != "keep":
            _force(run, cal, model := tmp_path / name)
        code, out, err = run_cli(["evaluate", "--model", model, "--data", lst, "--out", tmp_path / f"{name}.json"],
                                 capsys)
        assert code == 0, err
        assert "ECE" in out
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
        assert {"ece", "mce", "ece_before", "mce_before", "calibration"} <= set(reports[name])
        assert (tmp_path / f"{name}_plots" / "reliability.png").is_file()
        code, out, err = run_cli(["predict", "--model", model, "--data", lst, "--out", tmp_path / f"pred_{name}",
                                  "--score-threshold", "0.01", "--no-annotated"], capsys)
        assert code == 0, err
        rows[name] = pd.read_csv(tmp_path / f"pred_{name}" / "predictions.csv")
        doc = json.loads((tmp_path / f"pred_{name}" / "predictions.json").read_text())
        assert all("raw_score" in b for im in doc["images"] for b in im["boxes"])
        assert len(rows[name]) == doc["n_boxes"] > 0
    assert "raw_score" in rows["old"].columns
    assert (rows["old"]["score"] == rows["old"]["raw_score"]).all()  # no calibration: raw = shown
    assert not reports["old"]["calibration"]["calibrated"]
    assert reports["old"]["ece"] == reports["old"]["ece_before"]
    key = ["image", "class", "x1", "y1", "x2", "y2", "raw_score"]
    old, shifted = (rows[n].sort_values(key).reset_index(drop=True) for n in ("old", "shifted"))
    pd.testing.assert_frame_equal(old[key], shifted[key])  # same boxes: the threshold is on the raw score
    assert (shifted["score"] < shifted["raw_score"]).all()
    for k in ("map_50", "map_50_95", "precision", "recall", "f1", "ece_before"):
        assert reports["shifted"][k] == pytest.approx(reports["old"][k]), k
    assert reports["shifted"]["ece"] != pytest.approx(reports["shifted"]["ece_before"])
