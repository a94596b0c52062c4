"""bench/deeppcb_patches_gan.py: the cut set, the GAN's training crops, and the GAN-filled set."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from helpers.bench import load_script

gb = load_script("bench/deeppcb_patches_gan.py", "deeppcb_patches_gan_bench")


def _patch_set(root: Path, counts: dict[str, int], size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    for split, scale in (("train", 1), ("val", 0), ("test", 0)):
        for c, n in counts.items():
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(max(1, n * scale)):
                Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(d / f"{c}_{i}.png")
                Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(d / f"{c}_{i}_temp.png")
    return root


def test_cut_set_keeps_a_seeded_share_of_one_class_and_links_val_test(tmp_path):
    src = _patch_set(tmp_path / "p", {"open": 12, "spur": 20})
    assert gb.train_counts(src) == {"open": 12, "spur": 20}
    kept = gb.cut_set(src, tmp_path / "cut", "spur", 0.1, seed=0)
    assert len(kept) == 2 and kept == gb.cut_set(src, tmp_path / "cut", "spur", 0.1, seed=0)
    assert gb.train_counts(tmp_path / "cut") == {"open": 12, "spur": 2}
    assert all((tmp_path / "cut" / "train" / "spur" / f"{Path(k).stem}_temp.png").is_file() for k in kept)
    assert (tmp_path / "cut" / "test").is_symlink() and (tmp_path / "cut" / "test" / "open").is_dir()


def test_crops_generation_and_the_filled_set(tmp_path):
    import torch

    from adrcs.synth.defect_gan import DefectGAN

    src = _patch_set(tmp_path / "p", {"open": 6, "spur": 4})
    gb.cut_set(src, tmp_path / "cut", "spur", 0.5, seed=0)
    crops = gb.defect_crops(tmp_path / "cut" / "train", margin=2.0)
    assert crops.test.shape == (8, 1, 16, 16) and crops.context.shape == crops.test.shape
    assert crops.class_names == ["open", "spur"] and np.bincount(crops.labels.numpy()).tolist() == [6, 2]
    assert float(crops.test.max()) <= 1.0 and crops.sizes[0, 0] == 8.0
    torch.manual_seed(0)
    gan = DefectGAN(iterations=2, batch_size=4, g_width=8, d_width=8).fit(crops, say=lambda m: None, progress=False)
    patches, temps = gb.generate(gan, crops, "spur", 5, seed=1)
    assert patches.shape == temps.shape == (5, 16, 16) and patches.dtype == np.uint8
    # outside the box the generated patch is its context (the template crop)
    assert np.array_equal(patches[:, :2, :], temps[:, :2, :])
    gb.gan_set(tmp_path / "cut", tmp_path / "gan", "spur", patches, temps)
    assert gb.train_counts(tmp_path / "gan") == {"open": 6, "spur": 2 + 5}
    assert (tmp_path / "gan" / "train" / "spur" / "gan_00004_temp.png").is_file()
