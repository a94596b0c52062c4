"""Defect detection on inspection images: boxes with their class (FCOS / RetinaNet / Faster R-CNN)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from adrcs.detector_pipeline import DetectorPipeline
from adrcs.tasks.base import Printer, Request, Task
from adrcs.tasks.registry import register_task

FORMAT = DetectorPipeline.FORMAT


def _train(cfg: dict[str, Any], req: Request, say: Printer) -> Any:
    from adrcs.api_images import train_detection

    return train_detection(cfg, req.data[0], images=req.images, annotations=req.annotations,
                           val=req.val[0] if req.val else None, out=req.out, say=say)


def _evaluate(model: Path, req: Request, say: Printer) -> Any:
    from adrcs.api_images import evaluate_detection

    return evaluate_detection(model, req.data[0], images=req.images, annotations=req.annotations, out=req.out,
                              say=say, runtime=req.runtime)


def _predict(model: Path, req: Request, say: Printer) -> Any:
    from adrcs.api_images import predict_detection

    return predict_detection(model, req.data[0], images=req.images, annotations=req.annotations, out=req.out,
                             score_threshold=req.score_threshold, say=say, annotated=req.annotated,
                             on_error=(req.reading or {}).get("on_error", "stop"), runtime=req.runtime)


def _load(run_dir: str | Path, device: str = "cpu") -> Any:
    return DetectorPipeline.load(run_dir, device=device)


DETECTION = register_task(Task(name="detect", format=FORMAT, what="detector", image=True, train=_train,
                               evaluate=_evaluate, predict=_predict, load=_load))
