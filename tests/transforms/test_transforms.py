import numpy as np
import torch

from adrcs.transforms import dihedral_views, one_hot_maps, random_dihedral, resize_nearest, resize_stack


def test_resize_keeps_die_codes_and_shape(rng):
    from helpers.wafers import make_wafer

    for shape in [(25, 27), (52, 52), (7, 90), (200, 160)]:
        m = make_wafer("scratch", shape, rng)
        for size in (16, 48, 64):
            r = resize_nearest(m, size)
            assert r.shape == (size, size)
            assert set(np.unique(r)) <= set(np.unique(m))  # never invents die codes


def test_resize_upsampling_is_lossless():
    m = np.random.default_rng(0).integers(0, 3, (26, 26)).astype(np.uint8)
    r = resize_nearest(m, 52)  # exact 2x: every die copied into a 2x2 block
    assert np.array_equal(r[::2, ::2], m)


def test_resize_stack_matches_single_resize(rng):
    from helpers.wafers import make_wafer

    maps = [make_wafer(k, s, rng) for k, s in [("center", 20), ("donut", (24, 18)), ("loc", 20), ("none", 33)]]
    stack = resize_stack(maps, 32)
    assert stack.shape == (4, 32, 32) and stack.dtype == np.uint8
    for m, r in zip(maps, stack):
        assert np.array_equal(resize_nearest(m, 32), r)


def test_resize_stack_of_one_map_matches_single_resize(rng):
    from helpers.wafers import make_wafer

    for shape in [(25, 27), (48, 48), (7, 90)]:
        m = make_wafer("scratch", shape, rng)
        for arr in (m, m.astype(np.int64)):
            r = resize_stack([arr], 48)
            assert r.shape == (1, 48, 48) and r.dtype == np.uint8 and np.array_equal(r[0], resize_nearest(m, 48))


def test_one_hot_channels():
    maps = torch.tensor([[[0, 1], [2, 1]]], dtype=torch.uint8)
    x = one_hot_maps(maps)
    assert x.shape == (1, 3, 2, 2)
    assert torch.equal(x.sum(1), torch.ones(1, 2, 2))
    assert x[0, 2, 1, 0] == 1 and x[0, 0, 0, 0] == 1 and x[0, 1, 0, 1] == 1


def test_dihedral_views_are_the_8_symmetries():
    x = torch.arange(16).reshape(1, 4, 4)
    views = dihedral_views(x)
    assert len(views) == 8
    assert torch.equal(views[0], x)
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8


def test_random_dihedral_preserves_content():
    x = torch.randint(0, 3, (64, 8, 8), dtype=torch.uint8)
    y = random_dihedral(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert torch.equal(torch.sort(y.flatten(1), dim=1).values, torch.sort(x.flatten(1), dim=1).values)
    assert not torch.equal(x, y)
