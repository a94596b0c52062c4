"""What goes into ``model.onnx``: the exported graphs (input encoding traced in) and the sample inputs they are
checked on.

Wafer-map models take the prepared die codes uint8 (N, S, S) (0 off-wafer, 1 good, 2 failing; resized as the
checkpoint says) and do the one-hot encoding inside the graph, so the ONNX model runs from codes to logits.
Sinogram-feature models take the selected features float32 (N, L) (input ``sinogram_features``): the feature
step (SBAE encoder, Radon, standardise + select) runs before the graph, from ``model.ckpt``. Image classifiers
take the prepared uint8 images (N, C, S, S) and scale by 1/255 inside. Every graph has three outputs: ``logits`` (N, K),
``probabilities`` (N, K) (softmax, or sigmoid when multi-label; before temperature scaling) and ``features``
(N, F) (what the unknown score reads).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

OUTPUT_NAMES = ("logits", "probabilities", "features")
SAMPLE_MAPS = 512  # sample maps the export is checked on (INT8: calibrated on half, reported on the other)


class _Outputs(nn.Module):
    """logits, probabilities and features of a `WaferClassifier` for the network's own input."""

    def __init__(self, net: nn.Module, multilabel: bool) -> None:
        super().__init__()
        self.net, self.multilabel = net, bool(multilabel)

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.net.forward_features(x)
        logits = self.net.forward_head(feats)
        probs = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)
        return logits, probs, feats.flatten(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.outputs(x)


class WaferGraph(_Outputs):
    """uint8 die codes (N, S, S) -> one-hot (N, 3, S, S) -> the network (as `Pipeline._encode` + `predict_outputs`)."""

    def forward(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        codes = maps.to(torch.int64)  # Equal on int64 runs everywhere (uint8 Equal is not in every runtime)
        x = torch.stack([codes == 0, codes == 1, codes == 2], dim=1).to(torch.float32)
        return self.outputs(x)


class ImageGraph(_Outputs):
    """uint8 images (N, C, S, S) -> x / 255 -> the network (as `ImageClassifierPipeline.predict_outputs`)."""

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.outputs(images.to(torch.float32) / 255.0)


def graph_for(kind: str, pipe: Any) -> tuple[nn.Module, str]:
    """The module to export for a loaded model and the name of its input."""
    if kind == "image_classify":
        return ImageGraph(pipe.net, False).eval(), "images"
    if pipe.features is not None:
        return _Outputs(pipe.net, pipe.multilabel).eval(), "sinogram_features"
    return WaferGraph(pipe.net, pipe.multilabel).eval(), "maps"


def random_maps(n: int, size: int, seed: int = 0) -> np.ndarray:
    """`n` wafer-like die-code maps (N, S, S) uint8: a disc of good dies, 5-40 % of them failing."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2)
    out = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        on = r <= size / 2 * rng.uniform(0.8, 1.0)
        fail = rng.random((size, size)) < rng.uniform(0.05, 0.4)
        out[i][on] = np.where(fail[on], 2, 1)
    return out


def sample_inputs(kind: str, pipe: Any, n: int = SAMPLE_MAPS, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(graph input, labels in the model's class order or None, what it is) for checking an export.

    Wafer maps: up to `n` maps of the shipped validation sample (WM-811K, or MixedWM38 for multi-label models)
    prepared as the model prepares maps, with their labels when the sample has the model's classes; random
    wafer-like maps when the sample cannot be read. Image classifiers: random uint8 images."""
    if kind == "image_classify":
        c = int(pipe.model_args.get("in_chans") or image_channels(pipe.image_mode, pipe.use_template))
        x = np.random.default_rng(seed).integers(0, 256, (min(n, 32), c, pipe.input_size, pipe.input_size),
                                                 dtype=np.uint8)
        return x, None, f"{len(x)} random images"
    maps, labels, what = _sample_maps(pipe, n, seed)
    x = pipe.prepare(list(maps)).numpy()
    if pipe.features is not None:
        x = pipe.features.transform(x)
    return x, labels, what


def image_channels(image_mode: str, use_template: bool) -> int:
    """Input channels of an image classifier (as `engine.image_tensors.image_channels` stacks them)."""
    base = 3 if image_mode == "RGB" else 1
    return base + (base + 1 if use_template else 0)


def _sample_maps(pipe: Any, n: int, seed: int) -> tuple[list[np.ndarray] | np.ndarray, np.ndarray | None, str]:
    from adrcs.data.loader import load
    from adrcs.samples import sample_path

    name = "mixedwm38_val" if pipe.multilabel else "wm811k_val"
    try:
        ds = load(sample_path(name))
    except Exception:  # noqa: BLE001 - a broken install still exports, checked on random maps
        return random_maps(n, pipe.input_size, seed), None, f"{n} random wafer-like maps"
    rows = np.sort(np.random.default_rng(seed).choice(len(ds), size=min(n, len(ds)), replace=False))
    ds = ds.subset(rows)
    labels = None
    if ds.multilabel == pipe.multilabel:
        try:
            labeled = ds.with_classes(list(pipe.class_names))
            labels = np.clip(labeled.labels, 0, None) if labeled.multilabel else labeled.labels
        except ValueError:  # the model knows other classes: agreement only, no accuracy
            labels = None
    return ds.maps, labels, f"{len(ds)} maps of the {sample_path(name).name} sample"


def torch_outputs(graph: nn.Module, x: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
    """The exported module's outputs in PyTorch (the reference the ONNX model is checked against)."""
    outs: list[list[np.ndarray]] = [[], [], []]
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            for o, t in zip(outs, graph(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])))):
                o.append(t.float().numpy())
    return [np.concatenate(o) for o in outs]
