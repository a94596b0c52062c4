"""Defect GAN for inspection images: patches and contexts, the generator keeps the context outside the box,
training moves the critic, save/load round trip, the paster adds boxes only in free space and only to
the test image, and `paste_defects: gan` in a detection run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers.images import make_deeppcb
from helpers.images import tiny_detect_cfg as tiny_cfg

from adrcs.data.image_formats import load_images
from adrcs.synth.defect_crops import (box_mask, collect_defect_crops, cut_patches, inpainting_context, paste_window,
                                      windows_for)
from adrcs.synth.defect_gan import DefectGAN
from adrcs.synth.defect_paste import DefectPaster, fit_defect_paster

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FAST = {"iterations": 30, "batch_size": 16, "g_width": 8, "d_width": 8, "z_dim": 8}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return load_images(make_deeppcb(tmp_path_factory.mktemp("pcb"), n=4))


def test_windows_and_mask_geometry():
    win = windows_for(torch.tensor([[10.0, 20.0, 30.0, 30.0]]), 1.5)
    assert win.tolist() == [[5.0, 17.5, 35.0, 32.5]]
    m = box_mask(12, 1.5)
    assert m.shape == (1, 12, 12) and m[0, 2:10, 2:10].all() and m.sum() == 64


def test_cut_patch_reads_the_window():
    img = torch.zeros(1, 40, 40)
    img[:, 10:20, 10:20] = 1.0
    p = cut_patches(img, torch.tensor([[10.0, 10.0, 20.0, 20.0]]), 8)
    assert p.shape == (1, 1, 8, 8) and p[..., 1:7, 1:7].eq(1).all() and p.min() > 0.8  # edges blend bilinearly
    ctx = inpainting_context(p * 0 + torch.arange(8.0).view(1, 1, 1, 8), box_mask(8, 2.0))
    assert torch.allclose(ctx[0, 0, 3, 3], ctx[0, 0, 4, 4])  # the box area is one flat value


def test_paste_window_writes_only_the_box_part():
    img = torch.zeros(1, 30, 30)
    paste_window(img, torch.ones(1, 12, 12), (0, 0, 12, 12), 1.5)
    assert img[0, 2:10, 2:10].eq(1).all() and img[0, :2].eq(0).all() and img[0, 12:].eq(0).all()


def test_collect_crops_with_and_without_template(images):
    crops = collect_defect_crops(images, 64, use_template=True, patch=16)
    n_boxes = sum(len(b) for b in images.boxes)
    assert len(crops) == n_boxes and crops.test.shape == (n_boxes, 1, 16, 16) and crops.uses_template
    assert crops.context.shape == crops.test.shape and crops.sizes.shape == (n_boxes, 2)
    # with a template the defect shows as a difference inside the box, hardly outside it
    m = box_mask(16, 1.5).bool()[0]
    diff = (crops.test - crops.context).abs()[:, 0]
    assert diff[:, m].mean() > 5 * diff[:, ~m].mean()
    plain = collect_defect_crops(images, 64, use_template=False, patch=16)
    assert not plain.uses_template and torch.equal(plain.test[:, :, ~m], plain.context[:, :, ~m])


@pytest.mark.slow
def test_gan_trains_keeps_context_and_round_trips(images, tmp_path):
    crops = collect_defect_crops(images, 64, use_template=True, patch=16)
    gan = DefectGAN(seed=0, **FAST).fit(crops, say=lambda s: None, progress=False)
    assert len(gan.history) >= 3 and all(np.isfinite(h["critic_loss"]) for h in gan.history)
    out = gan.generate(crops.context[:5], crops.labels[:5], generator=torch.Generator().manual_seed(1))
    m = box_mask(16, 1.5).bool()[0]
    assert out.shape == (5, 1, 16, 16) and out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out[:, :, ~m], crops.context[:5][:, :, ~m])
    gan.save(tmp_path / "g")
    assert (tmp_path / "g" / "training_curves.png").is_file()
    back = DefectGAN.load(tmp_path / "g")
    again = back.generate(crops.context[:5], crops.labels[:5], generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out, again) and back.box_sizes.keys() == gan.box_sizes.keys()


def test_gan_errors(tmp_path):
    from adrcs.errors import InputError

    with pytest.raises(InputError, match="unknown defect GAN options"):
        DefectGAN(bogus=1)
    (tmp_path / "defect_gan.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot read"):
        DefectGAN.load(tmp_path)


@pytest.mark.slow
def test_paster_adds_boxes_in_free_space_to_the_test_image_only(images):
    crops = collect_defect_crops(images, 64, use_template=True, patch=16)
    gan = DefectGAN(seed=0, **FAST).fit(crops, say=lambda s: None, progress=False)
    paster = DefectPaster(gan, probability=1.0, max_per_image=3)
    test, tmpl = torch.full((1, 96, 96), 0.5), torch.full((1, 96, 96), 0.5)
    boxes, labels = torch.tensor([[0.0, 0.0, 20.0, 20.0]]), torch.tensor([0])
    rng = np.random.default_rng(0)
    added = 0
    for _ in range(5):
        t2, b2, l2 = paster(test, tmpl, boxes, labels, rng)
        assert torch.equal(b2[:1], boxes) and len(b2) == len(l2) and tmpl.eq(0.5).all()
        new = b2[1:]
        added += len(new)
        win = windows_for(new, gan.margin)
        assert (win[:, 0] >= 0).all() and (win[:, 2] <= 96).all()
        assert ((new[:, 0] >= 30) | (new[:, 1] >= 30)).all()  # clear of the existing box's window
        assert set(l2[1:].tolist()) <= set(gan.box_sizes)
        changed = (t2 != test)[0]
        if len(new):
            ys, xs = torch.nonzero(changed, as_tuple=True)
            inside = torch.zeros_like(changed)
            for x1, y1, x2, y2 in new.round().long().tolist():
                inside[max(y1 - 1, 0):y2 + 1, max(x1 - 1, 0):x2 + 1] = True
            assert inside[ys, xs].all()  # only the new boxes' pixels changed
    assert added > 0
    off = DefectPaster(gan, probability=0.0)
    t3, b3, _ = off(test, tmpl, boxes, labels, rng)
    assert t3 is test and len(b3) == 1


@pytest.mark.slow
def test_detection_run_with_pasted_defects(tmp_path):
    from adrcs.api_images import train_detection

    lst = make_deeppcb(tmp_path / "data", n=6)
    cfg = tiny_cfg(epochs=1, paste_defects="gan", train_crop=48,
                   paste_args={"probability": 1.0, "patch": 16, **FAST})
    lines: list[str] = []
    train_detection(cfg, lst, out=tmp_path / "run", say=lines.append)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["synthetic"]["method"] == "gan" and metrics["synthetic"]["patches"] > 0
    assert metrics["train_crop"] == 48
    folder = tmp_path / "run" / "synth" / "defect_gan"
    for name in ("defect_gan.pt", "samples.png", "training_curves.png", "history.csv"):
        assert (folder / name).is_file(), name
    assert any("defect GAN" in s for s in lines)
    # reuse the fitted GAN ("from"), and refuse one fitted without templates for a template run
    cfg2 = tiny_cfg(epochs=1, paste_defects="gan", paste_args={"from": str(folder), "patch": 16})
    train_detection(cfg2, lst, out=tmp_path / "run2", say=lines.append)
    assert any("reusing" in s for s in lines)


def test_fit_defect_paster_rejects_bad_args(images, tmp_path):
    from adrcs.errors import InputError

    with pytest.raises(InputError, match="multiple of 8"):
        fit_defect_paster(images, 64, True, "L", {"patch": 12}, tmp_path)
