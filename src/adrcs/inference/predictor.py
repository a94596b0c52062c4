"""The base of every saved model (anomalib's deploy layer): one checkpoint layout, one save / load.

A `Predictor` subclass names its checkpoint `FORMAT` (the task registry maps formats to tasks), lists the
plain-data fields it writes (`checkpoint_fields`) and rebuilds itself from them (`from_checkpoint`); `save`
and `load` are shared: ``model.ckpt`` = {format, the fields, preprocessing, state_dict, extra...}, read back
with ``torch.load(weights_only=True)`` only. Classifiers also share `predict(inputs) -> Predictions`:
pre-process -> forward (`predict_proba`) -> the decisions of `inference.decisions`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from adrcs.inference.decisions import DEFAULT_THRESHOLD, confidence, decide

CHECKPOINT_NAME = "model.ckpt"
_FRAME_KEYS = ("format", "preprocessing", "state_dict")


@dataclass(frozen=True)
class Predictions:
    """A classifier's answer for N inputs: probabilities (N, K), the decided labels (class index per row, or a
    0/1 matrix when multi-label) and one confidence per row (see `inference.decisions`)."""

    probabilities: np.ndarray
    class_names: list[str]
    multilabel: bool
    labels: np.ndarray
    confidence: np.ndarray

    def names(self) -> list[str] | list[list[str]]:
        """The decided class name per row (multi-label: the list of set labels)."""
        if self.multilabel:
            return [[c for c, h in zip(self.class_names, row) if h] for row in self.labels]
        return [self.class_names[int(i)] for i in self.labels]


class Predictor:
    """Shared save / load / predict of saved models; subclasses are dataclasses with `net`, `class_names`,
    `extra` and a `preprocessing` property."""

    FORMAT: ClassVar[str] = ""
    WHAT: ClassVar[str] = "model"   # in messages: "not an ADRCS wafer-map model"
    net: torch.nn.Module
    class_names: list[str]
    extra: dict[str, Any]

    # ------------------------------------------------------------ what a subclass provides

    def checkpoint_fields(self) -> dict[str, Any]:
        """The plain-data fields (besides format, preprocessing, weights and extra) `from_checkpoint` needs."""
        raise NotImplementedError

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any], path: Path, device: str) -> "Predictor":
        """Rebuild the model (weights loaded, on `device`) from a checkpoint dict; `extra` is set by `load`."""
        raise NotImplementedError

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------ shared

    def save(self, run_dir: str | Path, **extra: Any) -> Path:
        """Write ``run_dir/model.ckpt``. `extra` values must be plain Python types (the file loads with
        ``weights_only=True``)."""
        if getattr(self.net, "adrcs_fused", False):
            raise RuntimeError("a loaded model has BatchNorm folded into its convolutions and cannot be saved; "
                               "save the trained model, or change the checkpoint file's fields in place")
        path = Path(run_dir) / CHECKPOINT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": self.FORMAT, **self.checkpoint_fields(), "preprocessing": self.preprocessing,
                    "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                    **self.extra, **extra}, path)
        return path

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "cpu") -> Any:
        """Load a run folder (or a `model.ckpt` path) whose checkpoint has this class's format."""
        from adrcs.checkpoint import read_checkpoint

        ck, path = read_checkpoint(run_dir, cls.FORMAT, cls.WHAT, device)
        model = cls.from_checkpoint(ck, path, device)
        known = set(_FRAME_KEYS) | set(model.checkpoint_fields()) | set(getattr(cls, "LEGACY_KEYS", ()))
        model.extra = {k: v for k, v in ck.items() if k not in known}
        return model

    def predict_proba(self, inputs: Any) -> np.ndarray:
        raise NotImplementedError

    def predict(self, inputs: Any, threshold: float = DEFAULT_THRESHOLD) -> Predictions:
        """Probabilities, decided labels and confidences for `inputs` (what `predict_proba` takes)."""
        probs = self.predict_proba(inputs)
        multilabel = bool(getattr(self, "multilabel", False))
        return Predictions(probs, list(self.class_names), multilabel, decide(probs, multilabel, threshold),
                           confidence(probs, multilabel, threshold))
