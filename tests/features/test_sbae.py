"""SBAE: loss terms, bottleneck shape, sparsity rising vs the plain CAE."""
import numpy as np
import pytest
import torch

from adrcs.features.sbae import SBAEEncoder, SparseConvAutoencoder, kl_sparsity, sbae_loss


def test_kl_term_zero_at_target_and_positive_elsewhere():
    code = torch.full((4, 6, 5, 5), 0.05)
    assert abs(kl_sparsity(code, 0.05).item()) < 1e-6
    assert kl_sparsity(torch.full((4, 6, 5, 5), 0.3), 0.05).item() > 0
    assert kl_sparsity(torch.full((4, 6, 5, 5), 0.01), 0.05).item() > 0


def test_loss_terms():
    torch.manual_seed(0)
    net = SparseConvAutoencoder(hidden=8, channels=4)
    x = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 8, 8)), 3).permute(0, 3, 1, 2).float()
    t = sbae_loss(net, x, sparsity=0.05, gamma=0.5, weight_decay=1e-3)
    assert set(t) == {"mse", "l2", "kl", "total"} and all(torch.isfinite(v) for v in t.values())
    torch.testing.assert_close(t["total"], t["mse"] + 1e-3 * t["l2"] + 0.5 * t["kl"])


@pytest.mark.slow
def test_bottleneck_shape_and_sparsity_rises_vs_cae():
    from helpers.wafers import make_wafer

    rng = np.random.default_rng(0)
    kinds = ["center", "edge_ring", "scratch", "donut", "none", "loc"]
    maps = np.stack([make_wafer(kinds[i % 6], 16, rng) for i in range(48)])
    kw = dict(channels=6, hidden=12, steps=120, batch_size=16, lr=3e-3, seed=0)
    sbae = SBAEEncoder(sparse=True, sparsity=0.05, gamma=1.0, **kw).fit(maps, say=lambda m: None)
    cae = SBAEEncoder(sparse=False, **kw).fit(maps, say=lambda m: None)
    z_sbae, z_cae = sbae.transform(maps), cae.transform(maps)
    assert z_sbae.shape == (48, 6, 8, 8)  # m/2 x n/2 x c
    assert z_sbae.mean() < 0.5 * z_cae.mean()  # mean activation pushed toward p = 0.05
    assert sbae.history_[-1]["mse"] < sbae.history_[0]["mse"]
