"""`train_classifier`: train a classifier with PyTorch Lightning.

It returns the trained network and its scores (`TrainedClassifier`); the task builds and saves the model
from it (`adrcs.tasks.fitting.fit`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import lightning as L
import numpy as np
import torch

from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.engine.classifier_module import ClassifierModule
from adrcs.engine.tensors import (FeatureTensors, MapTensors, WaferTensors, class_counts, class_weights, make_loader,
                                  sampler_weights_for, unlabeled_loader)
from adrcs.engine.trainer import (EpochSummary, Trained, build_trainer, quiet_lightning, resolve_accelerator,
                                  train)
from adrcs.transforms.resize import resize_stack

MONITOR = "val_macro_f1"
SUMMARY = ("train_loss", "val_loss", "val_macro_f1", "val_accuracy")
_quiet_lightning = quiet_lightning  # older name
__all__ = ["TrainedClassifier", "resolve_accelerator", "train_classifier"]


@dataclass
class TrainedClassifier(Trained):
    """`train_classifier`'s result: the trained network (best epoch, CPU, eval mode) and its scores."""

    net: torch.nn.Module | None = None
    train_class_counts: list[int] | None = None


def train_classifier(cfg: dict[str, Any], train_set: WaferMapSet, val: WaferMapSet, run_dir: str | Path,
                     console_print: Callable[[str], None] = print, features=None,
                     tensors: tuple[Any, Any] | None = None, unlabeled: WaferMapSet | None = None,
                     semi: str = "none", soft_targets: np.ndarray | None = None) -> TrainedClassifier:
    """Train `cfg['model']` on `train_set`, select on `val` macro-F1; logs in `run_dir/logs`.

    With `features` (a fitted `SinogramFeatures`) the model is a 1-D classifier trained on the
    features of the resized maps. With `tensors` (prepared (train, val) `ImageTensors`) the model
    trains on images. With `semi` "fixmatch" the maps of `unlabeled` (labels ignored) join every step
    (`engine.fixmatch`). With `soft_targets` (N, C) (the teachers' probabilities of every training map) the
    network learns from them too (`engine.distill`). Returns the best epoch's network (CPU, eval mode) and its
    scores."""
    quiet_lightning()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    size = int(cfg["input_size"])
    counts = class_counts(train_set)
    weights = (class_weights(counts, cfg["imbalance"], cfg["imbalance_power"])
               if not train_set.multilabel else None)
    module_class, extra = ClassifierModule, {}
    if semi == "fixmatch":
        from adrcs.engine.fixmatch import FixMatchModule

        real = (~train_set.meta["synthetic"].to_numpy(bool) if "synthetic" in train_set.meta
                else np.ones(len(train_set), bool))  # the class mix before balancing
        real_counts = np.bincount(train_set.labels[real], minlength=len(counts))
        prior = real_counts / max(int(real_counts.sum()), 1)
        module_class, extra = FixMatchModule, dict(semi_args=dict(cfg["semi_args"]), class_prior=prior.tolist(),
                                                   train_prior=(counts / max(int(counts.sum()), 1)).tolist())
    elif soft_targets is not None:
        from adrcs.engine.distill import DEFAULT_ALPHA, DEFAULT_TEMPERATURE, DistillModule

        args = dict(cfg.get("distill_args") or {})
        module_class, extra = DistillModule, dict(distill_alpha=float(args.get("alpha", DEFAULT_ALPHA)),
                                                  distill_temperature=float(args.get("temperature",
                                                                                     DEFAULT_TEMPERATURE)))
    module = module_class(
        model=cfg["model"], num_classes=len(train_set.class_names), class_names=list(train_set.class_names),
        multilabel=train_set.multilabel, model_args=dict(cfg["model_args"]),
        class_weights=None if weights is None else weights.tolist(), augment=cfg["augment"],
        optimizer=cfg["optimizer"], lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]),
        scheduler=cfg["scheduler"], label_smoothing=float(cfg["label_smoothing"]),
        inputs="image" if tensors is not None else "map" if features is None else "sequence", **extra,
    )
    if cfg.get("init"):  # `adrcs train --init DIR`: the encoder of `adrcs pretrain`, a fresh head
        from adrcs.engine.pretrain import init_from_encoder
        from adrcs.errors import InputError

        if module.hparams.inputs != "map":
            raise InputError(None, "--init (a pretrained encoder) is for wafer-map models on maps")
        console_print(init_from_encoder(module.net, cfg))
    if tensors is not None:
        train_t, val_t = tensors
    elif features is None:
        train_t, val_t = WaferTensors(train_set, size, cfg["resize"]), WaferTensors(val, size, cfg["resize"])
    else:
        train_t = FeatureTensors(features.transform(resize_stack(train_set.maps, size, cfg["resize"])), train_set)
        val_t = FeatureTensors(features.transform(resize_stack(val.maps, size, cfg["resize"])), val)
    if soft_targets is not None:
        from adrcs.engine.distill import WithSoftTargets

        train_t = WithSoftTargets(train_t, soft_targets)
    sw = sampler_weights_for(train_set) if cfg["imbalance"] == "sampler" else None
    workers = int(cfg["num_workers"])
    batch, epoch_size = int(cfg["batch_size"]), int(cfg["epoch_size"])
    if semi == "fixmatch" and not epoch_size:  # an epoch passes over the unlabelled maps once
        epoch_size = max(len(train_t), -(-len(unlabeled) // int(module.semi["mu"])))
    train_loader = make_loader(train_t, batch, train=True, sampler_weights=sw, num_workers=workers,
                               seed=int(cfg["seed"]), epoch_size=epoch_size)
    if semi == "fixmatch":
        from lightning.pytorch.utilities import CombinedLoader

        mu = int(module.semi["mu"])
        u_loader = unlabeled_loader(MapTensors(unlabeled.maps, size, cfg["resize"]), mu * batch,
                                    len(train_loader), seed=int(cfg["seed"]) + 1)
        train_loader = CombinedLoader({"labeled": train_loader, "unlabeled": u_loader}, mode="min_size")
    val_loader = make_loader(val_t, int(cfg["eval_batch_size"]), train=False, num_workers=workers)

    trainer, checkpoint = build_trainer(
        run_dir, monitor=MONITOR, summary=EpochSummary(console_print, SUMMARY + (("mask_rate",) if semi == "fixmatch" else ())
                                                  + (("distill_loss",) if soft_targets is not None else ())), epochs=int(cfg["epochs"]),
        device=cfg["device"], devices=int(cfg["devices"]), precision=cfg["precision"],
        num_nodes=int(cfg.get("num_nodes", 1)), strategy=str(cfg.get("strategy", "auto")),
        patience=int(cfg["early_stopping_patience"]), scheduler=cfg["scheduler"], progress=bool(cfg["progress"]))
    done = train(trainer, checkpoint, module, train_loader, val_loader, run_dir)
    net = module.net.cpu().to(memory_format=torch.contiguous_format).eval()
    return TrainedClassifier(**vars(done), net=net, train_class_counts=counts.tolist())
