"""``--runtime onnx`` for image classifiers: the network run by ONNX Runtime from the run's checked ``model.onnx``.

`OnnxImageClassifier` is the checkpoint's `ImageClassifierPipeline` (same fields: class names, image mode,
templates, trust layer) whose ``predict_outputs`` runs the exported graph (`deploy.onnx_graphs.ImageGraph`:
uint8 images -> x / 255 -> network -> logits, probabilities, features) instead of PyTorch; reading and
resizing the images, the temperature, sets and unknown score stay the checkpoint's own code, so its answers
equal PyTorch's within the export's checked tolerance. Threads as `inference.onnx_runtime.make_session` pins them.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adrcs.image_classifier_pipeline import ImageClassifierPipeline
from adrcs.inference.onnx_runtime import default_threads, make_session, run_session


class OnnxImageClassifier(ImageClassifierPipeline):
    """An `ImageClassifierPipeline` whose network runs in ONNX Runtime (see the module docs)."""

    runtime: str = "onnx"
    onnx_path: Path
    threads: int
    session: Any

    @classmethod
    def wrap(cls, base: ImageClassifierPipeline, onnx_path: str | Path, threads: int | None = None,
             runtime: str = "onnx") -> "OnnxImageClassifier":
        """`base` (loaded from the run's model.ckpt) with its forward pass on `onnx_path`."""
        obj = cls(**{f.name: getattr(base, f.name) for f in fields(base)})
        obj.runtime, obj.onnx_path = runtime, Path(onnx_path)
        obj.threads = default_threads() if threads is None else int(threads)
        obj.session = make_session(obj.onnx_path, obj.threads)
        return obj

    def describe(self) -> str:
        """One line for the output summary."""
        return (f"runtime: {self.runtime} ({self.onnx_path.name}, ONNX Runtime CPU, {self.threads} intra-op "
                f"thread(s))")

    def predict_outputs(self, x: torch.Tensor | np.ndarray, batch_size: int = 64,
                        calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (N, K) (temperature-scaled with a `trust` and `calibrated`) and features (N, F) for
        prepared uint8 images (N, C, S, S)."""
        arr = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        _, probs, feats = run_session(self.session, "images", arr.astype(np.uint8, copy=False), max(batch_size, 1))
        if len(arr) == 0:
            return np.zeros((0, len(self.class_names)), np.float32), np.zeros((0, 0), np.float32)
        if calibrated and self.trust is not None:
            probs = self.trust.calibrate(probs)
        return np.asarray(probs, np.float32), np.asarray(feats, np.float32)
