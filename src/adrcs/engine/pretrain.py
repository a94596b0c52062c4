"""Self-supervised pretraining of a wafer-map encoder, and the encoder file (`encoder.pt`) it writes.

The encoder is a registered wafer-map network's `forward_features` (everything but its `head`). Two methods:

- ``simclr`` (default): two augmented views per map (`transforms.map_augment`), an MLP projector, and the
  NT-Xent loss (each view must pick its partner among the 2N - 1 other views of the batch, cosine similarity
  over `temperature`). It needs no momentum encoder, learns fast in few epochs and has one knob that
  matters (the temperature), which fits a CPU budget of minutes on 3-channel maps of a few dozen pixels.
- ``byol``: an online encoder + projector + predictor regresses an exponential moving average of itself
  (target encoder + projector, `momentum` raised to 1 on a cosine schedule); no negatives, so a batch full
  of near-identical defect-free maps is no problem, at the cost of more epochs before it pays off.

The losses are a few lines each and written here rather than taken from a self-supervised library.

`encoder.pt` (format ``adrcs-encoder/1``, plain data: loads with ``torch.load(weights_only=True)``) holds the
model name, model_args, input_size, resize, the encoder's state_dict (no ``head.`` keys) and a ``pretrain``
summary; `init_from_encoder` copies it into a fresh network before `adrcs train --init DIR` trains it.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from adrcs.engine.optim import build_optimizer, build_schedule, decay_groups
from adrcs.engine.progress import progress_steps
from adrcs.errors import InputError
from adrcs.models import create_model, list_models
from adrcs.transforms.map_augment import MapAugment, two_views
from adrcs.transforms.one_hot import one_hot_maps

ENCODER_FORMAT = "adrcs-encoder/1"
ENCODER_NAME = "encoder.pt"
METHODS = ("simclr", "byol")
HEAD_PREFIX = "head."
# Pretraining options (the `pretrain:` mapping of a pretraining config); the rest comes from the run config.
OPTIONS: dict[str, Any] = {"method": "simclr", "temperature": 0.2, "proj_dim": 128, "proj_hidden": 512,
                           "momentum": 0.99, **MapAugment().state()}


def pretrain_options(given: dict[str, Any] | None = None) -> dict[str, Any]:
    """`OPTIONS` updated by `given`, checked: one-line InputError naming the option otherwise."""
    opts = dict(OPTIONS)
    for key, value in (given or {}).items():
        if key not in OPTIONS:
            raise InputError(None, f"unknown pretraining option --{key.replace('_', '-')}; known: {sorted(OPTIONS)}")
        if key == "method":
            opts[key] = str(value).lower()
            continue
        try:
            opts[key] = type(OPTIONS[key])(value)
        except (TypeError, ValueError):
            raise InputError(None, f"--{key.replace('_', '-')}: cannot read {value!r} as a number")
    if opts["method"] not in METHODS:
        raise InputError(None, f"--method must be one of {', '.join(METHODS)} (got {opts['method']!r})")
    if opts["temperature"] <= 0 or opts["proj_dim"] < 1 or opts["proj_hidden"] < 1:
        raise InputError(None, "temperature must be > 0 and proj_dim, proj_hidden >= 1")
    if not 0 <= opts["momentum"] < 1:
        raise InputError(None, f"--momentum must be in [0, 1) (got {opts['momentum']})")
    augment_options(opts)
    return opts


def augment_options(opts: dict[str, Any]) -> MapAugment:
    """The `MapAugment` of pretraining options; one-line InputError for impossible strengths."""
    try:
        return MapAugment(**{k: float(opts[k]) for k in MapAugment().state()})
    except ValueError as e:
        raise InputError(None, f"pretraining augmentation: {e}")


def check_pretrainable(cfg: dict[str, Any]) -> None:
    """Pretraining needs a wafer-map network with a separate `head` (one line otherwise)."""
    if cfg.get("task", "wafer") != "wafer" or cfg.get("features", "none") != "none":
        raise InputError(None, "pretraining is for wafer-map models (task: wafer, features: none)")
    if cfg["model"] not in list_models("map"):
        raise InputError(None, f"model {cfg['model']!r} is not a wafer-map model; one of {list_models('map')}")


def mlp(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    """Linear -> BatchNorm -> ReLU -> Linear: the projector / predictor of SimCLR and BYOL."""
    return nn.Sequential(nn.Linear(c_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, c_out))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised-temperature cross entropy: row i of `z1` and row i of `z2` are a positive pair."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss 2 - 2 cos(p, z), batch mean (z is the target: no gradient)."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


def feature_dim(net: nn.Module, input_size: int) -> int:
    """Width of `net.forward_features` (its `num_features`, else from one forward pass)."""
    if isinstance(getattr(net, "num_features", None), int):
        return int(net.num_features)
    was = net.training
    net.eval()
    with torch.no_grad():
        dim = net.forward_features(torch.zeros(2, 3, input_size, input_size)).flatten(1).shape[1]
    net.train(was)
    return int(dim)


class SelfSupervised(nn.Module):
    """A network's encoder with the projector (+ BYOL's predictor and momentum target) of `method`."""

    def __init__(self, net: nn.Module, input_size: int, method: str = "simclr", proj_dim: int = 128,
                 proj_hidden: int = 512, temperature: float = 0.2) -> None:
        super().__init__()
        self.net, self.method, self.temperature = net, method, temperature
        self.projector = mlp(feature_dim(net, input_size), proj_hidden, proj_dim)
        if method == "byol":
            self.predictor = mlp(proj_dim, proj_hidden, proj_dim)
            self.target_net = copy.deepcopy(net).requires_grad_(False)
            self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def trainable(self) -> list[nn.Parameter]:
        """The parameters the optimiser updates: encoder (not the head), projector, predictor."""
        own = [p for n, p in self.net.named_parameters() if not n.startswith(HEAD_PREFIX)]
        extra = [self.projector] + ([self.predictor] if self.method == "byol" else [])
        return own + [p for m in extra for p in m.parameters()]

    @staticmethod
    def encode(net: nn.Module, maps: torch.Tensor) -> torch.Tensor:
        """uint8 die codes (N, S, S) -> encoder features (N, F)."""
        x = one_hot_maps(maps).contiguous(memory_format=torch.channels_last)
        return net.forward_features(x).flatten(1)

    def loss(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """The method's loss on two views (uint8 maps) of the same batch; both views go through one pass."""
        n = v1.shape[0]
        z = self.projector(self.encode(self.net, torch.cat([v1, v2])))
        if self.method == "simclr":
            return nt_xent(z[:n], z[n:], self.temperature)
        p = self.predictor(z)
        with torch.no_grad():
            t = self.target_projector(self.encode(self.target_net, torch.cat([v1, v2])))
        return byol_loss(p[:n], t[n:]) + byol_loss(p[n:], t[:n])

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """BYOL: target <- tau * target + (1 - tau) * online (BatchNorm statistics copied)."""
        if self.method != "byol":
            return
        for online, target in ((self.net, self.target_net), (self.projector, self.target_projector)):
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.mul_(tau).add_(po.detach(), alpha=1 - tau)
            for bo, bt in zip(online.buffers(), target.buffers()):
                bt.copy_(bo)


@dataclass
class PretrainRun:
    """`pretrain_encoder`'s result: the network (CPU, eval mode; its head untrained) and the loss per epoch."""

    net: nn.Module
    history: list[dict[str, float]]
    seconds: float


def torch_device(name: str) -> torch.device:
    """The torch device of a config's `device`: auto (CUDA when there is one) | cpu | gpu / cuda | mps."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device("cuda" if name in ("gpu", "cuda") else name)


def pretrain_encoder(cfg: dict[str, Any], options: dict[str, Any], maps: torch.Tensor,
                     say: Callable[[str], None] = print) -> PretrainRun:
    """Train `cfg['model']`'s encoder on prepared uint8 maps (N, S, S) without labels, as `options` say
    (`pretrain_options`); optimiser, lr, weight decay, schedule, batch size, epochs, seed, device from `cfg`."""
    check_pretrainable(cfg)
    opts = pretrain_options(options)
    aug = augment_options(opts)
    seed, size = int(cfg["seed"]), int(cfg["input_size"])
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = create_model(cfg["model"], num_classes=2, **dict(cfg["model_args"] or {}))
    model = SelfSupervised(net, size, opts["method"], int(opts["proj_dim"]), int(opts["proj_hidden"]),
                           float(opts["temperature"]))
    device = torch_device(str(cfg["device"]))
    model = model.to(device).to(memory_format=torch.channels_last)
    n = len(maps)
    if n < 2:
        raise InputError(None, f"pretraining needs at least 2 maps (got {n})")
    batch = min(int(cfg["batch_size"]), n)
    steps, epochs = max(1, n // batch), int(cfg["epochs"])  # full batches only: NT-Xent and BatchNorm like them
    total = steps * epochs
    lr = float(cfg["lr"])
    opt = build_optimizer(decay_groups(model.trainable(), float(cfg["weight_decay"])), cfg["optimizer"], lr,
                          float(cfg["weight_decay"]))
    sched = build_schedule(opt, cfg["scheduler"], lr, total) if cfg["scheduler"] != "none" else None
    say(f"pretraining {cfg['model']} ({opts['method']}) on {n} maps, {epochs} epochs of {steps} batches of {batch}, "
        f"input {size}px, on {device.type}")
    history: list[dict[str, float]] = []
    t0, done = time.time(), 0
    model.train()
    with progress_steps(total, "pretraining", say, enabled=bool(cfg.get("progress", True))) as step:
        for epoch in range(epochs):
            perm, losses, t_epoch = torch.randperm(n, generator=gen), [], time.time()
            for i in range(steps):
                x = maps[perm[i * batch:(i + 1) * batch]].to(device)
                v1, v2 = two_views(x, aug, gen)
                loss = model.loss(v1, v2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                done += 1
                model.update_target(1 - (1 - opts["momentum"]) * (math.cos(math.pi * done / total) + 1) / 2)
                losses.append(float(loss.detach()))
                step(f"loss {losses[-1]:.4f}")
            history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": opt.param_groups[0]["lr"],
                            "seconds": round(time.time() - t_epoch, 2)})
            say(f"epoch {epoch + 1}/{epochs}  loss {history[-1]['loss']:.4f}  "
                f"({history[-1]['seconds']:.1f}s, {time.time() - t0:.0f}s total)")
    net = model.net.cpu().to(memory_format=torch.contiguous_format).eval()
    return PretrainRun(net=net, history=history, seconds=time.time() - t0)


@torch.inference_mode()
def encoder_features(net: nn.Module, maps: torch.Tensor, batch_size: int = 1024, device: str = "cpu") -> np.ndarray:
    """Encoder features (N, F) float32 of prepared uint8 maps (N, S, S), eval mode."""
    net = net.to(device).eval()
    out = [SelfSupervised.encode(net, maps[i:i + batch_size].to(device)).float().cpu()
           for i in range(0, len(maps), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def encoder_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The network's state_dict without its head (contiguous CPU tensors)."""
    return {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items() if not k.startswith(HEAD_PREFIX)}


def save_encoder(out_dir: str | Path, net: nn.Module, cfg: dict[str, Any], summary: dict[str, Any]) -> Path:
    """Write `out_dir/encoder.pt` (format ``adrcs-encoder/1``); `summary` is plain data (numbers, strings)."""
    path = Path(out_dir) / ENCODER_NAME
    torch.save({"format": ENCODER_FORMAT, "model": cfg["model"], "model_args": dict(cfg["model_args"] or {}),
                "input_size": int(cfg["input_size"]), "resize": str(cfg["resize"]),
                "state_dict": encoder_state(net), "pretrain": summary}, path)
    return path


def read_encoder(where: str | Path) -> dict[str, Any]:
    """The content of a pretraining folder's `encoder.pt` (or of that file); one-line InputError otherwise."""
    p = Path(where)
    path = p / ENCODER_NAME if p.is_dir() else p
    if not path.is_file():
        raise InputError(p, f"no {ENCODER_NAME} here: is this a folder written by `adrcs pretrain`?")
    try:
        enc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated
        raise InputError(path, f"cannot read the encoder ({type(e).__name__})")
    if not isinstance(enc, dict) or enc.get("format") != ENCODER_FORMAT:
        raise InputError(path, f"not an ADRCS encoder (expected format {ENCODER_FORMAT})")
    return enc


def init_from_encoder(net: nn.Module, cfg: dict[str, Any]) -> str:
    """Copy the encoder of `cfg['init']` into `net` (the head stays as built); returns a line for the log.

    The encoder's model and input size must be the run's, and its weights must fit the network (model_args
    that shape the encoder); one-line InputError otherwise."""
    where = cfg["init"]
    enc = read_encoder(where)
    if enc["model"] != cfg["model"]:
        raise InputError(where, f"--init: the encoder was pretrained for model {enc['model']!r}, this run trains "
                                f"{cfg['model']!r}")
    if int(enc["input_size"]) != int(cfg["input_size"]):
        raise InputError(where, f"--init: the encoder was pretrained at input_size {enc['input_size']}, this run "
                                f"uses {cfg['input_size']}")
    own = {k: v for k, v in net.state_dict().items() if not k.startswith(HEAD_PREFIX)}
    state = enc["state_dict"]
    wrong = sorted(set(own) ^ set(state)) + sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if wrong:
        raise InputError(where, f"--init: the encoder's weights do not fit this {cfg['model']} (model_args "
                                f"{enc['model_args']} there, {dict(cfg['model_args'] or {})} here; first: {wrong[0]})")
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(HEAD_PREFIX) for k in missing)
    info = enc.get("pretrain") or {}
    note = "" if enc.get("resize") == cfg.get("resize") else f" (pretrained with resize {enc.get('resize')})"
    return (f"init: encoder from {where} ({info.get('method', '?')}, {info.get('epochs', '?')} epochs on "
            f"{info.get('n_maps', '?')} maps); head fresh{note}")
