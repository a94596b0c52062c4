"""One optimiser + learning-rate schedule builder for every Lightning module of the engine.

`configure_optimization` is what a module's ``configure_optimizers`` returns: the optimiser alone
(scheduler "none") or Lightning's ``{"optimizer", "lr_scheduler"}`` dict with a per-step schedule.

optimizer: "adamw" | "adam" | "sgd" (momentum, Nesterov).
scheduler: "onecycle" (one-cycle to `lr`, warm-up of at least 2 steps), "cosine" (plain cosine
    annealing, or with ``warmup=True`` linear warm-up then cosine to 1% of `lr`: see `warmup_cosine`),
    or "none".
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("onecycle", "cosine", "none")


def decay_groups(params: Iterable[torch.nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: weights decayed by `weight_decay`, norms and biases (ndim <= 1) not decayed."""
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(params: Any, name: str, lr: float, weight_decay: float = 0.0,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """`name` ("sgd", "adam", anything else: AdamW) over `params` (parameters or groups).

    Groups that carry their own ``weight_decay`` (`decay_groups`) keep it; `weight_decay` is the default."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def build_schedule(opt: torch.optim.Optimizer, name: str, lr: float, total_steps: int, warmup: bool = False,
                   warmup_steps: int | None = None) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-step schedule `name` ("onecycle" or "cosine") over `total_steps` optimiser steps."""
    total = int(total_steps)
    if name == "onecycle":
        # warm-up of >= 2 steps: OneCycleLR divides by zero when its warm-up rounds to 0 steps
        steps = max(total, 4)
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                   pct_start=min(0.5, max(0.2, 2.0 / steps)))
    if warmup:
        return torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(max(total, 1), warmup_steps))
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))


def configure_optimization(params: Any, *, optimizer: str, lr: float, weight_decay: float, scheduler: str,
                           total_steps: Callable[[], int], momentum: float = 0.9, warmup: bool = False,
                           warmup_steps: int | None = None) -> Any:
    """``configure_optimizers``' return value; `total_steps()` (the Trainer's estimated stepping
    batches) is only asked for when there is a schedule."""
    opt = build_optimizer(params, optimizer, lr, weight_decay, momentum)
    if scheduler == "none":
        return opt
    sched = build_schedule(opt, scheduler, lr, total_steps(), warmup=warmup, warmup_steps=warmup_steps)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def warmup_cosine(total_steps: int, warmup_steps: int | None = None,
                  floor: float = 0.01) -> Callable[[int], float]:
    """LR factor per step: linear warm-up (default 5% of `total_steps`, at most 500), then cosine to `floor`."""
    total = max(int(total_steps), 1)
    warm = min(500, total // 20) if warmup_steps is None else int(warmup_steps)
    warm = max(0, min(warm, total - 1))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        t = min((step - warm) / max(total - warm, 1), 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))

    return factor
