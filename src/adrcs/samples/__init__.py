"""Small sample data sets shipped with ADRCS: stratified samples of WM-811K and MixedWM38 (processed pickles)
and fab files written from those maps (STDF, KLARF 1.2 / 1.8, SINF, SEMI E142, G85).

Built by ``scripts/make_samples.py``; ``adrcs.data.load`` reads every one of them.
``sample_path("wm811k")`` -> path of ``wm811k_sample.pkl.xz``.
"""
from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent
SAMPLES = {
    "wm811k": "wm811k_sample.pkl.xz",
    "wm811k_val": "wm811k_sample_val.pkl.xz",
    "mixedwm38": "mixedwm38_sample.pkl.xz",
    "mixedwm38_val": "mixedwm38_sample_val.pkl.xz",
    "stdf": "lot_sample.stdf.gz",
    "stdf_labels": "lot_sample_labels.csv",
    "klarf": "defects_sample.klarf",
    "klarf_18": "defects_sample_18.klarf",
    "sinf": "wafer_sample_01.sinf",
    "e142": "lot_sample_e142.xml",
    "g85": "lot_sample_g85.xml",
}


def sample_path(name: str) -> Path:
    """Path of a shipped sample: one of SAMPLES' keys or a file name."""
    file = SAMPLES.get(name, name)
    path = SAMPLES_DIR / file
    if not path.is_file():
        raise KeyError(f"no sample {name!r}; samples are {sorted(SAMPLES)}")
    return path
