"""``--runtime onnx`` for detectors: backbone + FPN + head in ONNX Runtime, decoding by the torch model's code.

`OnnxDetector` is the checkpoint's `DetectorPipeline` (class names, input size, templates, score threshold,
score calibration) whose ``net`` is an `OnnxDetectorNet`: called like torchvision's detector in eval mode (a
list of prepared (C, S, S) images -> a list of ``boxes`` / ``scores`` / ``labels`` dicts), it runs the exported
graph on the stacked images and hands the raw head outputs to `deploy.detector_graph.decode`, i.e. the torch
model's own anchors, box decoding, top-k and NMS. Everything after (mapping boxes to each image's pixels, the
raw-score threshold, the score calibration) is `DetectorPipeline.predict_tensors` unchanged.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adrcs.deploy.detector_graph import INPUT_NAME, decode
from adrcs.detector_pipeline import DetectorPipeline
from adrcs.inference.onnx_runtime import default_threads, make_session, run_session


class OnnxDetectorNet(nn.Module):
    """The detector's forward pass (eval mode) with the network part in ONNX Runtime."""

    def __init__(self, torch_net: nn.Module, session: Any, meta: dict[str, Any]) -> None:
        super().__init__()
        self.torch_net = torch_net.eval()  # its postprocess_detections / anchor_generator / transform only
        self.session, self.meta = session, meta
        self.names = list(meta["outputs"])
        self.levels = meta["decoding"]["levels"]
        self.input_size = int(meta["input_size"])

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        if not images:
            return []
        x = torch.stack([t.float().cpu() for t in images]).numpy()
        outs = run_session(self.session, INPUT_NAME, x, batch_size=8)
        return decode(self.torch_net, self.levels, self.names, outs, self.input_size)


class OnnxDetector(DetectorPipeline):
    """A `DetectorPipeline` whose network runs in ONNX Runtime on the CPU (see the module docs)."""

    runtime: str = "onnx"
    onnx_path: Path
    threads: int

    @classmethod
    def wrap(cls, base: DetectorPipeline, onnx_path: str | Path, meta: dict[str, Any],
             threads: int | None = None) -> "OnnxDetector":
        """`base` (loaded on the CPU from the run's model.ckpt) with its network on `onnx_path`."""
        obj = cls(**{f.name: getattr(base, f.name) for f in fields(base)})
        obj.onnx_path = Path(onnx_path)
        obj.threads = default_threads() if threads is None else int(threads)
        obj.net = OnnxDetectorNet(base.net.cpu(), make_session(obj.onnx_path, obj.threads), meta)
        return obj

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def save(self, run_dir: str | Path, **extra: Any) -> Path:
        """Refused: the checkpoint the export came from is the model's source of truth."""
        raise TypeError("an ONNX-backed detector is not saved; save the PyTorch pipeline it wraps")

    def describe(self) -> str:
        """One line for the output summary."""
        return (f"runtime: {self.runtime} ({self.onnx_path.name}, ONNX Runtime CPU, {self.threads} intra-op "
                f"thread(s); decoding + NMS in PyTorch)")
