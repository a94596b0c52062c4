"""engine/optim.py and engine/trainer.py: the shared optimiser/schedule builder and Trainer pieces."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from adrcs.engine.optim import build_schedule, configure_optimization, decay_groups, warmup_cosine
from adrcs.engine.trainer import EpochSummary, best_epoch, build_trainer


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


@pytest.mark.parametrize("name, cls", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam),
                                       ("sgd", torch.optim.SGD)])
def test_optimizer_without_schedule_never_asks_for_steps(name, cls):
    def steps() -> int:
        raise AssertionError("no schedule: the Trainer's step count is not needed")

    opt = configure_optimization(_net().parameters(), optimizer=name, lr=0.1, weight_decay=1e-3,
                                 scheduler="none", total_steps=steps)
    assert isinstance(opt, cls) and opt.param_groups[0]["weight_decay"] == 1e-3


def test_decay_groups_keep_their_weight_decay():
    groups = decay_groups(_net().parameters(), 0.05)
    out = configure_optimization(groups, optimizer="adamw", lr=0.1, weight_decay=0.0, scheduler="cosine",
                                 total_steps=lambda: 100, warmup=True)
    opt = out["optimizer"]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert len(opt.param_groups[0]["params"]) == 1 and len(opt.param_groups[1]["params"]) == 3
    assert out["lr_scheduler"]["interval"] == "step"
    assert isinstance(out["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.LambdaLR)


@pytest.mark.parametrize("total", [0, 1, 3, 50])
def test_schedules_with_few_steps(total):
    opt = torch.optim.SGD(_net().parameters(), lr=0.1)
    one = build_schedule(opt, "onecycle", 0.1, total)
    assert isinstance(one, torch.optim.lr_scheduler.OneCycleLR) and one.total_steps == max(total, 4)
    opt = torch.optim.SGD(_net().parameters(), lr=0.1)
    cos = build_schedule(opt, "cosine", 0.1, total)
    assert isinstance(cos, torch.optim.lr_scheduler.CosineAnnealingLR) and cos.T_max == max(total, 1)
    f = warmup_cosine(total)
    assert 0.0 < f(0) <= 1.0


def test_epoch_summary_lines():
    lines: list[str] = []
    trainer = SimpleNamespace(is_global_zero=True, current_epoch=0, max_epochs=3,
                              callback_metrics={"train_loss": torch.tensor(0.5), "val_f1": torch.tensor(0.25)})
    EpochSummary(lines.append, ("train_loss", "val_f1", "val_map_50")).on_train_epoch_end(trainer, None)
    s = EpochSummary(lines.append, ("train_loss",), epoch_seconds=True)
    s.on_train_epoch_start(trainer, None)
    s.on_train_epoch_end(trainer, None)
    assert lines[0] == "epoch 1/3  train_loss 0.5000  val_f1 0.2500  val_map_50 nan  (0s)"
    assert lines[1] == "epoch 1/3  train_loss 0.5000  (0.0s, 0s total)"


def test_best_epoch_and_trainer_callbacks(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,val_m,train_loss\n0,1,0.2,\n0,1,,0.9\n1,2,0.7,\n2,3,0.7,\n")
    assert best_epoch(csv, "val_m") == 2  # the first maximum, 1-based
    assert best_epoch(csv, "val_other") is None and best_epoch(tmp_path / "none.csv", "val_m") is None
    trainer, ckpt = build_trainer(tmp_path, monitor="val_m", summary=EpochSummary(print, ()), epochs=1,
                                  device="cpu", patience=2, scheduler="cosine", progress=False)
    kinds = [type(c).__name__ for c in trainer.callbacks]
    assert {"ModelCheckpoint", "EpochSummary", "EarlyStopping", "LearningRateMonitor"} <= set(kinds)
    assert ckpt.monitor == "val_m" and ckpt.mode == "max" and trainer.max_epochs == 1
