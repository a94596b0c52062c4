"""CAE and conditional WGAN-GP synthesizers: shapes, valid die codes, learning, save/load."""
import numpy as np
import pytest
import torch

from adrcs.data.loader import load
from adrcs.errors import InputError
from adrcs.synth import create_synthesizer, list_synthesizers, load_synthesizer
from adrcs.synth.gan import Critic, Generator, gradient_penalty


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from helpers.frames import make_wm811k_frame

    p = tmp_path_factory.mktemp("synth") / "train.pkl.xz"
    make_wm811k_frame(np.random.default_rng(3), classes=["Center", "Donut", "Edge-Ring", "none"], per_class=6,
                      sizes=(16, (20, 14), 24)).to_pickle(p)
    return load(p)


def test_registry():
    assert list_synthesizers() == ["cae", "gan"]
    with pytest.raises(InputError, match="unknown synthesis method"):
        create_synthesizer("vae")
    with pytest.raises(InputError, match="unknown cae synthesizer options"):
        create_synthesizer("cae", iterations=3)


@pytest.mark.slow
def test_cae_loss_falls_and_samples_are_valid(tiny_set):
    syn = create_synthesizer("cae", size=16, steps=60, batch_size=16, lr=3e-3)
    syn.class_names = tiny_set.class_names  # an untrained net for the "before" loss
    from adrcs.transforms.resize import resize_stack

    maps = resize_stack(tiny_set.maps, 16)
    torch.manual_seed(0)
    syn.nets = syn._build()
    before = syn.reconstruction_loss(maps)
    syn.fit(tiny_set, progress=False, say=lambda m: None)
    after = syn.reconstruction_loss(maps)
    assert after < 0.5 * before
    assert syn.history[0]["mse"] > syn.history[-1]["mse"]

    out = syn.sample("Donut", 10)
    assert out.shape == (10, 16, 16) and out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 1, 2}
    # off-wafer area is kept from a training map of the class (under some rot/flip)
    donut = syn.train_maps[syn.train_labels == syn.class_names.index("Donut")] == 0
    views = np.concatenate([np.rot90(donut, k, axes=(1, 2)) for k in range(4)]
                           + [np.rot90(donut[:, :, ::-1], k, axes=(1, 2)) for k in range(4)])
    for m in out:
        assert ((views == (m == 0)).all(axis=(1, 2))).any()


def test_gan_step_updates_both_networks_and_gp_is_finite(tiny_set):
    syn = create_synthesizer("gan", size=16, seed=4, iterations=1, critic_steps=1, batch_size=8, g_width=8,
                             d_width=8)
    syn.class_names = list(tiny_set.class_names)
    torch.manual_seed(syn.seed)  # fit() seeds the same way before building, so these are the initial weights
    before = {k: {n: p.detach().clone() for n, p in net.named_parameters()} for k, net in syn._build().items()}
    syn.fit(tiny_set, progress=False, say=lambda m: None)
    for name in ("generator", "critic"):
        params = dict(syn.nets[name].named_parameters())
        changed = [not torch.equal(p.detach().cpu(), before[name][n]) for n, p in params.items()]
        assert any(changed), f"{name} was not updated"
    h = syn.history[-1]
    assert np.isfinite(h["gradient_penalty"]) and np.isfinite(h["wasserstein"]) and "feature_matching" in h

    out = syn.sample("Edge-Ring", 5)
    assert out.shape == (5, 16, 16) and out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1, 2}


def test_gradient_penalty_finite_and_positive():
    torch.manual_seed(0)
    D, G = Critic(3, 16, width=4), Generator(3, 16, z_dim=8, width=4)
    y = torch.tensor([0, 1, 2, 1])
    real = torch.nn.functional.one_hot(torch.randint(0, 3, (4, 16, 16)), 3).permute(0, 3, 1, 2).float()
    fake = torch.softmax(G(torch.randn(4, 8), y), 1)
    gp = gradient_penalty(D, real, fake.detach(), y)
    assert torch.isfinite(gp) and gp.item() >= 0
    gp.backward()
    assert all(torch.isfinite(p.grad).all() for p in D.parameters() if p.grad is not None)


@pytest.mark.slow
@pytest.mark.parametrize("method,args", [
    ("cae", {"steps": 3}),
    ("gan", {"iterations": 2, "g_width": 8, "d_width": 8}),
    ("gan", {"iterations": 2, "g_width": 8, "d_width": 8, "ema": 0.9, "truncation": 0.5}),
])
def test_save_load_roundtrip(tiny_set, tmp_path, method, args):
    syn = create_synthesizer(method, size=16, seed=1, **args).fit(tiny_set, progress=False, say=lambda m: None)
    syn.save(tmp_path / method)
    assert (tmp_path / method / "training_curves.png").is_file()
    back = load_synthesizer(tmp_path / method)
    assert back.method == method and back.class_names == syn.class_names and back.size == 16
    np.testing.assert_array_equal(back.sample("Center", 4, seed=5), syn.sample("Center", 4, seed=5))
    assert back.class_counts == syn.class_counts


def test_sample_errors(tiny_set, tmp_path):
    syn = create_synthesizer("cae", size=16, steps=1).fit(tiny_set, progress=False, say=lambda m: None)
    with pytest.raises(InputError, match="unknown class 'Dount'"):
        syn.sample("Dount", 3)
    assert "Scratch" in syn.class_names  # a known class without training maps
    with pytest.raises(InputError, match="no training maps"):
        syn.sample("Scratch", 3)
    with pytest.raises(InputError, match="synthesizer.pt"):
        load_synthesizer(tmp_path)
    with pytest.raises(InputError, match="multiple of 8"):
        create_synthesizer("gan", size=20)


@pytest.mark.parametrize("name", ["synth_cae", "synth_gan"])
def test_shipped_synth_configs(name):
    from adrcs.synth.fit_config import load_synth_config

    c = load_synth_config(f"configs/{name}.yaml", {"steps": None})
    syn = create_synthesizer(c["method"], size=c["size"], seed=c["seed"], **c["args"])
    assert syn.method == name.split("_")[1] and syn.size % 8 == 0
