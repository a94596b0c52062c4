"""What every wafer-map synthesizer shares: fitting data, sampling, saving to / loading from a folder.

A synthesizer works on maps resized (nearest neighbour) to `size` x `size` and returns die
codes 0/1/2 of that size. Its folder holds:

- `synthesizer.pt`: format tag, method, arguments, class names, size, network weights, history;
- `train_maps.npz`: the (resized) training maps and labels it was fitted on. The CAE samples by
  encoding them; `synth evaluate` uses them for the memorisation check and the oversampling
  baseline;
- `history.csv` and `training_curves.png`: loss (and, for the GAN, the Wasserstein estimate)
  over training.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd
import torch

from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.errors import InputError
from adrcs.transforms.resize import resize_stack

FORMAT = "adrcs-synthesizer/1"
CHECKPOINT_NAME = "synthesizer.pt"
MAPS_NAME = "train_maps.npz"

Printer = Callable[[str], None]


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU ('gpu' is an alias of 'cuda')."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device("cuda" if device in ("gpu", "cuda") else device)


class Synthesizer(ABC):
    """Base class: `fit(ds)` then `sample(class_name, n)`; `save(dir)` / `load_synthesizer(dir)`.

    Subclasses set `method`, build their networks in `_build()`, train them in `_fit()` and
    generate in `_sample()`; everything else (data preparation, seeding, files) lives here.
    """

    method: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    default_size: ClassVar[int] = 48

    def __init__(self, size: int | None = None, seed: int = 0, device: str = "auto", **args: Any) -> None:
        size = self.default_size if size is None else size
        unknown = sorted(set(args) - set(self.defaults))
        if unknown:
            raise InputError(None, f"unknown {self.method} synthesizer options {unknown}; "
                                   f"known: {sorted(self.defaults)}")
        if int(size) < 8 or int(size) % 8:
            raise InputError(None, f"synthesizer size must be a multiple of 8 and >= 8 (got {size})")
        self.size = int(size)
        self.seed = int(seed)
        self.device_name = device
        self.args: dict[str, Any] = {**self.defaults, **args}
        self.class_names: list[str] = []
        self.train_maps = np.zeros((0, self.size, self.size), np.uint8)
        self.train_labels = np.zeros(0, np.int64)
        self.history: list[dict[str, float]] = []
        self.fit_seconds = 0.0
        self.nets: dict[str, torch.nn.Module] = {}

    # ------------------------------------------------------------------ public API
    @property
    def device(self) -> torch.device:
        return resolve_device(self.device_name)

    @property
    def class_counts(self) -> dict[str, int]:
        """Training maps per class."""
        counts = np.bincount(self.train_labels, minlength=len(self.class_names))
        return {c: int(n) for c, n in zip(self.class_names, counts)}

    def fit(self, ds: WaferMapSet, say: Printer = print, progress: bool = True) -> "Synthesizer":
        """Fit on the labeled maps of a single-label training set (never on validation data)."""
        ds = ds.labeled()
        if ds.multilabel:
            raise InputError(_source(ds), "synthesis needs single-label data (one class per map)")
        if len(ds) == 0:
            raise InputError(_source(ds), "no labeled maps to fit a synthesizer on")
        self.class_names = list(ds.class_names)
        self.train_maps = resize_stack(ds.maps, self.size)
        self.train_labels = ds.labels.astype(np.int64)
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        self.nets = self._build()
        for net in self.nets.values():
            net.to(self.device)
        t0 = time.time()
        self._fit(say, progress)
        self.fit_seconds = time.time() - t0
        for net in self.nets.values():
            net.eval()
        return self

    def sample(self, class_name: str, n: int, seed: int | None = None) -> np.ndarray:
        """`n` new maps of `class_name`: uint8 die codes (n, size, size)."""
        if not self.nets:
            raise RuntimeError("synthesizer is not fitted")
        if class_name not in self.class_names:
            raise InputError(None, f"unknown class {class_name!r}; this synthesizer knows {self.class_names}")
        c = self.class_names.index(class_name)
        if not (self.train_labels == c).any():
            raise InputError(None, f"class {class_name!r} had no training maps; cannot synthesize it")
        if n <= 0:
            return np.zeros((0, self.size, self.size), np.uint8)
        g = torch.Generator().manual_seed(self.seed + 1000 * c + 7 if seed is None else int(seed))
        with torch.inference_mode():
            out = self._sample(c, int(n), g)
        assert out.shape == (n, self.size, self.size) and out.dtype == np.uint8
        return out

    def save(self, out_dir: str | Path) -> Path:
        """Write the synthesizer folder (see module docstring); returns the checkpoint path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / CHECKPOINT_NAME
        torch.save({
            "format": FORMAT, "method": self.method, "args": self.args, "size": self.size, "seed": self.seed,
            "class_names": self.class_names, "class_counts": self.class_counts, "fit_seconds": self.fit_seconds,
            "history": self.history,
            "state_dicts": {k: {n: t.cpu() for n, t in v.state_dict().items()} for k, v in self.nets.items()},
        }, path)
        np.savez_compressed(out / MAPS_NAME, maps=self.train_maps, labels=self.train_labels)
        if self.history:
            hist = pd.DataFrame(self.history)
            hist.to_csv(out / "history.csv", index=False)
            from adrcs.report.synthesis import plot_synth_history

            plot_synth_history(hist, out / "training_curves.png", title=f"{self.method} synthesizer training")
        return path

    # ------------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _build(self) -> dict[str, torch.nn.Module]:
        """Create the networks (names -> modules), sized for `self.size` and `self.class_names`."""

    @abstractmethod
    def _fit(self, say: Printer, progress: bool) -> None:
        """Train `self.nets` on `self.train_maps` / `self.train_labels`; append to `self.history`."""

    @abstractmethod
    def _sample(self, class_index: int, n: int, generator: torch.Generator) -> np.ndarray:
        """Generate `n` maps of one class as uint8 die codes (n, size, size)."""


def _source(ds: WaferMapSet) -> str | None:
    return str(ds.meta["source"].iloc[0]) if len(ds) and "source" in ds.meta else None


_METHODS: dict[str, type[Synthesizer]] = {}


def register_synthesizer(cls: type[Synthesizer]) -> type[Synthesizer]:
    """Class decorator: make a synthesizer available by its `method` name."""
    _METHODS[cls.method] = cls
    return cls


def list_synthesizers() -> list[str]:
    _import_all()
    return sorted(_METHODS)


def create_synthesizer(method: str, **kwargs: Any) -> Synthesizer:
    """A new, unfitted synthesizer: `create_synthesizer('gan', size=48, iterations=2000)`."""
    _import_all()
    if method not in _METHODS:
        raise InputError(None, f"unknown synthesis method {method!r}; known: {sorted(_METHODS)}")
    return _METHODS[method](**kwargs)


def load_synthesizer(path: str | Path, device: str = "auto") -> Synthesizer:
    """Load a folder written by `Synthesizer.save` / `adrcs synth fit`."""
    _import_all()
    p = Path(path)
    ck_path = p / CHECKPOINT_NAME if p.is_dir() else p
    folder = ck_path.parent
    if not ck_path.is_file():
        raise InputError(p, f"no {CHECKPOINT_NAME} here: is this a folder written by `adrcs synth fit`?")
    try:
        ck = torch.load(ck_path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(ck_path, f"cannot read the synthesizer checkpoint ({type(e).__name__})")
    if not isinstance(ck, dict) or ck.get("format") != FORMAT or ck.get("method") not in _METHODS:
        raise InputError(ck_path, f"not an ADRCS synthesizer (expected format {FORMAT})")
    if not (folder / MAPS_NAME).is_file():
        raise InputError(folder / MAPS_NAME, "missing: the synthesizer folder is incomplete")
    syn = _METHODS[ck["method"]](size=ck["size"], seed=ck["seed"], device=device, **ck["args"])
    syn.class_names = list(ck["class_names"])
    with np.load(folder / MAPS_NAME) as z:
        syn.train_maps, syn.train_labels = z["maps"], z["labels"].astype(np.int64)
    syn.history = list(ck.get("history", []))
    syn.fit_seconds = float(ck.get("fit_seconds", 0.0))
    syn.nets = syn._build()
    for name, net in syn.nets.items():
        net.load_state_dict(ck["state_dicts"][name])
        net.to(syn.device).eval()
    return syn


def _import_all() -> None:
    # importing the modules registers their classes
    from adrcs.synth import cae, gan  # noqa: F401
