"""Training a task's saved model: the engine trains the network (`engine.fit.train_classifier`,
`engine.fit_detector.train_detector`), and these wrap it into the model `predict` loads, saved as
``run_dir/model.ckpt``: a wafer-map `Pipeline` (or the caller's, e.g. an image classifier), a
`DetectorPipeline` (with synthetic defects pasted by the defect GAN when configured)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from adrcs.data.image_set import ImageSet
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.detector_pipeline import DetectorPipeline
from adrcs.engine.fit import train_classifier
from adrcs.engine.fit_detector import train_detector
from adrcs.pipeline import Pipeline
from adrcs.synth.defect_paste import fit_defect_paster


@dataclass
class FitResult:
    """`fit`'s result (the saved model built from the trained network)."""

    pipeline: Any
    run_dir: Path
    train_seconds: float
    best_epoch: int | None
    best_score: float | None
    history_csv: Path | None
    is_global_zero: bool = True  # False in the extra processes of a DDP run


@dataclass
class FitDetectorResult:
    """`fit_detector`'s result (the saved `DetectorPipeline` built from the trained network)."""

    pipeline: Any
    run_dir: Path
    train_seconds: float
    best_epoch: int | None
    best_map_50: float | None
    history_csv: Path | None
    synthetic: dict[str, Any] | None = None


def fit(cfg: dict[str, Any], train: WaferMapSet, val: WaferMapSet, run_dir: str | Path,
        console_print: Callable[[str], None] = print, features=None, tensors: tuple[Any, Any] | None = None,
        pipeline_factory: Callable[[torch.nn.Module], Any] | None = None, unlabeled: WaferMapSet | None = None,
        semi: str = "none", soft_targets=None) -> FitResult:
    """`train_classifier`, then save `model.ckpt` in `run_dir`: a wafer-map `Pipeline` (with the
    feature step of `features`), or `pipeline_factory(net)` when given. `unlabeled` / `semi`: see
    `train_classifier`; `soft_targets`: the teachers' probabilities of the training maps (distillation)."""
    run_dir = Path(run_dir)
    done = train_classifier(cfg, train, val, run_dir, console_print, features=features, tensors=tensors,
                            unlabeled=unlabeled, semi=semi, soft_targets=soft_targets)
    if pipeline_factory is not None:
        pipeline = pipeline_factory(done.net)
    else:
        pipeline = Pipeline(net=done.net, model_name=cfg["model"], model_args=dict(cfg["model_args"]),
                            class_names=list(train.class_names), multilabel=train.multilabel,
                            input_size=int(cfg["input_size"]), tta=bool(cfg["tta"]), features=features,
                            resize=cfg["resize"])
    if done.is_global_zero:
        pipeline.save(run_dir, train_seconds=done.train_seconds, best_epoch=done.best_epoch,
                      best_val_macro_f1=done.best_score, train_class_counts=done.train_class_counts)
    return FitResult(pipeline, run_dir, done.train_seconds, done.best_epoch, done.best_score, done.history_csv,
                     done.is_global_zero)


def fit_detector(cfg: dict[str, Any], train: ImageSet, val: ImageSet, run_dir: str | Path,
                 say: Callable[[str], None] = print) -> FitDetectorResult:
    """`train_detector`, then save the `DetectorPipeline` as `model.ckpt` in `run_dir`."""

    def gan_paster(train_set: ImageSet, size: int, use_template: bool, mode: str, out_dir: Path, seed: int):
        return fit_defect_paster(train_set, size, use_template, mode, dict(cfg["paste_args"] or {}), out_dir,
                                 seed=seed, say=say)

    run_dir = Path(run_dir)
    done = train_detector(cfg, train, val, run_dir, say, paster_factory=gan_paster)
    pipeline = DetectorPipeline(
        net=done.net, detector=str(cfg["detector"]),
        detector_args=dict(cfg["detector_args"] or {}), class_names=list(train.class_names),
        in_chans=done.in_chans, input_size=int(cfg["input_size"]), use_template=done.use_template,
        image_mode=done.image_mode, score_threshold=done.score_threshold)
    pipeline.save(run_dir, train_seconds=float(done.train_seconds), best_epoch=done.best_epoch,
                  best_val_map_50=done.best_score, train_class_counts=train.class_counts("box"))
    return FitDetectorResult(pipeline, run_dir, done.train_seconds, done.best_epoch, done.best_score,
                             done.history_csv, done.synthetic)
