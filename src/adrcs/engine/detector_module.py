"""`DetectorModule`: the Lightning module training a detector from `adrcs.models.detection`."""
from __future__ import annotations

from typing import Any, Iterable

import lightning as L
import numpy as np
import torch
from torchmetrics.detection import MeanAveragePrecision

from adrcs.engine.optim import configure_optimization, decay_groups, warmup_cosine  # noqa: F401 (re-export)
from adrcs.metrics.detection import detection_report, match_counts
from adrcs.models.detection import DEFAULT_DETECTOR, LABEL_OFFSET, create_detector

Target = dict[str, torch.Tensor]


def strip_background(pred: Target) -> Target:
    """Drop detections labelled background (0): one-stage heads keep a never-trained slot for it."""
    keep = pred["labels"] >= LABEL_OFFSET
    return {k: v[keep] if torch.is_tensor(v) and len(v) == len(keep) else v for k, v in pred.items()}


class DetectorModule(L.LightningModule):
    """Trains `create_detector(detector, ...)` on ``(list of images, list of targets)`` batches.

    Batches come from `DetectionDataset` + `detection_collate` (labels 1-based). Training sums
    the detector's loss dict (logged as ``train_loss`` and ``train_<part>``); validation predicts,
    logs COCO ``val_map_50`` / ``val_map_50_95`` and micro ``val_precision`` / ``val_recall`` /
    ``val_f1`` at `score_threshold`, and keeps this rank's predictions in `val_predictions` and
    `val_targets` (CPU) for a full `detection_report`.

    optimizer: "adamw" | "sgd" (momentum, Nesterov); weight decay skips norms and biases.
    scheduler: "cosine" (linear warm-up over `warmup_steps`, default 5% of training, then
        cosine to 1% of `lr`), "onecycle" or "none"; stepped per batch.
    """

    def __init__(self, detector: str = DEFAULT_DETECTOR, num_classes: int = 1, class_names: list[str] | None = None,
                 in_chans: int = 1, min_size: int = 640, max_size: int = 640,
                 detector_args: dict[str, Any] | None = None, optimizer: str = "adamw", lr: float = 1e-3,
                 weight_decay: float = 1e-4, momentum: float = 0.9, scheduler: str = "cosine",
                 warmup_steps: int | None = None, score_threshold: float = 0.5) -> None:
        super().__init__()
        if optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {optimizer!r}")
        if scheduler not in ("cosine", "onecycle", "none"):
            raise ValueError(f"scheduler must be 'cosine', 'onecycle' or 'none', got {scheduler!r}")
        class_names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.save_hyperparameters()
        self.net = create_detector(detector, num_classes=num_classes, in_chans=in_chans, min_size=min_size,
                                   max_size=max_size, **(detector_args or {}))
        self.val_map = MeanAveragePrecision(iou_type="bbox")
        self.val_predictions: list[Target] = []
        self.val_targets: list[Target] = []
        self._counts = np.zeros((3, num_classes + 1), np.int64)  # tp, fp, fn per class (+ no-class)

    def forward(self, images: list[torch.Tensor]) -> list[Target]:
        """Detections per image (eval mode): boxes, 1-based labels, scores; background dropped."""
        return [strip_background(p) for p in self.net(list(images))]

    def training_step(self, batch, batch_idx):
        images, targets = batch
        losses = self.net(list(images), list(targets))
        loss = sum(losses.values())
        n = len(images)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        for k, v in losses.items():
            self.log(f"train_{k}", v, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.val_predictions, self.val_targets = [], []
        self._counts[:] = 0

    def validation_step(self, batch, batch_idx):
        images, targets = batch
        preds = self(images)
        self.val_map.update(preds, list(targets))
        preds = [{k: v.detach().cpu() for k, v in p.items()} for p in preds]
        targets = [{k: v.detach().cpu() for k, v in t.items()} for t in targets]
        counts = match_counts(preds, targets, self.hparams.num_classes, self.hparams.score_threshold,
                              label_offset=LABEL_OFFSET)
        self._counts += np.stack(counts)
        self.val_predictions += preds
        self.val_targets += targets

    def on_validation_epoch_end(self) -> None:
        res = self.val_map.compute()  # synced across ranks by torchmetrics
        self.val_map.reset()
        self.log("val_map_50", max(float(res["map_50"]), 0.0), prog_bar=True)  # -1 (no ground truth) -> 0
        self.log("val_map_50_95", max(float(res["map"]), 0.0))
        counts = torch.as_tensor(self._counts.sum(axis=1), dtype=torch.float64, device=self.device)
        if self._trainer is not None and self.trainer.world_size > 1:
            counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        tp, fp, fn = (float(c) for c in counts)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        self.log("val_precision", precision)
        self.log("val_recall", recall)
        self.log("val_f1", f1, prog_bar=True)

    def predict_step(self, batch, batch_idx):
        images = batch[0] if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], list) else batch
        return self(images)

    @torch.no_grad()
    def evaluate(self, loader: Iterable, score_threshold: float | None = None) -> dict[str, Any]:
        """`detection_report` of the model on a loader of (images, targets) batches (eval mode, no Trainer)."""
        was_training = self.training
        self.eval()
        preds, targets = [], []
        for images, tgts in loader:
            out = self([im.to(self.device) for im in images])
            preds += [{k: v.cpu() for k, v in p.items()} for p in out]
            targets += [{k: v.cpu() for k, v in t.items()} for t in tgts]
        self.train(was_training)
        thr = self.hparams.score_threshold if score_threshold is None else score_threshold
        return detection_report(preds, targets, self.hparams.class_names, score_threshold=thr,
                                label_offset=LABEL_OFFSET)

    def configure_optimizers(self):
        hp = self.hparams
        return configure_optimization(decay_groups(self.parameters(), hp.weight_decay), optimizer=hp.optimizer,
                                      lr=hp.lr, weight_decay=0.0, scheduler=hp.scheduler, momentum=hp.momentum,
                                      total_steps=lambda: self.trainer.estimated_stepping_batches, warmup=True,
                                      warmup_steps=hp.warmup_steps)
