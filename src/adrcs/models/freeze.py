"""Inference-time optimisation for serving: a network traced and frozen with TorchScript.

A frozen TorchScript module runs its whole forward pass in C++ with the GIL released once, so a
service's event loop keeps answering requests while a micro-batch is on the CPU. An eager forward
releases and re-takes the GIL around every op, and each re-take can wait a whole GIL switch interval
while the event loop runs Python: under load that made a 3.5 ms forward pass take 10-20 ms. Input
encoding (e.g. one-hot) can be traced into the same graph for the same reason.
"""
from __future__ import annotations

import logging
import warnings
from typing import Callable

import torch
import torch.nn as nn

log = logging.getLogger(__name__)


class _Proba(nn.Module):
    """`net.predict_proba(encode(x))` as a module's forward (what gets traced); with `with_features`, the
    probabilities (N, C) and the network's features (N, F) side by side in one (N, C + F) tensor."""

    def __init__(self, net: nn.Module, encode: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 with_features: bool = False) -> None:
        super().__init__()
        self.net, self.encode, self.with_features = net, encode, with_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x if self.encode is None else self.encode(x)
        if not self.with_features:
            return self.net.predict_proba(x)
        feats = self.net.forward_features(x)
        logits = self.net.forward_head(feats)
        probs = torch.sigmoid(logits) if self.net.multilabel else torch.softmax(logits, dim=1)
        return torch.cat([probs, feats.flatten(1)], dim=1)


def freeze_predict_proba(net: nn.Module, example: torch.Tensor, atol: float = 1e-4,
                         encode: Callable[[torch.Tensor], torch.Tensor] | None = None, with_features: bool = False
                         ) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """`net.predict_proba(encode(x))` traced on `example` (N >= 2) and frozen; None when tracing fails or the
    frozen module disagrees with the eager one on `example` or on its first item alone (batch size must stay
    free). `encode` (tensor ops only) turns raw inputs into what the network takes. `with_features`: the
    frozen module returns probabilities and features side by side (see `_Proba`)."""
    net.eval()
    eager = _Proba(net, encode, with_features).eval()
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python values; checked below instead
            frozen = torch.jit.freeze(torch.jit.trace(eager, example))
            for x in (example, example[:1]):
                if not torch.allclose(frozen(x), eager(x), atol=atol):
                    log.warning("frozen %s disagrees with the eager model: serving the eager one",
                                type(net).__name__)
                    return None
    except Exception as e:  # any model TorchScript cannot trace is served eagerly
        log.warning("could not freeze %s (%s): serving the eager model", type(net).__name__, e)
        return None
    return frozen
