"""Fixtures shared by every test folder. The data makers and other helpers live in ``tests/helpers/``
(``from helpers.wafers import make_wafer``, ...).

Fixtures writing files into tmp_path: wm811k_pickle, lswmd_pickle, mixed_npz, mixed_pickle; also rng,
wafer_factory and one_torch_thread.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.frames import make_lswmd_frame, make_mixed_arrays, make_mixed_frame, make_wm811k_frame
from helpers.wafers import make_wafer

# With pyarrow installed (the `ray` extra) pandas keeps text in Arrow arrays, which the strict unpickler refuses;
# the frames the tests pickle keep plain Python strings, like the public datasets.
pd.set_option("mode.string_storage", "python")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator (seed 0)."""
    return np.random.default_rng(0)


@pytest.fixture
def wafer_factory():
    """`make_wafer` as a fixture."""
    return make_wafer


@pytest.fixture
def wm811k_pickle(tmp_path: Path) -> Path:
    """Processed WM-811K pickle (xz) with 2 maps of each of the 9 classes (make_wm811k_frame, seed 1)."""
    path = tmp_path / "wm811k.pkl.xz"
    make_wm811k_frame(np.random.default_rng(1)).to_pickle(path)
    return path


@pytest.fixture
def lswmd_pickle(tmp_path: Path) -> Path:
    """Raw LSWMD.pkl-style pickle (make_lswmd_frame, seed 2): 9 maps, 4 of them unlabeled."""
    path = tmp_path / "LSWMD.pkl"
    make_lswmd_frame(np.random.default_rng(2)).to_pickle(path)
    return path


@pytest.fixture
def mixed_npz(tmp_path: Path) -> Path:
    """MixedWM38 Wafer_Map_Datasets.npz-style file (make_mixed_arrays, seed 3): arr_0 maps, arr_1 labels."""
    path = tmp_path / "Wafer_Map_Datasets.npz"
    maps, labels = make_mixed_arrays(np.random.default_rng(3))
    np.savez_compressed(path, arr_0=maps, arr_1=labels)
    return path


@pytest.fixture
def mixed_pickle(tmp_path: Path) -> Path:
    """Processed MixedWM38 pickle (xz) (make_mixed_frame, seed 4)."""
    path = tmp_path / "mixedwm38.pkl.xz"
    make_mixed_frame(np.random.default_rng(4)).to_pickle(path)
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one torch thread is as fast, and immune to a busy machine (use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
