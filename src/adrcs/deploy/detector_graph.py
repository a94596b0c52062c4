"""What goes into a detector's ``model.onnx``: the network part that exports cleanly, and the sample images it
is checked on.

The graph (`DetectorGraph`) takes the prepared float32 input (N, C, S, S) in [0, 1] (`detector_pipeline.
prepare_input`: decode, square resize, test / template / difference channels run before it, in Python) and
runs the model's own normalisation (``transform.normalize``), the zero padding of ``transform.batch_images``
to a multiple of ``size_divisible``, the backbone + FPN and the head. Its outputs are the head's raw outputs
with every pyramid level concatenated along dimension 1, as torchvision's one-stage heads return them:
``cls_logits`` (N, A, K+1), ``bbox_regression`` (N, A, 4) and, for FCOS, ``bbox_ctrness`` (N, A, 1); the
metadata records each level's feature size, stride and anchor count so the outputs can be split again.

Decoding (anchors, box coder, score threshold, top-k, NMS) stays in Python: `decode` hands the ONNX outputs to
the torch model's own ``anchor_generator``, ``postprocess_detections`` and ``transform.postprocess``, exactly
what its ``forward`` does after the head. One-stage detectors (FCOS, RetinaNet) export; two-stage ones
(Faster R-CNN: RPN proposals + RoIAlign) do not.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adrcs.errors import InputError

INPUT_NAME = "images"
HEAD_KEYS = ("cls_logits", "bbox_regression", "bbox_ctrness")  # torchvision's names, in this order
SAMPLE_IMAGES = 12  # sample images the export is checked on


def check_exportable(pipe: Any, run_dir: Any = None) -> None:
    """One-line error for a detector whose network does not export (two-stage: proposals + RoIAlign)."""
    if not hasattr(pipe.net, "postprocess_detections") or not hasattr(pipe.net, "head"):
        raise InputError(run_dir, f"ONNX export of two-stage detectors ({pipe.detector}) is not supported; "
                                  "one-stage ones (fcos_*, retinanet_*) export")


class DetectorGraph(nn.Module):
    """prepared images (N, C, S, S) -> normalise -> pad -> backbone + FPN -> head raw outputs (see module docs)."""

    def __init__(self, net: nn.Module, input_size: int) -> None:
        super().__init__()
        self.net = net
        div = int(getattr(net.transform, "size_divisible", 32))
        self.padded = int(np.ceil(input_size / div) * div)
        self.pad = self.padded - int(input_size)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The pyramid levels for prepared images (as the model's forward computes them)."""
        x = self.net.transform.normalize(x)  # (x - mean[:, None, None]) / std[:, None, None]: any batch
        if self.pad:
            x = F.pad(x, (0, self.pad, 0, self.pad))  # batch_images: zeros right and below
        feats = self.net.backbone(x)
        return list(feats.values()) if isinstance(feats, dict) else [feats]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net.head(self.features(images))
        return tuple(out[k] for k in HEAD_KEYS if k in out)


def output_names(graph: DetectorGraph, input_size: int, in_chans: int) -> list[str]:
    """The head's output names (FCOS: three, RetinaNet: two), from one forward pass."""
    with torch.no_grad():
        out = graph.net.head(graph.features(torch.zeros(1, in_chans, input_size, input_size)))
    return [k for k in HEAD_KEYS if k in out]


def level_info(graph: DetectorGraph, input_size: int, in_chans: int) -> dict[str, Any]:
    """Per pyramid level: feature size [H, W], stride, anchors (outputs rows); anchor sizes / aspect ratios."""
    with torch.no_grad():
        x = torch.zeros(1, in_chans, input_size, input_size)
        feats = graph.features(x)
        rows = int(graph.net.head(feats)["cls_logits"].shape[1])
    hw = [int(f.shape[-2] * f.shape[-1]) for f in feats]
    per_loc = rows // sum(hw)
    gen = graph.net.anchor_generator
    return {"padded_size": graph.padded, "feature_sizes": [[int(f.shape[-2]), int(f.shape[-1])] for f in feats],
            "strides": [graph.padded // int(f.shape[-2]) for f in feats], "anchors_per_location": per_loc,
            "num_anchors_per_level": [n * per_loc for n in hw], "anchor_sizes": [list(s) for s in gen.sizes],
            "aspect_ratios": [list(a) for a in gen.aspect_ratios]}


def _anchors(net: nn.Module, levels: dict[str, Any], n: int) -> list[torch.Tensor]:
    """The model's anchors for `n` images of the padded size (its own `anchor_generator`)."""
    from torchvision.models.detection.image_list import ImageList

    p = int(levels["padded_size"])
    dummy = ImageList(torch.empty(n, 0, p, p), [(p, p)] * n)
    feats = [torch.empty(1, 0, h, w) for h, w in levels["feature_sizes"]]  # only their shapes are read
    return net.anchor_generator(dummy, feats)


def decode(net: nn.Module, levels: dict[str, Any], names: list[str], outputs: list[np.ndarray] | list[torch.Tensor],
           input_size: int) -> list[dict[str, torch.Tensor]]:
    """Detections (torchvision's eval output: boxes in input pixels, scores, 1-based labels) from the head's raw
    outputs, by the torch model's own post-processing (`postprocess_detections`, `transform.postprocess`)."""
    head = {k: torch.as_tensor(v) for k, v in zip(names, outputs)}
    n = int(head["cls_logits"].shape[0])
    if n == 0:
        return []
    counts = [int(c) for c in levels["num_anchors_per_level"]]
    split = {k: list(v.split(counts, dim=1)) for k, v in head.items()}
    anchors = [list(a.split(counts)) for a in _anchors(net, levels, n)]
    sizes = [(int(input_size), int(input_size))] * n
    with torch.no_grad():
        dets = net.postprocess_detections(split, anchors, sizes)
        return net.transform.postprocess(dets, sizes, sizes)


def sample_images(pipe: Any, n: int = SAMPLE_IMAGES, seed: int = 0) -> np.ndarray:
    """`n` prepared inputs (N, C, S, S) float32 of synthetic inspection images: a noisy mid-grey board with a few
    bright and dark rectangles (and its defect-free template when the model uses one)."""
    from adrcs.detector_pipeline import prepare_input

    rng = np.random.default_rng(seed)
    s, base_c = int(pipe.input_size), 3 if pipe.image_mode == "RGB" else 1
    out = []
    for _ in range(n):
        shape = (s, s, base_c) if base_c == 3 else (s, s)
        base = (120 + rng.integers(0, 12, shape)).astype(np.uint8)
        img = base.copy()
        for _ in range(int(rng.integers(1, 5))):
            w, h = (int(v) for v in rng.integers(max(2, s // 16), max(3, s // 3), 2))
            x, y = int(rng.integers(0, s - w)), int(rng.integers(0, s - h))
            img[y:y + h, x:x + w] = 235 if rng.random() < 0.5 else 15
        out.append(prepare_input(img, base if pipe.use_template else None, s, pipe.use_template).numpy())
    return np.stack(out).astype(np.float32)
