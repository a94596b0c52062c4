"""`train_detector`: train a defect detector with PyTorch Lightning (the task saves the model: `tasks.fitting`).

The model is selected on validation mAP@0.5 (`val_map_50`) by the engine's one Trainer
(`engine/trainer.py`: logs in ``run_dir/logs``, one line per epoch, Lightning's checkpoints removed
afterwards). `train_detector` returns the trained network, its scores and input settings;
`adrcs.tasks.fitting.fit_detector` saves the `DetectorPipeline` in ``run_dir/model.ckpt``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch
from torch.utils.data import DataLoader

from adrcs.data.image_set import ImageSet
from adrcs.data.image_set import resolve_image_mode
from adrcs.engine.detection_data import DetectionDataset, detection_collate
from adrcs.engine.detector_module import DetectorModule
from adrcs.engine.trainer import EpochSummary, Trained, build_trainer, quiet_lightning, train
from adrcs.errors import InputError

MONITOR = "val_map_50"
AUGMENT_ON = ("flips", "dihedral", "true", "yes", "on")
AUGMENT_OFF = ("none", "false", "no", "off")


SUMMARY = ("train_loss", "val_map_50", "val_f1")


@dataclass
class TrainedDetector(Trained):
    """`train_detector`'s result: the trained network (best epoch, CPU, eval mode), its scores and
    the input settings a saved `DetectorPipeline` needs."""

    net: torch.nn.Module | None = None
    in_chans: int = 1
    use_template: bool = False
    image_mode: str = "L"
    score_threshold: float = 0.5
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


PasterFactory = Callable[[ImageSet, int, bool, str, Path, int], tuple[Any, Any]]


def train_detector(cfg: dict[str, Any], train_set: ImageSet, val: ImageSet, run_dir: str | Path,
                   say: Callable[[str], None] = print, paster_factory: PasterFactory | None = None
                   ) -> TrainedDetector:
    """Train `cfg['detector']` on `train_set`, select on `val` mAP@0.5; logs in `run_dir/logs`.

    `train_set` and `val` share one class list (box labels index `train_set.class_names`). Reads the
    cfg keys listed in the module docs of `adrcs.api_images` (detector, input_size, use_template, ...).
    With ``paste_defects: gan``, `paster_factory(train_set, size, use_template, mode, out_dir, seed)`
    returns (paster, synthetic info): the defect paster fitted on the training split (a higher layer's
    job, so the caller gives it).
    """
    quiet_lightning()
    if len(train_set) == 0 or len(val) == 0:
        raise InputError(None, "detection training needs images in train and val "
                         f"(got {len(train_set)} and {len(val)})")
    if list(val.class_names) != list(train_set.class_names):
        raise InputError(None, "train and val class lists differ: "
                         f"{train_set.class_names} vs {val.class_names}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed = int(cfg["seed"])
    L.seed_everything(seed, workers=True, verbose=False)

    detector = str(cfg["detector"])
    detector_args = dict(cfg["detector_args"] or {})
    size = int(cfg["input_size"])
    if size < 32:
        raise InputError(None, f"input_size must be at least 32 pixels for a detector, got {size}")
    mode = resolve_image_mode(cfg["image_mode"])
    use_template = resolve_use_template(cfg["use_template"], train_set, val)
    augment = resolve_augment(cfg["augment"])
    score_threshold = resolve_score_threshold(cfg["score_threshold"])
    num_workers = int(cfg["num_workers"])
    crop = int(cfg["train_crop"] or 0) or None
    if crop is not None and not 32 <= crop:
        raise InputError(None, f"train_crop must be at least 32 pixels (or null), got {crop}")

    paster, synthetic = None, None
    paste = str(cfg["paste_defects"]).strip().lower()
    if paste == "gan":  # fitted on the training split only
        if paster_factory is None:
            raise InputError(None, "paste_defects: gan needs a defect paster (train through `adrcs train`)")
        paster, synthetic = paster_factory(train_set, size, use_template, mode, run_dir / "synth" / "defect_gan",
                                           seed)
    elif paste not in ("none", "false", "off"):
        raise InputError(None, f"paste_defects must be 'gan' or 'none', got {cfg['paste_defects']!r}")
    train_ds = DetectionDataset(train_set, size=size, use_template=use_template, augment=augment, seed=seed,
                                mode=mode, crop=crop, paster=paster)
    val_ds = DetectionDataset(val, size=size, use_template=use_template, augment=False, seed=seed, mode=mode)
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_ds, batch_size=int(cfg["batch_size"]), shuffle=True,
                              collate_fn=detection_collate, num_workers=num_workers, generator=generator,
                              persistent_workers=num_workers > 0)
    val_loader = DataLoader(val_ds, batch_size=int(cfg["eval_batch_size"]), shuffle=False,
                            collate_fn=detection_collate, num_workers=num_workers,
                            persistent_workers=num_workers > 0)
    scheduler = str(cfg["scheduler"])
    try:
        module = DetectorModule(
            detector=detector, num_classes=len(train_set.class_names), class_names=list(train_set.class_names),
            in_chans=train_ds.in_chans, min_size=size, max_size=size, detector_args=detector_args,
            optimizer=str(cfg["optimizer"]), lr=float(cfg["lr"]),
            weight_decay=float(cfg["weight_decay"]), scheduler=scheduler,
            score_threshold=score_threshold,
        )
    except (ValueError, TypeError) as e:  # unknown detector / optimizer / scheduler, bad detector_args
        raise InputError(None, f"cannot build detector {detector!r}: {' '.join(str(e).split())}") from e

    if crop is not None:  # crops are fed as they are; eval still resizes whole images to input_size
        module.net.transform._skip_resize = True
    trainer, checkpoint = build_trainer(
        run_dir, monitor=MONITOR, summary=EpochSummary(say, SUMMARY, epoch_seconds=True),
        epochs=int(cfg["epochs"]), device=str(cfg["device"]), devices=1,
        precision=cfg["precision"], patience=int(cfg["early_stopping_patience"] or 0),
        scheduler=scheduler, progress=bool(cfg["progress"]),
        log_every_n_steps=max(1, min(10, len(train_loader))))
    done = train(trainer, checkpoint, module, train_loader, val_loader, run_dir)
    return TrainedDetector(**vars(done), net=module.net.cpu().eval(), in_chans=train_ds.in_chans,
                           use_template=use_template, image_mode=mode, score_threshold=score_threshold,
                           synthetic=synthetic)
