"""Self-supervised pretraining: the map views, the losses, the loop, encoder.pt and `init_from_encoder`."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from adrcs.config import load_config
from adrcs.engine.pretrain import (ENCODER_FORMAT, byol_loss, init_from_encoder, nt_xent, pretrain_encoder,
                                   pretrain_options, read_encoder, save_encoder)
from adrcs.errors import InputError
from adrcs.models import create_model
from adrcs.transforms.map_augment import MapAugment, die_noise, edge_keeping_crop, two_views
from helpers.wafers import make_wafer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KINDS = ("center", "donut", "edge_ring", "scratch", "none", "edge_loc")
SMALL = {"width": 4, "deep_mult": 2, "hidden": 16}


def _maps(n: int = 64, size: int = 16, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([make_wafer(KINDS[i % len(KINDS)], size, rng) for i in range(n)]))


def _cfg(**over) -> dict:
    base = {"model_args": dict(SMALL), "input_size": 16, "epochs": 6, "batch_size": 32, "device": "cpu",
            "progress": False}
    return load_config(None, {**base, **over})


def test_edge_keeping_crop_is_identity_at_full_size_and_keeps_the_off_wafer_corners():
    maps = _maps(24)
    same = edge_keeping_crop(maps, min_side=1.0, max_side=1.0, max_cut=0.0)
    assert torch.equal(same, maps)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        out = edge_keeping_crop(maps, 0.8, 1.15, 0.1, generator=g)
        assert out.shape == maps.shape and out.dtype == torch.uint8
        assert set(out.unique().tolist()) <= {0, 1, 2}
        # at most 10 % of the disc is cut off a side: the corners of every view are still off-wafer
        assert (out[:, 0, 0] == 0).all() and (out[:, -1, -1] == 0).all()
        assert (out > 0).float().mean() > 0.45  # the wafer still fills most of the view
    good = torch.from_numpy(np.stack([make_wafer("none", 16, np.random.default_rng(1))] * 4))
    good[good == 2] = 1
    assert (edge_keeping_crop(good, generator=g) != 2).all()  # no failing die invented


def test_die_noise_flips_only_dies_and_leaves_off_wafer_cells():
    maps = _maps(16)
    assert torch.equal(die_noise(maps, 0.0, 0.0), maps)
    g = torch.Generator().manual_seed(0)
    out = die_noise(maps, p_fail=1.0, p_drop=1.0, generator=g)
    assert torch.equal(out == 0, maps == 0)
    assert ((maps == 1) & (out == 2)).any() and ((maps == 2) & (out == 1)).any()


def test_two_views_differ_and_bad_strengths_are_refused():
    maps = _maps(16)
    v1, v2 = two_views(maps, MapAugment(), torch.Generator().manual_seed(0))
    assert v1.shape == v2.shape == maps.shape and not torch.equal(v1, v2)
    with pytest.raises(ValueError, match="max_cut"):
        MapAugment(min_side=0.5, max_cut=0.1)
    with pytest.raises(InputError) as err:
        pretrain_options({"min_side": "0.5"})
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="--method"):
        pretrain_options({"method": "dino"})


def test_losses_reward_agreeing_views():
    torch.manual_seed(0)
    z = torch.randn(16, 8)
    assert nt_xent(z, z + 0.01 * torch.randn(16, 8), 0.2) < nt_xent(z, torch.randn(16, 8), 0.2) - 1.0
    assert float(byol_loss(z, z)) == pytest.approx(0.0, abs=1e-5)
    assert float(byol_loss(z, -z)) == pytest.approx(4.0, abs=1e-5)


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_loss_goes_down_on_synthetic_maps(method):
    run = pretrain_encoder(_cfg(), pretrain_options({"method": method, "proj_hidden": 64, "proj_dim": 32}),
                           _maps(64), say=lambda s: None)
    losses = [h["loss"] for h in run.history]
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0], losses
    assert not run.net.training


def _pretrained(tmp_path, cfg=None):
    cfg = cfg or _cfg(epochs=1)
    torch.manual_seed(3)
    net = create_model("ffn", num_classes=2, **cfg["model_args"])
    save_encoder(tmp_path, net, cfg, {"method": "simclr", "epochs": 1, "n_maps": 10})
    return net


def test_encoder_round_trip_has_no_head_and_loads_weights_only(tmp_path):
    net = _pretrained(tmp_path)
    raw = torch.load(tmp_path / "encoder.pt", weights_only=True)
    assert raw["format"] == ENCODER_FORMAT and raw["model"] == "ffn" and raw["input_size"] == 16
    assert raw["model_args"] == SMALL and raw["resize"] == "nearest" and raw["pretrain"]["n_maps"] == 10
    assert raw["state_dict"] and not any(k.startswith("head.") for k in raw["state_dict"])
    for k, v in net.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(read_encoder(tmp_path)["state_dict"][k], v)
    with pytest.raises(InputError, match="adrcs pretrain"):
        read_encoder(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "encoder.pt").write_bytes(b"not torch")
    with pytest.raises(InputError, match="cannot read"):
        read_encoder(tmp_path / "bad")


def test_init_copies_the_encoder_and_keeps_a_fresh_head(tmp_path):
    pre = _pretrained(tmp_path)
    torch.manual_seed(99)
    fresh = create_model("ffn", num_classes=2, **SMALL)
    head_before = {k: v.clone() for k, v in fresh.state_dict().items() if k.startswith("head.")}
    line = init_from_encoder(fresh, dict(_cfg(), init=str(tmp_path)))
    assert "head fresh" in line and "\n" not in line
    mine, theirs = fresh.state_dict(), pre.state_dict()
    encoder_keys = [k for k in mine if not k.startswith("head.")]
    assert encoder_keys and all(torch.equal(mine[k], theirs[k]) for k in encoder_keys)
    assert all(torch.equal(mine[k], v) for k, v in head_before.items())  # the head is the fresh one
    assert not torch.equal(mine["head.0.weight"], theirs["head.0.weight"])  # ... not the pretrained net's


@pytest.mark.parametrize("over,needle", [
    ({"model": "cnn", "model_args": {"width": 4}}, "pretrained for model 'ffn'"),
    ({"input_size": 24}, "input_size 16"),
    ({"model_args": {"width": 8, "deep_mult": 2, "hidden": 16}}, "do not fit"),
])
def test_init_mismatch_is_one_line(tmp_path, over, needle):
    _pretrained(tmp_path)
    cfg = dict(_cfg(**over), init=str(tmp_path))
    net = create_model(cfg["model"], num_classes=3, **cfg["model_args"])
    with pytest.raises(InputError) as err:
        init_from_encoder(net, cfg)
    assert needle in str(err.value) and "\n" not in str(err.value)
