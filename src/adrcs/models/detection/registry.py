"""Detector registry: `register_detector(name, builder, **preset)`, `create_detector(name, ...)`."""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_PRESETS: dict[str, dict[str, Any]] = {}

DEFAULT_DETECTOR = "fcos_r18_slim"
"""CPU-practical default: FCOS on a quarter-width ResNet-18 trunk (see `list_detectors`)."""


def register_detector(name: str, builder: Callable[..., nn.Module], **preset: Any) -> None:
    """Add `name`: `builder(num_classes=, in_chans=, min_size=, max_size=, **preset, **kw)` builds it."""
    if name in _BUILDERS:
        raise ValueError(f"detector {name!r} registered twice")
    _BUILDERS[name] = builder
    _PRESETS[name] = dict(preset)


def list_detectors() -> list[str]:
    """Names of the registered detectors."""
    return sorted(_BUILDERS)


def detector_preset(name: str) -> dict[str, Any]:
    """The keyword arguments `name` adds to its builder (a copy)."""
    _check(name)
    return dict(_PRESETS[name])


def create_detector(name: str, num_classes: int, in_chans: int = 1, min_size: int = 640, max_size: int = 640,
                    **kw: Any) -> nn.Module:
    """Build a torchvision detector, untrained (nothing is downloaded).

    num_classes: defect classes, without background. The model is built with one extra slot:
        it takes and returns labels 1..num_classes (0 is background, torchvision's convention),
        i.e. label = class index + 1.
    in_chans: input channels (1 grey, 3 for `reference_channels` test/template/difference).
    min_size, max_size: the model's internal resize (GeneralizedRCNNTransform); 640/640 keeps
        640x640 DeepPCB images as they are.
    kw: override the preset (e.g. ``width_mult``, ``fpn_channels``, ``norm``, ``score_thresh``)
        or pass through to the torchvision constructor.
    """
    _check(name)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    args = {**_PRESETS[name], **kw}
    return _BUILDERS[name](num_classes=num_classes, in_chans=in_chans, min_size=min_size, max_size=max_size, **args)


def _check(name: str) -> None:
    if name not in _BUILDERS:
        raise ValueError(f"unknown detector {name!r}; known detectors: {', '.join(list_detectors())}")
