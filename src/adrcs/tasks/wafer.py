"""Wafer-map classification (single- or multi-label; plain or sinogram-feature models, with balancing)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from adrcs.pipeline import Pipeline
from adrcs.tasks.base import Printer, Request, Task
from adrcs.tasks.registry import register_task

FORMAT = Pipeline.FORMAT


def _train(cfg: dict[str, Any], req: Request, say: Printer) -> Any:
    from adrcs.api import train

    return train(cfg, list(req.data), list(req.val) if req.val else None, req.out, say=say,
                 unlabeled_paths=list(req.unlabeled) if req.unlabeled else None, **(req.reading or {}))


def _evaluate(model: Path, req: Request, say: Printer) -> Any:
    from adrcs.api import evaluate

    return evaluate(model, list(req.data), req.out, tta=req.tta, say=say, labels=req.labels, alpha=req.alpha,
                    runtime=req.runtime, **(req.reading or {}))


def _predict(model: Path, req: Request, say: Printer) -> Any:
    from adrcs.api import predict

    threshold = 0.5 if req.threshold is None else req.threshold
    if req.engine == "ray":
        from adrcs.deploy.ray_predict import predict_ray

        return predict_ray(model, list(req.data), req.out, tta=req.tta, threshold=threshold, say=say,
                           labels=req.labels, alpha=req.alpha, runtime=req.runtime, address=req.address,
                           workers=req.workers, **(req.reading or {}))
    return predict(model, list(req.data), req.out, tta=req.tta, threshold=threshold, say=say, labels=req.labels,
                   alpha=req.alpha, runtime=req.runtime, **(req.reading or {}))


def _load(run_dir: str | Path, device: str = "cpu") -> Any:
    return Pipeline.load(run_dir, device=device)


WAFER = register_task(Task(name="wafer", format=FORMAT, what="wafer-map model", image=False, train=_train,
                           evaluate=_evaluate, predict=_predict, load=_load))
