"""Model registry in the style of timm: `@register("name")` on a constructor, `create_model(name, ...)`."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_INPUT: dict[str, str] = {}  # "map": one-hot wafer maps (N, 3, S, S); "sequence": 1-D features (N, L)


def register(name: str, input: str = "map") -> Callable:
    """Decorator adding a model constructor to the registry under `name` (`input`: map | sequence)."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        _INPUT[name] = input
        return fn

    return deco


def list_models(input: str | None = None) -> list[str]:
    """Names of the registered models (only those taking `input`, when given)."""
    return sorted(n for n in _MODELS if input is None or _INPUT[n] == input)


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered model: `create_model("ffn", num_classes=9, multilabel=False, width=32)`."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODELS[name](num_classes=num_classes, **kwargs)
