"""resize: failmax keeps a failing die anywhere in a cell (dense products), nearest may drop it."""
from __future__ import annotations

import numpy as np
import pytest

from adrcs.transforms.resize import resize_stack


def _dense_scratch(side: int = 200, row: int = 101) -> np.ndarray:
    m = np.ones((side, side), np.uint8)
    m[:8], m[:, :8] = 0, 0
    m[row, 10:190] = 2  # a one-die horizontal scratch on a row nearest-neighbour sampling skips
    return m


def test_failmax_keeps_a_one_die_scratch_that_nearest_drops() -> None:
    m = _dense_scratch()
    near = resize_stack([m], 48, "nearest")[0]
    fmax = resize_stack([m], 48, "failmax")[0]
    assert (near == 2).sum() == 0                 # the scratch is gone
    assert (fmax == 2).sum() >= 40                # still a line of failing cells
    assert fmax[0, 0] == 0 and fmax[-1, -1] == 1  # off-wafer stays off, pass stays pass
    assert set(np.unique(fmax)) <= {0, 1, 2}


@pytest.mark.parametrize("shape", [(20, 30), (48, 48), (60, 17)])
def test_failmax_shapes_and_growth_equals_nearest(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, 3, shape).astype(np.uint8) for _ in range(3)]
    out = resize_stack(maps, 48, "failmax")
    assert out.shape == (3, 48, 48) and out.dtype == np.uint8
    if max(shape) <= 48:
        np.testing.assert_array_equal(out, resize_stack(maps, 48, "nearest"))
    # a 2x2 die split (twice the density) keeps every failing cell of the source when shrunk back
    m = maps[0]
    dense = m.repeat(2, 0).repeat(2, 1)
    assert ((resize_stack([dense], 48, "failmax")[0] == 2).sum()
            >= (resize_stack([dense], 48, "nearest")[0] == 2).sum())


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="nearest, failmax"):
        resize_stack([np.ones((4, 4), np.uint8)], 8, "bicubic")


def test_config_key_is_checked_and_kept_in_the_checkpoint(tmp_path) -> None:
    from adrcs.config import load_config
    from adrcs.errors import InputError
    from adrcs.pipeline import Pipeline

    with pytest.raises(InputError, match="resize"):
        load_config(None, {"resize": "bicubic"})
    assert load_config(None, {})["resize"] == "nearest"
    from adrcs.models import create_model

    net = create_model("ffn", num_classes=2, multilabel=False, width=4, hidden=8)
    pipe = Pipeline(net=net, model_name="ffn", model_args={"width": 4, "hidden": 8}, class_names=["a", "b"],
                    multilabel=False, input_size=16, resize="failmax")
    pipe.save(tmp_path)
    back = Pipeline.load(tmp_path)
    assert back.resize == "failmax" and back.preprocessing["resize"] == "failmax"
    m = _dense_scratch(64, row=30)
    np.testing.assert_array_equal(back.prepare([m]).numpy()[0], resize_stack([m], 16, "failmax")[0])
