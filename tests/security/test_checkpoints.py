"""Saved models cannot run code: every checkpoint reader uses ``torch.load(weights_only=True)``.

A run folder copied from elsewhere may hold a ``model.ckpt`` whose pickle calls ``os.system``; each
loader must refuse it with one line naming the file, and nothing may run (a marker file proves it).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from adrcs.errors import InputError


class _RunsCode:
    """Pickles as a call of ``os.system(command)``: what a hostile checkpoint would hold."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _hostile_checkpoint(folder: Path, marker: Path, fmt: str, name: str = "model.ckpt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    torch.save({"format": fmt, "payload": _RunsCode(f"touch {marker}")}, path)
    return path


def _loaders():
    from adrcs.detector_pipeline import DETECTOR_FORMAT, DetectorPipeline
    from adrcs.image_classifier_pipeline import IMAGE_CLASSIFIER_FORMAT, ImageClassifierPipeline
    from adrcs.pipeline import CHECKPOINT_FORMAT, Pipeline
    from adrcs.serve.model_host import load_pipeline
    from adrcs.synth.base import FORMAT as SYNTH_FORMAT, load_synthesizer
    from adrcs.synth.defect_gan import FORMAT as DEFECT_GAN_FORMAT, DefectGAN

    return [
        ("wafer", CHECKPOINT_FORMAT, Pipeline.load, "model.ckpt"),
        ("detector", DETECTOR_FORMAT, DetectorPipeline.load, "model.ckpt"),
        ("image_classifier", IMAGE_CLASSIFIER_FORMAT, ImageClassifierPipeline.load, "model.ckpt"),
        ("service_wafer", CHECKPOINT_FORMAT, lambda p: load_pipeline("wafer", p), "model.ckpt"),
        ("service_detect", DETECTOR_FORMAT, lambda p: load_pipeline("detect", p), "model.ckpt"),
        ("synthesizer", SYNTH_FORMAT, load_synthesizer, "synthesizer.pt"),
        ("defect_gan", DEFECT_GAN_FORMAT, DefectGAN.load, "defect_gan.pt"),
    ]


@pytest.mark.parametrize("index", range(7))
def test_hostile_checkpoint_is_refused_and_runs_nothing(tmp_path: Path, index: int) -> None:
    name, fmt, load, file_name = _loaders()[index]
    marker = tmp_path / f"pwned-{name}"
    run = tmp_path / "run"
    _hostile_checkpoint(run, marker, fmt, file_name)
    with pytest.raises(InputError) as err:
        load(run)
    assert not marker.exists(), f"{name}: loading the checkpoint ran code"
    msg = str(err.value)
    assert file_name in msg and "\n" not in msg


def test_run_kind_sniffers_run_nothing(tmp_path: Path) -> None:
    from adrcs.api_image_classify import run_kind
    from adrcs.api_images import is_detector_run

    marker = tmp_path / "pwned"
    _hostile_checkpoint(tmp_path / "run", marker, "adrcs-detector/1")
    assert run_kind(tmp_path / "run") is None
    assert is_detector_run(tmp_path / "run") is False
    assert not marker.exists()


def test_feature_cache_ignores_a_hostile_entry(tmp_path: Path) -> None:
    from adrcs.features.cache import FeatureCache

    cache = FeatureCache(tmp_path / "cache")
    cache.put("sbae", "k1", {"w": torch.ones(2)})
    assert torch.equal(cache.get("sbae", "k1")["w"], torch.ones(2))
    marker = tmp_path / "pwned"
    torch.save({"payload": _RunsCode(f"touch {marker}")}, cache._path("sbae", "k2"))
    assert cache.get("sbae", "k2") is None  # refitted, never executed
    assert not marker.exists()


def test_saved_wafer_model_round_trips_with_weights_only(tmp_path: Path) -> None:
    """A model saved as `adrcs train` saves it (format adrcs-wafer-classifier/1) loads under weights_only."""
    import numpy as np

    from adrcs.models import create_model
    from adrcs.pipeline import Pipeline

    names = ["Center", "Donut", "none"]
    net = create_model("cnn", num_classes=len(names), multilabel=False)
    pipe = Pipeline(net=net.eval(), model_name="cnn", model_args={}, class_names=names, multilabel=False,
                    input_size=32)
    (tmp_path / "run").mkdir()
    pipe.save(tmp_path / "run")
    back = Pipeline.load(tmp_path / "run")
    maps = [np.random.default_rng(0).integers(0, 3, (30, 28)).astype(np.uint8)]
    np.testing.assert_allclose(back.predict_proba(maps), pipe.predict_proba(maps), atol=1e-6)
