"""`ClassifierModule`: the Lightning module training any registered wafer-map classifier."""
from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import (MulticlassAccuracy, MulticlassF1Score, MultilabelExactMatch,
                                         MultilabelF1Score)

from adrcs.engine.optim import configure_optimization
from adrcs.models import create_model
from adrcs.transforms.dihedral import random_dihedral
from adrcs.transforms.image_augment import augment_images
from adrcs.transforms.one_hot import one_hot_maps


class ClassifierModule(L.LightningModule):
    """Wraps a network from the registry with its loss, augmentation, metrics and optimiser.

    Batches are (uint8 maps (N, S, S), labels). The module one-hot encodes and augments on the
    device the batch lives on, so the same code runs on CPU, a GPU or under DDP. With
    `inputs="sequence"` batches are float feature vectors (N, L) that go to the net as they are; with
    `inputs="image"` uint8 images (N, C, H, W), flipped/shifted/brightened when `augment` is not none.
    """

    def __init__(self, model: str, num_classes: int, class_names: list[str], multilabel: bool = False,
                 model_args: dict[str, Any] | None = None, class_weights: list[float] | None = None,
                 augment: str = "dihedral", optimizer: str = "adamw", lr: float = 3e-3,
                 weight_decay: float = 1e-4, scheduler: str = "onecycle", label_smoothing: float = 0.0,
                 inputs: str = "map") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = create_model(model, num_classes=num_classes, multilabel=multilabel, **(model_args or {}))
        if inputs == "map":
            self.net = self.net.to(memory_format=torch.channels_last)
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.register_buffer("class_weight", weight, persistent=False)
        if multilabel:
            self.val_f1 = MultilabelF1Score(num_labels=num_classes, average="macro")
            self.val_acc = MultilabelExactMatch(num_labels=num_classes)
        else:
            self.val_f1 = MulticlassF1Score(num_classes=num_classes, average="macro")
            self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        if self.hparams.inputs == "sequence":
            return self.net(maps)
        if self.hparams.inputs == "image":  # uint8 (N, C, H, W), or float already augmented
            x = maps.float() / 255.0 if maps.dtype == torch.uint8 else maps
            return self.net(x.contiguous(memory_format=torch.channels_last))
        x = one_hot_maps(maps).contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.hparams.multilabel:
            return F.binary_cross_entropy_with_logits(logits, y.float())
        return F.cross_entropy(logits, y, weight=self.class_weight, label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch, batch_idx):
        maps, y = batch
        if self.hparams.augment == "dihedral" and self.hparams.inputs == "map":
            maps = random_dihedral(maps)
        elif self.hparams.augment != "none" and self.hparams.inputs == "image":
            maps = augment_images(maps)
        loss = self.loss(self(maps), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y),
                 sync_dist=True)  # the mean over every DDP process
        return loss

    def on_validation_epoch_start(self) -> None:
        # images: small sets and batches leave BatchNorm's running stats off; re-estimate them
        # on (up to 50 batches of) unaugmented training images before every validation
        if self.hparams.inputs != "image" or self.trainer is None or self.trainer.sanity_checking:
            return
        loader = self.trainer.train_dataloader
        if loader is None:
            return
        from itertools import islice

        from adrcs.engine.precise_bn import recompute_bn_stats

        batches = (b[0].to(self.device) for b in islice(loader, 50))
        recompute_bn_stats(self.net, batches, prepare=lambda x: (x.float() / 255.0).contiguous(
            memory_format=torch.channels_last))

    def validation_step(self, batch, batch_idx):
        maps, y = batch
        logits = self(maps)
        self.log("val_loss", self.loss(logits, y), on_epoch=True, prog_bar=False, batch_size=len(y), sync_dist=True)
        target = y.long()
        self.val_f1.update(logits, target)
        self.val_acc.update(logits, target)
        self.log("val_macro_f1", self.val_f1, on_epoch=True, prog_bar=True)
        self.log("val_accuracy", self.val_acc, on_epoch=True, prog_bar=True)

    def configure_optimizers(self):
        hp = self.hparams
        return configure_optimization(self.parameters(), optimizer=hp.optimizer, lr=hp.lr,
                                      weight_decay=hp.weight_decay, scheduler=hp.scheduler,
                                      total_steps=lambda: self.trainer.estimated_stepping_batches)
