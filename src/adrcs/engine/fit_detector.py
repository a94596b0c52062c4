"""`fit_detector`: train a defect detector with PyTorch Lightning and write the run folder.

The detection twin of `engine/fit.py`: the model is selected on validation mAP@0.5
(`val_map_50`), logs go to ``run_dir/logs`` (CSV ``metrics.csv`` + TensorBoard ``logs/tb``), one
line per epoch is printed, and the best weights end up in ``run_dir/model.ckpt``
(`DetectorPipeline`); Lightning's own checkpoints are removed afterwards.
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader

from adrcs.checkpoint import restore_best
from adrcs.data.image_set import ImageSet
from adrcs.detector_pipeline import DetectorPipeline, resolve_image_mode
from adrcs.engine.detection_data import DetectionDataset, detection_collate
from adrcs.engine.detector_module import DetectorModule
from adrcs.engine.fit import _quiet_lightning, resolve_accelerator
from adrcs.errors import InputError
from adrcs.models.detection import DEFAULT_DETECTOR

MONITOR = "val_map_50"
AUGMENT_ON = ("flips", "dihedral", "true", "yes", "on")
AUGMENT_OFF = ("none", "false", "no", "off")


class DetectionEpochSummary(Callback):
    """One printed line per epoch: train loss, val mAP@0.5, val F1, seconds."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._t0 = self._t_epoch = time.time()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t_epoch = time.time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # runs after this epoch's validation
        if not trainer.is_global_zero:
            return
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        now = time.time()
        self._say(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  "
            f"train_loss {m.get('train_loss', float('nan')):.4f}  val_map_50 {m.get('val_map_50', float('nan')):.4f}  "
            f"val_f1 {m.get('val_f1', float('nan')):.4f}  ({now - self._t_epoch:.1f}s, {now - self._t0:.0f}s total)"
        )


@dataclass
class FitDetectorResult:
    pipeline: DetectorPipeline
    run_dir: Path
    train_seconds: float
    best_epoch: int | None
    best_map_50: float | None
    history_csv: Path | None
    synthetic: dict[str, Any] | None = None


def resolve_use_template(setting: Any, *sets: ImageSet) -> bool:
    """The `use_template` setting as a bool: "auto" is True when every image of `sets` has a template.

    True (or "true", "yes", ...) with an image lacking a template raises InputError naming it.
    """
    key = str(setting).strip().lower()
    if key == "auto":
        return all(t is not None for s in sets for t in s.templates) and any(len(s) for s in sets)
    if key in ("true", "1", "yes", "on"):
        for s in sets:
            for p, t in zip(s.paths, s.templates):
                if t is None:
                    raise InputError(p, "use_template is true but this image has no template (*_temp image)")
        return True
    if key in ("false", "0", "no", "off"):
        return False
    raise InputError(None, f"use_template must be auto, true or false, got {setting!r}")


def resolve_score_threshold(setting: Any) -> float:
    """The score threshold used while training: a number in [0, 1], or 0.5 for "auto" (which
    `train_detection` then replaces by the best-F1 threshold on the validation split)."""
    if str(setting).strip().lower() == "auto":
        return 0.5
    try:
        t = float(setting)
    except (TypeError, ValueError):
        raise InputError(None, f"score_threshold must be a number in [0, 1] or 'auto', got {setting!r}")
    if not 0.0 <= t <= 1.0:
        raise InputError(None, f"score_threshold must be in [0, 1], got {t}")
    return t


def resolve_augment(setting: Any) -> bool:
    """Detection augmentation on/off: "flips" (flips + shifts + brightness/contrast) or "none"."""
    key = str(setting).strip().lower()
    if key in AUGMENT_ON:
        return True
    if key in AUGMENT_OFF:
        return False
    raise InputError(None, f"augment for detection must be 'flips' or 'none', got {setting!r}")


def fit_detector(cfg: dict[str, Any], train: ImageSet, val: ImageSet, run_dir: str | Path,
                 say: Callable[[str], None] = print) -> FitDetectorResult:
    """Train `cfg['detector']` on `train`, select on `val` mAP@0.5, save `model.ckpt` in `run_dir`.

    `train` and `val` share one class list (box labels index `train.class_names`). Reads the cfg
    keys listed in the module docs of `adrcs.api_images` (detector, input_size, use_template, ...).
    """
    _quiet_lightning()
    if len(train) == 0 or len(val) == 0:
        raise InputError(None, f"detection training needs images in train and val (got {len(train)} and {len(val)})")
    if list(val.class_names) != list(train.class_names):
        raise InputError(None, "train and val class lists differ: "
                         f"{train.class_names} vs {val.class_names}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed = int(cfg.get("seed", 0))
    L.seed_everything(seed, workers=True, verbose=False)

    detector = str(cfg.get("detector", DEFAULT_DETECTOR))
    detector_args = dict(cfg.get("detector_args") or {})
    size = int(cfg.get("input_size", 640))
    if size < 32:
        raise InputError(None, f"input_size must be at least 32 pixels for a detector, got {size}")
    mode = resolve_image_mode(cfg.get("image_mode", "L"))
    use_template = resolve_use_template(cfg.get("use_template", "auto"), train, val)
    augment = resolve_augment(cfg.get("augment", "flips"))
    score_threshold = resolve_score_threshold(cfg.get("score_threshold", 0.5))
    num_workers = int(cfg.get("num_workers", 0))
    crop = int(cfg.get("train_crop") or 0) or None
    if crop is not None and not 32 <= crop:
        raise InputError(None, f"train_crop must be at least 32 pixels (or null), got {crop}")

    paster, synthetic = None, None
    paste = str(cfg.get("paste_defects", "none")).strip().lower()
    if paste == "gan":  # fitted on the training split only
        from adrcs.synth.defect_paste import fit_defect_paster

        paster, synthetic = fit_defect_paster(train, size, use_template, mode, dict(cfg.get("paste_args") or {}),
                                              run_dir / "synth" / "defect_gan", seed=seed, say=say)
    elif paste not in ("none", "false", "off"):
        raise InputError(None, f"paste_defects must be 'gan' or 'none', got {cfg.get('paste_defects')!r}")
    train_ds = DetectionDataset(train, size=size, use_template=use_template, augment=augment, seed=seed, mode=mode,
                                crop=crop, paster=paster)
    val_ds = DetectionDataset(val, size=size, use_template=use_template, augment=False, seed=seed, mode=mode)
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_ds, batch_size=int(cfg.get("batch_size", 4)), shuffle=True,
                              collate_fn=detection_collate, num_workers=num_workers, generator=generator,
                              persistent_workers=num_workers > 0)
    val_loader = DataLoader(val_ds, batch_size=int(cfg.get("eval_batch_size", 4)), shuffle=False,
                            collate_fn=detection_collate, num_workers=num_workers,
                            persistent_workers=num_workers > 0)
    scheduler = str(cfg.get("scheduler", "cosine"))
    try:
        module = DetectorModule(
            detector=detector, num_classes=len(train.class_names), class_names=list(train.class_names),
            in_chans=train_ds.in_chans, min_size=size, max_size=size, detector_args=detector_args,
            optimizer=str(cfg.get("optimizer", "adamw")), lr=float(cfg.get("lr", 1e-3)),
            weight_decay=float(cfg.get("weight_decay", 1e-4)), scheduler=scheduler,
            score_threshold=score_threshold,
        )
    except (ValueError, TypeError) as e:  # unknown detector / optimizer / scheduler, bad detector_args
        raise InputError(None, f"cannot build detector {detector!r}: {' '.join(str(e).split())}") from e

    if crop is not None:  # crops are fed as they are; eval still resizes whole images to input_size
        module.net.transform._skip_resize = True
    ckpt_dir = run_dir / "checkpoints"
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=MONITOR, mode="max",
                                 save_last=False, save_top_k=1, auto_insert_metric_name=False)
    callbacks: list[Callback] = [checkpoint, DetectionEpochSummary(say)]
    patience = int(cfg.get("early_stopping_patience", 0) or 0)
    if patience > 0:
        callbacks.append(EarlyStopping(monitor=MONITOR, mode="max", patience=patience))
    if scheduler != "none":
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    loggers = [CSVLogger(run_dir, name="logs", version=""), TensorBoardLogger(run_dir, name="logs", version="tb")]
    show_bar = bool(cfg.get("progress", True)) and sys.stderr.isatty()
    trainer = L.Trainer(
        max_epochs=int(cfg.get("epochs", 30)), accelerator=resolve_accelerator(str(cfg.get("device", "auto"))),
        devices=1, precision=cfg.get("precision", "32-true"), callbacks=callbacks, logger=loggers,
        enable_progress_bar=show_bar, enable_model_summary=False,
        log_every_n_steps=max(1, min(10, len(train_loader))), deterministic=False, default_root_dir=run_dir,
        num_sanity_val_steps=0,
    )
    t0 = time.time()
    trainer.fit(module, train_loader, val_loader)
    seconds = time.time() - t0

    best_map = restore_best(module, checkpoint)
    net = module.net.cpu().eval()
    pipeline = DetectorPipeline(net=net, detector=detector, detector_args=detector_args,
                                class_names=list(train.class_names), in_chans=train_ds.in_chans, input_size=size,
                                use_template=use_template, image_mode=mode, score_threshold=score_threshold)
    history = run_dir / "logs" / "metrics.csv"
    best_epoch = _best_epoch(history)
    pipeline.save(run_dir, train_seconds=float(seconds), best_epoch=best_epoch, best_val_map_50=best_map,
                  train_class_counts=train.class_counts("box"))
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # model.ckpt holds the best weights
    return FitDetectorResult(pipeline, run_dir, seconds, best_epoch, best_map, history if history.is_file() else None,
                             synthetic)


def _best_epoch(history: Path) -> int | None:
    """1-based epoch of the first maximum of `val_map_50` in Lightning's metrics.csv."""
    if not history.is_file():
        return None
    import pandas as pd

    df = pd.read_csv(history)
    if MONITOR not in df or df[MONITOR].isna().all():
        return None
    return int(df.loc[df[MONITOR].idxmax(), "epoch"]) + 1
