"""Knowledge distillation: trained runs (the teachers, usually an ensemble) teach one student network.

Teacher targets are computed once, before training (`inference.teachers.teacher_targets`): for every training map, the mean over the teachers of
their 8-view (dihedral) probabilities. Averaged over the dihedral group, a target is the same for every view
the student's dihedral augmentation draws, so one pass serves all epochs and the student trains at its own
speed (no teacher forward pass per step). The student then keeps the architecture and speed of its config:
an ensemble's accuracy in one fast `ffn`.

Loss per map: ``(1 - alpha) * CE(student, label) + alpha * T^2 * KL(teacher_T || student_T)`` where ``_T``
softens both distributions with temperature ``T`` (Hinton et al., 2015); multi-label maps use the binary
analogue per label. The KL term is weighted per map like the hard term (class weights of the true class), so
the imbalance handling of the config still applies.

With ``semi_supervised: distill`` the maps without labels join the training set with label -1 and the
teachers' targets only (a "noisy student": the student sees them under dihedral augmentation and learns the
teachers' answers); their KL term is weighted by the class weight of the teachers' answer.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from adrcs.engine.classifier_module import ClassifierModule
from adrcs.transforms.dihedral import random_dihedral
from adrcs.transforms.image_augment import augment_images

DEFAULT_ALPHA = 0.7
DEFAULT_TEMPERATURE = 2.0


class WithSoftTargets(Dataset):
    """A training tensor set (maps, labels) with one soft target row per map: batches (maps, labels, soft)."""

    def __init__(self, base: Any, soft: np.ndarray) -> None:
        if len(soft) != len(base):
            raise ValueError(f"{len(soft)} soft targets for {len(base)} maps")
        self.base = base
        self.soft = torch.from_numpy(np.ascontiguousarray(soft, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        maps, y = self.base[i]
        return maps, y, self.soft[i]

    def __getitems__(self, idx: list[int]):
        maps, y = self.base.__getitems__(idx)
        return maps, y, self.soft[torch.as_tensor(idx)]


def distill_loss(logits: torch.Tensor, soft: torch.Tensor, temperature: float, multilabel: bool,
                 weight: torch.Tensor | None = None) -> torch.Tensor:
    """``T^2 * KL(teacher_T || student_T)`` per map (binary per label when multi-label), weighted mean.

    `soft` holds the teachers' probabilities at T = 1; they are re-softened here (p^(1/T), renormalised)."""
    t = float(temperature)
    if multilabel:
        p = soft.clamp(1e-6, 1 - 1e-6)
        logit_t = torch.log(p / (1 - p)) / t
        target = torch.sigmoid(logit_t)
        per = F.binary_cross_entropy_with_logits(logits / t, target, reduction="none").mean(dim=1)
        per = per - F.binary_cross_entropy_with_logits(logit_t, target, reduction="none").mean(dim=1)  # -> KL
    else:
        target = torch.softmax(torch.log(soft.clamp_min(1e-8)) / t, dim=1)
        per = F.kl_div(F.log_softmax(logits / t, dim=1), target, reduction="none").sum(dim=1)
    per = per * (t * t)
    if weight is None:
        return per.mean()
    return (per * weight).sum() / weight.sum().clamp_min(1e-8)


class DistillModule(ClassifierModule):
    """`ClassifierModule` trained on labels and the teachers' soft targets (batches (maps, labels, soft))."""

    def __init__(self, *args: Any, distill_alpha: float = DEFAULT_ALPHA,
                 distill_temperature: float = DEFAULT_TEMPERATURE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.save_hyperparameters("distill_alpha", "distill_temperature")

    def training_step(self, batch, batch_idx):
        maps, y, soft = batch
        if self.hparams.augment == "dihedral" and self.hparams.inputs == "map":
            maps = random_dihedral(maps)  # the targets are dihedral means: valid for every view
        elif self.hparams.augment != "none" and self.hparams.inputs == "image":
            maps = augment_images(maps)
        logits = self(maps)
        weight = None
        if self.hparams.multilabel:
            hard = self.loss(logits, y)
        else:  # label -1: a map without label (semi_supervised: distill); the teachers' answer stands in
            labelled = y >= 0
            hard = self.loss(logits[labelled], y[labelled]) if bool(labelled.any()) else logits.sum() * 0.0
            if self.class_weight is not None:
                weight = self.class_weight[torch.where(labelled, y, soft.argmax(dim=1))]
        kd = distill_loss(logits, soft, self.hparams.distill_temperature, self.hparams.multilabel, weight)
        alpha = float(self.hparams.distill_alpha)
        loss = (1.0 - alpha) * hard + alpha * kd
        n = len(y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        self.log("distill_loss", kd, on_step=False, on_epoch=True, prog_bar=False, batch_size=n, sync_dist=True)
        return loss
