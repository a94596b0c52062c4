"""`fit`: train a classifier with PyTorch Lightning and write the run folder."""
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

from adrcs.checkpoint import restore_best
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.engine.classifier_module import ClassifierModule
from adrcs.engine.tensors import (FeatureTensors, WaferTensors, class_counts, class_weights, make_loader,
                                  sampler_weights_for)
from adrcs.pipeline import Pipeline
from adrcs.transforms.resize import resize_stack


class EpochSummary(Callback):
    """One printed line per epoch (readable in CI logs where a live bar is not)."""

    def __init__(self, console_print) -> None:
        self._print = console_print
        self._t0 = time.time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:  # runs after this epoch's validation
        if not trainer.is_global_zero:
            return
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self._print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  "
            f"train_loss {m.get('train_loss', float('nan')):.4f}  val_loss {m.get('val_loss', float('nan')):.4f}  "
            f"val_macro_f1 {m.get('val_macro_f1', float('nan')):.4f}  val_accuracy {m.get('val_accuracy', float('nan')):.4f}  "
            f"({time.time() - self._t0:.0f}s)"
        )


@dataclass
class FitResult:
    pipeline: Pipeline
    run_dir: Path
    train_seconds: float
    best_epoch: int | None
    best_score: float | None
    history_csv: Path | None
    is_global_zero: bool = True  # False in the extra processes of a DDP run


def resolve_accelerator(device: str) -> str:
    """'auto' -> 'gpu' when CUDA is there, else 'cpu'; 'cuda' is an alias of 'gpu'."""
    if device == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return "gpu" if device == "cuda" else device


def _quiet_lightning() -> None:
    """Keep Lightning's banner lines (GPU available, tips) out of the user's console."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def fit(cfg: dict[str, Any], train: WaferMapSet, val: WaferMapSet, run_dir: str | Path,
        console_print=print, features=None, tensors: tuple[Any, Any] | None = None,
        pipeline_factory: Callable[[torch.nn.Module], Any] | None = None) -> FitResult:
    """Train `cfg['model']` on `train`, select on `val` macro-F1, save `model.ckpt` in `run_dir`.

    With `features` (a fitted `SinogramFeatures`) the model is a 1-D classifier trained on the
    features of the resized maps, and the saved pipeline carries the feature step. With `tensors`
    (prepared (train, val) `ImageTensors`) the model trains on images, and `pipeline_factory(net)`
    builds the saved model instead of a wafer-map `Pipeline`."""
    _quiet_lightning()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    size = int(cfg["input_size"])
    counts = class_counts(train)
    weights = class_weights(counts, cfg["imbalance"], cfg["imbalance_power"]) if not train.multilabel else None
    module = ClassifierModule(
        model=cfg["model"], num_classes=len(train.class_names), class_names=list(train.class_names),
        multilabel=train.multilabel, model_args=dict(cfg["model_args"]),
        class_weights=None if weights is None else weights.tolist(), augment=cfg["augment"],
        optimizer=cfg["optimizer"], lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]),
        scheduler=cfg["scheduler"], label_smoothing=float(cfg["label_smoothing"]),
        inputs="image" if tensors is not None else "map" if features is None else "sequence",
    )
    if tensors is not None:
        train_t, val_t = tensors
    elif features is None:
        train_t, val_t = WaferTensors(train, size), WaferTensors(val, size)
    else:
        train_t = FeatureTensors(features.transform(resize_stack(train.maps, size)), train)
        val_t = FeatureTensors(features.transform(resize_stack(val.maps, size)), val)
    sw = sampler_weights_for(train) if cfg["imbalance"] == "sampler" else None
    bs = int(cfg["batch_size"])
    train_loader = make_loader(train_t, bs, train=True, sampler_weights=sw, num_workers=int(cfg["num_workers"]),
                               seed=int(cfg["seed"]), epoch_size=int(cfg.get("epoch_size", 0)))
    val_loader = make_loader(val_t, int(cfg["eval_batch_size"]), train=False, num_workers=int(cfg["num_workers"]))

    ckpt_dir = run_dir / "checkpoints"
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_macro_f1", mode="max",
                                 save_last=False, save_top_k=1, auto_insert_metric_name=False)
    callbacks: list[Callback] = [checkpoint, EpochSummary(console_print)]
    if int(cfg["early_stopping_patience"]) > 0:
        callbacks.append(EarlyStopping(monitor="val_macro_f1", mode="max", patience=int(cfg["early_stopping_patience"])))
    loggers = [CSVLogger(run_dir, name="logs", version=""), TensorBoardLogger(run_dir, name="logs", version="tb")]
    if cfg["scheduler"] != "none":
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    devices = int(cfg["devices"])
    accelerator = resolve_accelerator(cfg["device"])
    show_bar = bool(cfg["progress"]) and sys.stderr.isatty()
    trainer = L.Trainer(
        max_epochs=int(cfg["epochs"]), accelerator=accelerator, devices=devices,
        strategy="ddp" if devices > 1 else "auto", precision=cfg["precision"], callbacks=callbacks,
        logger=loggers, enable_progress_bar=show_bar, enable_model_summary=False, log_every_n_steps=10,
        deterministic=False, default_root_dir=run_dir, num_sanity_val_steps=0,
    )
    t0 = time.time()
    trainer.fit(module, train_loader, val_loader)
    seconds = time.time() - t0

    best_score = restore_best(module, checkpoint)
    net = module.net.cpu().to(memory_format=torch.contiguous_format).eval()
    if pipeline_factory is not None:
        pipeline = pipeline_factory(net)
    else:
        pipeline = Pipeline(net=net, model_name=cfg["model"], model_args=dict(cfg["model_args"]),
                            class_names=list(train.class_names), multilabel=train.multilabel, input_size=size,
                            tta=bool(cfg["tta"]), features=features)
    history = run_dir / "logs" / "metrics.csv"
    best_epoch = _best_epoch(history)
    if trainer.is_global_zero:
        pipeline.save(run_dir, train_seconds=seconds, best_epoch=best_epoch, best_val_macro_f1=best_score,
                      train_class_counts=counts.tolist())
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # model.ckpt holds the best weights
    return FitResult(pipeline, run_dir, seconds, best_epoch, best_score, history if history.is_file() else None,
                     trainer.is_global_zero)


def _best_epoch(history: Path) -> int | None:
    if not history.is_file():
        return None
    import pandas as pd

    df = pd.read_csv(history)
    if "val_macro_f1" not in df or df["val_macro_f1"].isna().all():
        return None
    return int(df.loc[df["val_macro_f1"].idxmax(), "epoch"]) + 1
