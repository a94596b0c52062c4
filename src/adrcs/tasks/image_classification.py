"""Whole-image defect classification of inspection images (optionally against a template)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from adrcs.image_classifier_pipeline import ImageClassifierPipeline
from adrcs.tasks.base import Printer, Request, Task
from adrcs.tasks.registry import register_task

FORMAT = ImageClassifierPipeline.FORMAT


def _train(cfg: dict[str, Any], req: Request, say: Printer) -> Any:
    from adrcs.api_image_classify import train_image_classifier

    return train_image_classifier(cfg, req.data[0], images=req.images, annotations=req.annotations,
                                  val=req.val[0] if req.val else None, out=req.out, say=say)


def _evaluate(model: Path, req: Request, say: Printer) -> Any:
    from adrcs.api_image_classify import evaluate_image_classifier

    return evaluate_image_classifier(model, req.data[0], images=req.images, annotations=req.annotations,
                                     out=req.out, say=say, runtime=req.runtime)


def _predict(model: Path, req: Request, say: Printer) -> Any:
    from adrcs.api_image_classify import predict_image_classifier

    return predict_image_classifier(model, req.data[0], images=req.images, annotations=req.annotations,
                                    out=req.out, score_threshold=req.score_threshold, say=say,
                                    on_error=(req.reading or {}).get("on_error", "stop"), runtime=req.runtime)


def _load(run_dir: str | Path, device: str = "cpu") -> Any:
    return ImageClassifierPipeline.load(run_dir, device=device)


IMAGE_CLASSIFICATION = register_task(Task(name="image_classify", format=FORMAT, what="image classifier", image=True,
                                          train=_train, evaluate=_evaluate, predict=_predict, load=_load))
