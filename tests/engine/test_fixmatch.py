"""FixMatch (`semi_supervised: fixmatch`) and `adrcs train --unlabeled`: views, pseudo-labels, runs, errors."""
import json

import pytest
import torch

from helpers.cli import run_cli as run

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = ["--input-size", "16", "--device", "cpu", "--batch-size", "8", "--model-args",
         "{width: 4, deep_mult: 2, hidden: 16}", "--calibrate", "false", "--early-stopping-patience", "0"]


def _maps(n=6, s=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    maps = torch.ones(n, s, s, dtype=torch.uint8)
    maps[:, :2] = 0  # off-wafer rows
    maps[torch.rand(n, s, s, generator=g) < 0.4] = 2
    maps[:, :2] = 0
    return maps


def test_cutout_only_turns_failing_dies_good_inside_one_square():
    from adrcs.transforms.map_augment import die_cutout

    maps = _maps()
    out = die_cutout(maps, max_side=0.5, generator=torch.Generator().manual_seed(1))
    changed = out != maps
    assert out.shape == maps.shape and out.dtype == torch.uint8
    assert torch.all(maps[changed] == 2) and torch.all(out[changed] == 1)
    assert torch.all(out[maps == 0] == 0)
    for k in range(len(maps)):  # the changed cells of a map fit in a square of side <= 6
        r, c = torch.nonzero(changed[k], as_tuple=True)
        if len(r):
            assert r.max() - r.min() < 6 and c.max() - c.min() < 6
    assert changed.any()


def test_strong_view_keeps_the_wafer_outline_up_to_symmetry():
    from adrcs.transforms.dihedral import dihedral_views
    from adrcs.transforms.map_augment import strong_view

    maps = _maps()
    out = strong_view(maps, generator=torch.Generator().manual_seed(2))
    for k in range(len(maps)):
        outlines = [v[0] > 0 for v in dihedral_views((maps[k:k + 1] > 0).to(torch.uint8))]
        assert any(torch.equal(o, out[k] > 0) for o in outlines)


def test_semi_options_check_every_value():
    from adrcs.engine.fixmatch import semi_options
    from adrcs.errors import InputError

    assert semi_options({"mu": "3", "threshold": 0.9}) == {**semi_options(None), "mu": 3, "threshold": 0.9}
    for bad, match in [({"tau": 1}, "unknown option 'tau'"), ({"threshold": 0}, "threshold"),
                       ({"mu": 0}, "mu"), ({"dist_align": "yes"}, "true or false"), ({"mu": "x"}, "number")]:
        with pytest.raises(InputError, match=match):
            semi_options(bad)


def test_distribution_alignment_lifts_the_rare_class_pseudo_labels():
    from adrcs.engine.fixmatch import FixMatchModule

    args = dict(model="ffn", num_classes=2, class_names=["a", "b"], model_args={"width": 4, "deep_mult": 2,
                                                                              "hidden": 8})
    logits = torch.tensor([[3.0, 0.0]] * 9 + [[0.0, 3.0]])  # the model says "a" far more often than the prior
    plain = FixMatchModule(**args, semi_args={"dist_align": False, "threshold": 0.5}, class_prior=[0.5, 0.5])
    aligned = FixMatchModule(**args, semi_args={"ema": 0.0, "threshold": 0.5}, class_prior=[0.5, 0.5])
    label0, mask0 = plain.pseudo_labels(logits)
    label1, mask1 = aligned.pseudo_labels(logits)
    assert label0.tolist() == label1.tolist() == [0] * 9 + [1]  # no flip of confident answers ...
    p = logits.softmax(1)
    assert torch.allclose(aligned.p_model, p.mean(0))  # ... the running mean is the batch mean with ema 0
    assert mask1.sum() == mask0.sum() == 10


@pytest.fixture
def files(tmp_path):
    from helpers.frames import write_noisy_splits

    return write_noisy_splits(tmp_path, {"unlabeled": 12, "train": 4, "val": 4})


def test_train_with_unlabeled_runs_fixmatch_and_records_it(files, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(["train", "--train", files["train"], "--val", files["val"], "--unlabeled",
                             files["unlabeled"], files["val"], "--out", out, "--epochs", "2",
                             "--semi-supervised", "fixmatch", "--semi-args",
                             "{mu: 2, threshold: 0.3}", *SMALL], capsys)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    u = m["unlabeled"]
    assert u["method"] == "fixmatch" and u["n_read"] == 48 + 16 and u["dropped_as_val"] == 16
    assert u["n_maps"] == 48 and u["files"] == [str(files["unlabeled"]), str(files["val"])]
    import pandas as pd

    hist = pd.read_csv(out / "logs" / "metrics.csv")
    assert {"mask_rate", "unsup_loss", "sup_loss"} <= set(hist.columns)
    assert "fixmatch with 48 unlabeled maps" in stdout and "mask_rate" in stdout
    import yaml

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["semi_supervised"] == "fixmatch" and cfg["unlabeled"] == u["files"]
    code, _, err = run(["predict", "--model", out, "--data", files["val"], "--out", tmp_path / "p.csv"], capsys)
    assert code == 0, err


@pytest.mark.parametrize("method", ["none", "auto"])
def test_semi_supervised_none_or_auto_keeps_the_network_on_labels_and_records_it(files, tmp_path, capsys, method):
    from adrcs.engine.fixmatch import AUTO_METHOD, AUTO_NOTE

    out = tmp_path / "run"
    code, stdout, err = run(["train", "--train", files["train"], "--val", files["val"], "--unlabeled",
                             files["unlabeled"], "--semi-supervised", method, "--out", out, "--epochs", "1", *SMALL],
                            capsys)
    assert code == 0, err
    u = json.loads((out / "metrics.json").read_text())["unlabeled"]
    assert u["method"] == (AUTO_METHOD if method == "auto" else "none") and u["n_maps"] == 48
    assert (AUTO_NOTE in " ".join(stdout.split())) == (method == "auto" and AUTO_METHOD == "none")


@pytest.mark.parametrize("extra, message", [
    (["--semi-supervised", "fixmatch"], "needs maps without labels"),
    (["--semi-supervised", "mean_teacher"], "semi_supervised"),
    (["--unlabeled", "missing.pkl"], "missing.pkl"),
    (["--semi-args", "{tau: 0.9}"], "unknown option 'tau'"),
])
def test_bad_semi_supervised_requests_are_one_line_errors(files, tmp_path, capsys, extra, message):
    code, _, err = run(["train", "--train", files["train"], "--val", files["val"], "--out", tmp_path / "r",
                        "--epochs", "1", *SMALL, *extra], capsys)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_sinogram_config_gives_unlabeled_maps_to_the_sbae(tmp_path):
    from adrcs.api import train
    from adrcs.config import load_config
    from adrcs.data.writer import save_wafer_maps
    from helpers.wafers import make_wafer_set

    kinds = ("center", "donut", "edge_ring", "scratch")
    save_wafer_maps(make_wafer_set(5, 0, kinds), tmp_path / "train.pkl.xz")
    save_wafer_maps(make_wafer_set(3, 1, kinds), tmp_path / "val.pkl.xz")
    save_wafer_maps(make_wafer_set(6, 2, kinds), tmp_path / "more.pkl.xz")
    cfg = load_config(None, {"features": "sinogram", "model": "cnn1d", "input_size": 16, "epochs": 1,
                             "batch_size": 8, "model_args": {"width": 8, "hidden": 16}, "device": "cpu",
                             "progress": False, "sbae_args": {"steps": 5, "channels": 4, "hidden": 8},
                             "selector": "none", "feature_cache": "none", "calibrate": False})
    train(cfg, [tmp_path / "train.pkl.xz"], [tmp_path / "val.pkl.xz"], tmp_path / "run", say=lambda m: None,
          unlabeled_paths=[tmp_path / "more.pkl.xz"])
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    u = m["unlabeled"]
    assert u["method"] == "sbae" and u["n_read"] == 24 and 0 < u["n_maps"] <= 24
    assert m["features"]["sbae_maps"] == 20 + u["n_maps"]  # training maps + the pool


def test_fixmatch_starts_from_a_pretrained_encoder(files, tmp_path, capsys):
    pre = tmp_path / "pre"
    code, _, err = run(["pretrain", "--unlabeled", files["unlabeled"], "--out", pre, "--epochs", "1",
                        "--input-size", "16", "--device", "cpu", "--batch-size", "16", "--model-args",
                        "{width: 4, deep_mult: 2, hidden: 16}"], capsys)
    assert code == 0, err
    out = tmp_path / "run"
    code, stdout, err = run(["train", "--train", files["train"], "--val", files["val"], "--unlabeled",
                             files["unlabeled"], "--init", pre, "--out", out, "--epochs", "1",
                             "--semi-supervised", "fixmatch", "--semi-args",
                             "{mu: 2}", *SMALL], capsys)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["init"] == str(pre) and m["unlabeled"]["method"] == "fixmatch"


def test_logit_adjustment_bridges_the_balanced_training_mix_and_the_real_one():
    from adrcs.engine.fixmatch import FixMatchModule

    args = dict(model="ffn", num_classes=2, class_names=["common", "rare"],
                model_args={"width": 4, "deep_mult": 2, "hidden": 8})
    m = FixMatchModule(**args, semi_args={"dist_align": False, "threshold": 0.6}, class_prior=[0.9, 0.1],
                       train_prior=[0.5, 0.5])
    assert torch.allclose(m.adjust, torch.tensor([0.9 / 0.5, 0.1 / 0.5]).log())
    label, mask = m.pseudo_labels(torch.tensor([[0.0, 0.0], [0.0, 5.0]]))
    assert label.tolist() == [0, 1]  # a tie in the balanced mix is the common class in the real one
    assert mask.tolist() == [1.0, 1.0]
    plain = FixMatchModule(**args, class_prior=[0.9, 0.1])  # no balancing: no offset
    assert torch.count_nonzero(plain.adjust) == 0


def test_flex_thresholds_let_the_rare_class_in_below_the_fixed_threshold():
    from adrcs.engine.fixmatch import FixMatchModule

    args = dict(model="ffn", num_classes=2, class_names=["common", "rare"],
                model_args={"width": 4, "deep_mult": 2, "hidden": 8})
    m = FixMatchModule(**args, semi_args={"dist_align": False, "flex": True, "threshold": 0.9},
                       class_prior=[0.5, 0.5])
    common = torch.tensor([[6.0, 0.0]] * 8)  # confident "common" for pool rows 0..7
    label, mask = m.pseudo_labels(common, torch.arange(8))
    assert mask.tolist() == [1.0] * 8 and m.memory.tolist() == [0] * 8
    rare = torch.tensor([[0.0, 0.5]])  # p(rare) = 0.62 < 0.9, but no map is assigned to "rare" yet
    label, mask = m.pseudo_labels(rare, torch.tensor([8]))
    assert label.tolist() == [1] and mask.tolist() == [1.0] and m.memory[8] == -1  # taken, not remembered
    label, mask = m.pseudo_labels(torch.tensor([[1.0, 0.0]]), torch.tensor([9]))  # p = 0.73 for "common"
    assert mask.tolist() == [0.0]  # "common" is well learnt: its threshold stays 0.9
