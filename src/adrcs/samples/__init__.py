"""Small sample data sets shipped with ADRCS (stratified samples of WM-811K and MixedWM38).

Built by ``scripts/make_samples.py``; same format as the processed pickles, so ``adrcs.data.load``
reads them. ``sample_path("wm811k")`` -> path of ``wm811k_sample.pkl.xz``.
"""
from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent
SAMPLES = {
    "wm811k": "wm811k_sample.pkl.xz",
    "wm811k_val": "wm811k_sample_val.pkl.xz",
    "mixedwm38": "mixedwm38_sample.pkl.xz",
    "mixedwm38_val": "mixedwm38_sample_val.pkl.xz",
}


def sample_path(name: str) -> Path:
    """Path of a shipped sample: one of SAMPLES' keys or a file name."""
    file = SAMPLES.get(name, name)
    path = SAMPLES_DIR / file
    if not path.is_file():
        raise KeyError(f"no sample {name!r}; samples are {sorted(SAMPLES)}")
    return path
