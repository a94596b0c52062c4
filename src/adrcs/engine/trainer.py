"""`build_trainer`: the one Lightning Trainer of every training run (classification and detection).

A run selects its best epoch on one monitored validation metric (``val_macro_f1``, ``val_map_50``):
Lightning keeps that epoch's weights in ``run_dir/checkpoints/best.ckpt``, optional early stopping
watches the same metric, logs go to ``run_dir/logs`` (CSV ``metrics.csv`` + TensorBoard ``logs/tb``),
one line per epoch is printed (`EpochSummary`) and a live bar shows only on a terminal. `train`
runs the fit, restores the best weights and returns the scores (`Trained`).
"""
from __future__ import annotations

import os
import pickle
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

CHECKPOINT_DIR = "checkpoints"


class EpochSummary(Callback):
    """One printed line per epoch (readable in CI logs where a live bar is not): `metrics` with 4
    decimals, then the total seconds, or with `epoch_seconds` this epoch's and the total seconds."""

    def __init__(self, say: Callable[[str], None], metrics: Sequence[str], epoch_seconds: bool = False) -> None:
        self._say = say
        self._metrics = tuple(metrics)
        self._epoch_seconds = epoch_seconds
        self._t0 = self._t_epoch = time.time()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for ``ddp_spawn``: a printer that cannot cross to a spawned process becomes `print`."""
        state = dict(self.__dict__)
        try:
            pickle.dumps(self._say)
        except Exception:  # a lambda or a closure
            state["_say"] = print
        return state

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t_epoch = time.time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # runs after this epoch's validation
        if not trainer.is_global_zero:
            return
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        now = time.time()
        values = "  ".join(f"{k} {m.get(k, float('nan')):.4f}" for k in self._metrics)
        took = (f"({now - self._t_epoch:.1f}s, {now - self._t0:.0f}s total)" if self._epoch_seconds
                else f"({now - self._t0:.0f}s)")
        self._say(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {values}  {took}")


@dataclass
class Trained:
    """What `train` gives back: the best epoch's weights are in the module, these are its scores."""

    train_seconds: float
    best_epoch: int | None     # 1-based, from logs/metrics.csv
    best_score: float | None   # the monitored metric at the best epoch
    history_csv: Path | None   # Lightning's logs/metrics.csv
    is_global_zero: bool = True  # False in the extra processes of a DDP run


def resolve_accelerator(device: str) -> str:
    """'auto' -> 'gpu' when CUDA is there, else 'cpu'; 'cuda' is an alias of 'gpu'."""
    if device == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return "gpu" if device == "cuda" else device


def resolve_strategy(strategy: str, devices: int, num_nodes: int = 1) -> str:
    """Lightning's strategy name (one of `adrcs.config.STRATEGIES`): "auto" -> "ddp" for more than one
    process (devices x num_nodes), else "auto"."""
    if strategy == "auto" and devices * num_nodes > 1:
        return "ddp"
    return strategy


def is_launch_rank_zero() -> bool:
    """False in a process a launcher started as a rank other than 0 (torchrun's ``RANK``, SLURM's
    ``SLURM_PROCID``, Lightning's ``LOCAL_RANK`` / ``NODE_RANK``): such a process should print nothing."""
    for name in ("RANK", "SLURM_PROCID"):
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name]) == 0
    return all(os.environ.get(name, "0").strip() in ("", "0") for name in ("LOCAL_RANK", "NODE_RANK"))


def quiet_lightning() -> None:
    """Keep Lightning's banner lines (GPU available, tips) out of the user's console."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def build_trainer(run_dir: Path, *, monitor: str, summary: Callback, epochs: int, device: str = "auto",
                  devices: int = 1, precision: Any = "32-true", patience: int = 0, scheduler: str = "none",
                  progress: bool = True, log_every_n_steps: int = 10, num_nodes: int = 1,
                  strategy: str = "auto") -> tuple[L.Trainer, ModelCheckpoint]:
    """A Trainer selecting on `monitor` (higher is better) and the checkpoint callback keeping its best epoch.

    `patience` > 0 adds early stopping on `monitor`; a `scheduler` other than "none" logs the LR per
    epoch; `devices` processes on each of `num_nodes` machines train with `strategy` (see
    `resolve_strategy`; DDP uses gloo on CPU); the progress bar shows when `progress` and stderr is a terminal.
    """
    checkpoint = ModelCheckpoint(dirpath=run_dir / CHECKPOINT_DIR, filename="best", monitor=monitor, mode="max",
                                 save_last=False, save_top_k=1, auto_insert_metric_name=False)
    callbacks: list[Callback] = [checkpoint, summary]
    if patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=patience))
    if scheduler != "none":
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    loggers = [CSVLogger(run_dir, name="logs", version=""), TensorBoardLogger(run_dir, name="logs", version="tb")]
    trainer = L.Trainer(
        max_epochs=epochs, accelerator=resolve_accelerator(device), devices=devices, num_nodes=num_nodes,
        strategy=resolve_strategy(strategy, devices, num_nodes), precision=precision, callbacks=callbacks,
        logger=loggers,
        enable_progress_bar=progress and sys.stderr.isatty(), enable_model_summary=False,
        log_every_n_steps=log_every_n_steps, deterministic=False, default_root_dir=run_dir, num_sanity_val_steps=0,
    )
    return trainer, checkpoint


def train(trainer: L.Trainer, checkpoint: ModelCheckpoint, module: L.LightningModule, train_loader: Any,
          val_loader: Any, run_dir: Path) -> Trained:
    """Fit `module`, load its best epoch's weights back and drop Lightning's checkpoints."""
    t0 = time.time()
    trainer.fit(module, train_loader, val_loader)
    seconds = time.time() - t0
    best_score = restore_best(module, checkpoint)
    history = run_dir / "logs" / "metrics.csv"
    if trainer.world_size > 1:
        trainer.strategy.barrier()  # every rank has read best.ckpt before rank 0 removes it
    if trainer.is_global_zero:
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)  # the caller saves model.ckpt
        _epochs_from_one(history)
    return Trained(seconds, best_epoch(history, str(checkpoint.monitor)), best_score,
                   history if history.is_file() else None, trainer.is_global_zero)


def restore_best(module: torch.nn.Module, checkpoint_callback: ModelCheckpoint) -> float | None:
    """Load the best weights a Lightning `ModelCheckpoint` kept into `module`; returns its score (after
    ``ddp_spawn`` only the path comes back to the main process: the score is read from the file)."""
    best = checkpoint_callback.best_model_path
    score = checkpoint_callback.best_model_score
    if best and Path(best).is_file():
        saved = torch.load(best, map_location="cpu", weights_only=True)
        module.load_state_dict(saved["state_dict"], strict=False)
        if score is None:
            score = next((s.get("best_model_score") for k, s in saved.get("callbacks", {}).items()
                          if k.startswith("ModelCheckpoint") and isinstance(s, dict)), None)
    return None if score is None else float(score)


def _epochs_from_one(history: Path) -> None:
    """Lightning counts epochs from 0 in metrics.csv; the printed lines, `best_epoch` and the plots count
    from 1, so the file is rewritten to count from 1 too (once, marked by an `epoch_base` column)."""
    if not history.is_file():
        return
    import pandas as pd

    df = pd.read_csv(history)
    if "epoch" not in df or "epoch_base" in df:
        return
    df["epoch"] = df["epoch"] + 1
    df["epoch_base"] = 1
    df.to_csv(history, index=False)


def best_epoch(history: Path, monitor: str) -> int | None:
    """1-based epoch of the first maximum of `monitor` in metrics.csv (0-based as Lightning writes it, or
    1-based once `_epochs_from_one` has rewritten it)."""
    if not history.is_file():
        return None
    import pandas as pd

    df = pd.read_csv(history)
    if monitor not in df or df[monitor].isna().all():
        return None
    return int(df.loc[df[monitor].idxmax(), "epoch"]) + (0 if "epoch_base" in df else 1)
