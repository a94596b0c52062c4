"""Balancing: counts, synthetic marking, never touching validation data; CLI synth verbs."""
import json

import numpy as np
import pytest

from adrcs.data.loader import load
from adrcs.errors import InputError
from adrcs.synth import create_synthesizer
from adrcs.synth.balance import auto_target, balance_training_set, maps_to_add


@pytest.fixture
def files(tmp_path):
    from helpers.frames import make_wm811k_frame

    rng = np.random.default_rng(0)
    train = make_wm811k_frame(rng, classes=["Center", "Donut", "none"], per_class=3, sizes=(16, 20))
    extra_none = make_wm811k_frame(rng, classes=["none", "Center"], per_class=4, sizes=(16,))
    val = make_wm811k_frame(rng, classes=["Center", "Donut", "none"], per_class=2, sizes=(18,))
    import pandas as pd

    paths = {"train": tmp_path / "train.pkl.xz", "val": tmp_path / "val.pkl.xz"}
    pd.concat([train, extra_none], ignore_index=True).to_pickle(paths["train"])
    val.to_pickle(paths["val"])
    return paths


def test_targets():
    counts = np.array([40, 5, 0, 300, 90])
    assert auto_target(counts) == 90
    np.testing.assert_array_equal(maps_to_add(counts, 90), [50, 85, 0, 0, 0])


@pytest.mark.parametrize("method", ["oversample", "cae"])
def test_balance_fills_classes_and_marks_synthetic(files, method):
    train = load(files["train"])
    syn = create_synthesizer("cae", size=16, steps=2).fit(train, progress=False, say=lambda m: None) \
        if method == "cae" else None
    out, info = balance_training_set(train, method, target=8, synthesizer=syn)
    counts = np.bincount(out.labels, minlength=len(out.class_names))
    names = out.class_names
    # real: Center 7, Donut 3, none 7 -> +1, +5, +1; classes without maps stay empty
    assert counts[names.index("Center")] == counts[names.index("Donut")] == counts[names.index("none")] == 8
    assert counts.sum() == 24
    assert out.meta["synthetic"].sum() == info["n_added"] == 7 and info["added"]["Donut"] == 5
    assert (out.meta.loc[out.meta["synthetic"], "synth_method"] == method).all()
    assert not out.meta["synthetic"].iloc[:len(train)].any()
    for m in out.maps:
        assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1, 2}


def test_balance_errors(files):
    train = load(files["train"])
    with pytest.raises(InputError, match="not one of"):
        balance_training_set(train, "smote")
    gan_needed = create_synthesizer("cae", size=16, steps=1).fit(train, progress=False, say=lambda m: None)
    with pytest.raises(InputError, match="synthesizer given is a cae"):
        balance_training_set(train, "gan", synthesizer=gan_needed)


@pytest.mark.slow
def test_train_balance_never_touches_validation(files, tmp_path, monkeypatch):
    from adrcs import api
    from adrcs.config import load_config
    from adrcs.synth.base import Synthesizer

    seen = []
    real_fit = Synthesizer.fit

    def spy(self, ds, *a, **k):
        seen.append(ds)
        return real_fit(self, ds, *a, **k)

    monkeypatch.setattr(Synthesizer, "fit", spy)
    cfg = load_config("configs/wm811k_ffn.yaml", dict(balance="gan", balance_target=8, epochs=1, input_size=16,
                                                        batch_size=8, device="cpu", progress=False,
                                                        model_args={"width": 8},
                                                        synth_args={"size": 16, "iterations": 2, "g_width": 8,
                                                                    "d_width": 8}))
    run_dir = tmp_path / "run"
    api.train(cfg, [files["train"]], [files["val"]], run_dir, say=lambda m: None)
    assert len(seen) == 1
    assert set(seen[0].meta["source"]) == {str(files["train"])}
    assert len(seen[0]) == len(load(files["train"]))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n_val"] == len(load(files["val"]))
    assert metrics["balance"]["method"] == "gan" and metrics["balance"]["target"] == 8
    assert metrics["n_train"] == len(seen[0]) + metrics["balance"]["n_added"]
    added = load(run_dir / "synthetic_maps.pkl.xz")
    assert len(added) == metrics["balance"]["n_added"] and added.meta["synthetic"].all()
    assert (run_dir / "synth" / "synthesizer.pt").is_file()
    assert (run_dir / "plots" / "synthetic_samples.png").is_file()

    # holding out from train (no --val): the hold-out is taken before balancing
    seen.clear()
    api.train(cfg, [files["train"]], None, tmp_path / "run2", say=lambda m: None)
    assert len(seen[0]) < len(load(files["train"]))


class _Judge:
    """Stands in for a real-data classifier: says `p` for the asked class on every map."""

    def __init__(self, class_names, p):
        self.class_names, self.p = list(class_names), p

    def predict_proba(self, maps):
        out = np.zeros((len(maps), len(self.class_names)), np.float32)
        out[:, :] = (1 - self.p) / (len(self.class_names) - 1)
        out[:, self.class_names.index("Donut")] = self.p
        return out


@pytest.mark.parametrize("p,accept", [(0.9, 1.0), (0.1, 0.0)])
def test_filtered_balancing(files, p, accept):
    from adrcs.synth.balance import filtered_sample

    train = load(files["train"])
    syn = create_synthesizer("cae", size=16, steps=2).fit(train, progress=False, say=lambda m: None)
    judge = _Judge(train.class_names, p)
    maps, rate = filtered_sample(syn, "Donut", 6, judge, threshold=0.5, max_rounds=2)
    assert maps.shape == (6, 16, 16) and rate == accept  # too few accepted: best rejected ones fill up
    out, info = balance_training_set(train, "cae", target=8, synthesizer=syn, judge=judge)
    assert info["filter_accept_rate"]["Donut"] == accept
    assert np.bincount(out.labels)[train.class_names.index("Donut")] == 8
