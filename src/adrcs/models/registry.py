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


def model_arg_names(name: str) -> set[str] | None:
    """The keyword arguments model `name`'s constructor takes (None: it takes any, or the name is unknown)."""
    import inspect

    fn = _MODELS.get(name)
    if fn is None:
        return None
    names: set[str] = set()
    for f in (fn, _returned_class(fn)):  # a factory taking **kwargs passes them to the class it returns
        if f is None:
            return None
        params = list(inspect.signature(f).parameters.values())
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names - {"num_classes", "self"}
    return None


def _returned_class(fn: Callable[..., nn.Module]) -> type | None:
    import typing

    try:
        ret = typing.get_type_hints(fn).get("return")
    except Exception:  # an annotation that does not resolve
        return None
    return ret if isinstance(ret, type) else None


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered model: `create_model("ffn", num_classes=9, multilabel=False, width=32)`."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _MODELS[name](num_classes=num_classes, **kwargs)
