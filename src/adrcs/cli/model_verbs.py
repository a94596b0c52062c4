"""`adrcs train`, `evaluate`, `predict`: dispatched through the task registry."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from adrcs.cli.common import (reads_data, _extra_overrides, _say, app)
from adrcs.errors import InputError

LABELS = typer.Option(None, "--labels", help="CSV with columns lot,wafer,label: pattern labels for files that "
                      "carry none (STDF, KLARF, SINF, E142), matched on lot and wafer id.")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@reads_data
def train(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (configs/*.yaml)."),
    train_paths: Optional[List[Path]] = typer.Option(None, "--train", help="Training file(s): --train a.pkl b.pkl"),
    data: Optional[List[Path]] = typer.Option(
        None, "--data", help="Training data (same as --train); for images: a DeepPCB list file, a VOC root "
                             "or a folder of class folders."),
    images: Optional[Path] = typer.Option(None, "--images", help="Pascal VOC: the images folder."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Pascal VOC: the XML annotations folder."),
    val_paths: Optional[List[Path]] = typer.Option(
        None, "--val", help="Validation file(s); default: a stratified hold-out of train."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write."),
    epochs: Optional[int] = typer.Option(None, help="Override config epochs."),
    device: Optional[str] = typer.Option(None, help="auto | cpu | gpu"),
    model: Optional[str] = typer.Option(None, help="Override config model (ffn, cnn)."),
    input_size: Optional[int] = typer.Option(None, help="Override config input_size."),
    batch_size: Optional[int] = typer.Option(None, help="Override config batch_size."),
    seed: Optional[int] = typer.Option(None, help="Override config seed."),
    balance: Optional[str] = typer.Option(
        None, help="none | oversample | cae | gan: fill classes up to --balance-target."),
    init: Optional[Path] = typer.Option(None, "--init", help="Folder written by `adrcs pretrain`: start from its "
                                        "encoder (same model and input size; the head stays fresh)."),
    unlabeled: Optional[List[Path]] = typer.Option(
        None, "--unlabeled", help="Wafer-map files, folders or fab files whose maps (labels ignored) the model may "
                                  "also learn from: with --semi-supervised fixmatch (auto: the benchmark's best, "
                                  "see README), the SBAE of the sinogram config. Maps identical to a --val map are "
                                  "left out."),
    devices: Optional[int] = typer.Option(None, "--devices", help="Processes (CPU) or GPUs per machine; more than "
                                          "one trains with DDP (gloo on CPU). batch_size is per process."),
    num_nodes: Optional[int] = typer.Option(None, "--num-nodes", help="Machines in the run, each running this "
                                            "command (MASTER_ADDR, MASTER_PORT, NODE_RANK; see README)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="auto | ddp | ddp_spawn | ddp_fork | ... "
                                           "(auto: ddp when devices x num-nodes > 1)."),
    teacher: Optional[List[Path]] = typer.Option(
        None, "--teacher", help="Trained run folder(s) to distil from (repeat the flag for an ensemble): the "
                                "model also learns their mean 8-view probabilities (config distill_from, "
                                "distill_args: alpha, temperature)."),
    reading: Optional[dict] = None,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run already in --out."),
) -> None:
    """Train a classifier; any other config key can be given as --key value."""
    if not overwrite and (out / "model.ckpt").exists():
        raise InputError(out, "holds a trained run already (model.ckpt); pass --overwrite to replace it "
                              "(a service may be serving it) or choose another --out")
    from adrcs.config import load_config
    from adrcs.tasks import Request, get_task

    overrides = dict(epochs=epochs, device=device, model=model, input_size=input_size, batch_size=batch_size, seed=seed,
                     balance=balance, init=init, devices=devices, num_nodes=num_nodes, strategy=strategy)
    overrides.update(_extra_overrides(list(ctx.args)))
    if teacher:
        overrides["distill_from"] = [str(t) for t in teacher]
    cfg = load_config(config, overrides)
    if cfg.get("distill_from"):
        from adrcs.inference.teachers import check_teachers

        if cfg["task"] != "wafer":
            raise InputError(None, "--teacher / distill_from is for wafer-map models (task: wafer)")
        check_teachers(cfg["distill_from"])
    paths = list(train_paths or []) + list(data or [])
    if not paths:
        raise InputError(None, "no training data: give --train FILE... (wafer maps) or --data PATH")
    task = get_task(cfg["task"])
    req = Request(data=paths, out=out, val=val_paths or None, images=images, annotations=annotations,
                  reading=reading, unlabeled=unlabeled or None)
    task.check_image_request(req)
    task.train(cfg, req, _say if _launch_rank_zero() else _silent)


def _launch_rank_zero() -> bool:
    """False in the extra processes of a DDP launch (they train but print nothing)."""
    from adrcs.engine.trainer import is_launch_rank_zero

    return is_launch_rank_zero()


def _silent(msg: str) -> None:
    """The printer of a DDP process of rank > 0 (a function, so that ``ddp_spawn`` can pickle it)."""


ALPHA = typer.Option(None, "--alpha", help="Prediction sets cover the true class with probability >= 1 - alpha "
                     "(default: the model's, 0.05).")


RUNTIME = typer.Option("torch", "--runtime", help="torch | onnx | onnx-int8: run the network in PyTorch, or in ONNX "
                       "Runtime from the run's checked model.onnx / model.int8.onnx (exported first when missing; "
                       "every task; detectors: no onnx-int8).")
PREDICT_RUNTIME = typer.Option(None, "--runtime", help="torch | onnx | onnx-int8: run the network in PyTorch, or in "
                               "ONNX Runtime from the run's checked model.onnx / model.int8.onnx (exported first when "
                               "missing; every task; detectors: no onnx-int8). Default torch; with --engine ray onnx where the model "
                               "exports, else torch.")


def _check_alpha(alpha: float | None) -> None:
    from adrcs.errors import InputError

    if alpha is not None and not 0.0 < alpha < 1.0:
        raise InputError("--alpha", f"must be between 0 and 1 (got {alpha})")


def _check_runtime(runtime: str | None) -> str:
    from adrcs.inference.onnx_runtime import check_runtime

    return check_runtime(runtime)


def _run_on_model(verb: str, model: Path, **request: object) -> None:
    """`verb` (evaluate / predict) of the task that wrote `model`, after its request checks."""
    from adrcs.tasks import Request, task_of

    task = task_of(model)
    req = Request(**request)  # type: ignore[arg-type]
    task.check_image_request(req)
    getattr(task, verb)(model, req, _say)


@app.command()
@reads_data
def evaluate(
    model: Path = typer.Option(..., "--model", "-m", help="Run folder written by `adrcs train`."),
    data: List[Path] = typer.Option(..., "--data", "-d", help="Labeled files, folders or quoted globs."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report JSON (default MODEL/evaluation.json)."),
    tta: Optional[bool] = typer.Option(None, "--tta/--no-tta", help="Average the 8 rot/flip views."),
    images: Optional[Path] = typer.Option(None, "--images", help="Pascal VOC: the images folder."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Pascal VOC: the XML annotations folder."),
    labels: Optional[Path] = LABELS,
    alpha: Optional[float] = ALPHA,
    runtime: str = RUNTIME,
    reading: Optional[dict] = None,
) -> None:
    """Evaluate a trained model: metrics table, report JSON and plots."""
    _check_alpha(alpha)
    _run_on_model("evaluate", model, data=list(data), out=out, images=images, annotations=annotations, tta=tta,
                  labels=labels, alpha=alpha, reading=reading, runtime=_check_runtime(runtime))


@app.command()
@reads_data
def predict(
    model: Path = typer.Option(..., "--model", "-m", help="Run folder written by `adrcs train`."),
    data: List[Path] = typer.Option(..., "--data", "-d", help="Files, folders or quoted globs of maps (any "
                                                            "format, labeled or not) or images."),
    out: Path = typer.Option(..., "--out", "-o", help="Predictions CSV (wafer maps, image classes) or, for a "
                                                     "detector, a folder (predictions.json/.csv, annotated/)."),
    tta: Optional[bool] = typer.Option(None, "--tta/--no-tta", help="Average the 8 rot/flip views."),
    threshold: Optional[float] = typer.Option(None, help="Multi-label decision threshold (default 0.5)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Pascal VOC: the images folder."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Pascal VOC: the XML annotations folder."),
    score_threshold: Optional[float] = typer.Option(None, help="Detection: minimum box score (default: the model's)."),
    labels: Optional[Path] = LABELS,
    annotated: bool = typer.Option(True, "--annotated/--no-annotated", help="Detection: write annotated/ images "
                                   "with the boxes drawn (off: only predictions.json / .csv)."),
    alpha: Optional[float] = ALPHA,
    runtime: Optional[str] = PREDICT_RUNTIME,
    engine: str = typer.Option("local", "--engine", help="local | ray: score in this process, or stream the "
                               "files through Ray Data into Parquet shards in the folder --out (wafer maps; "
                               "pip install 'adrcs[ray]')."),
    address: Optional[str] = typer.Option(None, "--address", help="--engine ray: the Ray cluster (auto | HOST:PORT); "
                                          "default: start a local Ray on this machine."),
    workers: Optional[int] = typer.Option(None, "--workers", help="--engine ray: scoring actors, one model each "
                                          "(default: the CPUs of this machine or of the cluster)."),
    reading: Optional[dict] = None,
) -> None:
    """Classify maps; one CSV row per map with the predicted class, its decision, set and probabilities."""
    _check_alpha(alpha)
    engine = _check_engine(engine, address, workers)
    runtime = "auto" if engine == "ray" and runtime is None else _check_runtime(runtime)
    _run_on_model("predict", model, data=list(data), out=out, images=images, annotations=annotations, tta=tta,
                  threshold=threshold, score_threshold=score_threshold, labels=labels, annotated=annotated,
                  alpha=alpha, reading=reading, runtime=runtime, engine=engine, address=address, workers=workers)


def _check_engine(engine: str, address: str | None, workers: int | None) -> str:
    """--engine validated; --address / --workers only with --engine ray; Ray installed (one line, exit 2)."""
    engine = engine.lower()
    if engine not in ("local", "ray"):
        raise InputError(None, f"--engine must be local or ray (got {engine!r})")
    if engine == "local":
        if address is not None or workers is not None:
            raise InputError(None, "--address / --workers are for --engine ray")
        return engine
    if workers is not None and workers < 1:
        raise InputError(None, f"--workers must be at least 1 (got {workers})")
    from adrcs.deploy.ray_predict import require_ray

    require_ray()
    return engine


