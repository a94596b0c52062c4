"""Tiny trained runs (seconds on a CPU) and the wafer-map request bodies the service tests send them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.frames import make_wm811k_frame

REPO = Path(__file__).resolve().parents[2]


def train_wafer_run(tmp: Path, seed: int = 0, epochs: int = 1, per_class: tuple[int, int] = (4, 2),
                    data_seed: int = 10, name: str = "") -> Path:
    """A tiny FFN wafer run (16x16 input, width 8) trained on drawn WM-811K frames (`per_class` training and
    validation maps per class; with >= 40 validation maps the run gets a trust layer); returns tmp/<name>run<seed>,
    the data in tmp/<name or "wm"><seed>_{0,1}.pkl.xz."""
    from adrcs.api import train
    from adrcs.config import load_config

    files = []
    for i, n in enumerate(per_class):
        p = tmp / f"{name or 'wm'}{seed}_{i}.pkl.xz"
        make_wm811k_frame(np.random.default_rng(data_seed + i), per_class=n).to_pickle(p)
        files.append(p)
    cfg = load_config(REPO / "configs" / "wm811k_ffn.yaml",
                      {"epochs": epochs, "input_size": 16, "device": "cpu", "batch_size": 16, "seed": seed,
                       "model_args": {"width": 8}, "progress": False})
    run = tmp / f"{name}{'_' if name else ''}run{seed}"
    train(cfg, [files[0]], [files[1]], run, say=lambda s: None)
    return run


def train_detector_run(tmp: Path, n: int = 4, epochs: int = 1) -> Path:
    """A tiny detector run on make_deeppcb(tmp/"data", n); returns tmp/"run" (images under tmp/"data"/"imgs")."""
    from adrcs.api_images import train_detection

    from helpers.images import make_deeppcb, tiny_detect_cfg

    lst = make_deeppcb(tmp / "data", n=n)
    train_detection(tiny_detect_cfg(epochs=epochs), lst, out=tmp / "run", say=lambda s: None)
    return tmp / "run"


def small_maps(n: int, side: int = 20, seed: int = 0, rng: np.random.Generator | None = None) -> list:
    """`n` valid die-code maps as nested lists (border off-wafer, ~20% failing dies)."""
    rng = rng or np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = np.ones((side, side), np.int64)
        m[:2], m[:, :2] = 0, 0
        m[rng.random((side, side)) < 0.2] = 2
        out.append(m.tolist())
    return out
