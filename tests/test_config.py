from pathlib import Path

import pytest

from adrcs.config import DEFAULTS, load_config
from adrcs.errors import InputError


def test_shipped_configs_load():
    for name in ["wm811k_ffn", "wm811k_cnn", "mixedwm38_ffn"]:
        cfg = load_config(f"configs/{name}.yaml")
        assert set(cfg) == set(DEFAULTS)


def test_overrides_are_typed():
    cfg = load_config("configs/wm811k_ffn.yaml", {"epochs": "3", "lr": "0.01", "tta": "true", "device": "cpu"})
    assert cfg["epochs"] == 3 and cfg["lr"] == 0.01 and cfg["tta"] is True and cfg["device"] == "cpu"


@pytest.mark.parametrize("overrides,message", [
    ({"epochs": "many"}, "cannot read"),
    ({"no_such_key": 1}, "unknown option"),
    ({"model": "resnet9000"}, "unknown model"),
    ({"imbalance": "magic"}, "imbalance"),
    ({"input_size": 50}, "multiple of 8"),
])
def test_bad_overrides(overrides, message):
    with pytest.raises(InputError, match=message):
        load_config(None, overrides)


def test_bad_config_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epochs: [1\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(p)
    p.write_text("colour: red\n")
    with pytest.raises(InputError, match="unknown config keys"):
        load_config(p)
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_cli_overrides_of_keys_off_by_default_and_word_values_are_coerced():
    from adrcs.config import load_config

    cfg = load_config(None, {"task": "detect", "detector": "fcos_r18_slim", "input_size": "64", "train_crop": "320",
                             "score_threshold": "auto"})
    assert cfg["train_crop"] == 320 and cfg["score_threshold"] == "auto"
    assert load_config(None, {"score_threshold": "0.3"})["score_threshold"] == 0.3
    import pytest

    from adrcs.errors import InputError

    with pytest.raises(InputError, match="score-threshold"):
        load_config(None, {"score_threshold": "high"})


@pytest.mark.parametrize("yaml_text,overrides,needle", [
    ("epochs: ten\n", {}, "epochs (config key or --epochs): 'ten' is not an integer"),
    ("lr: fast\n", {}, "lr (config key or --lr): 'fast' is not a number"),
    ("model_args: 3\n", {}, "model_args"),
    ("", {"lr": "-5"}, "lr (config key or --lr): -5.0 must be > 0"),
    ("", {"epochs": "0"}, "epochs (config key or --epochs): 0 must be >= 1"),
    ("", {"val_fraction": "1.5"}, "val_fraction"),
])
def test_wrong_values_name_the_key(tmp_path, yaml_text, overrides, needle):
    from adrcs.config import load_config
    from adrcs.errors import InputError

    p = tmp_path / "c.yaml"
    p.write_text(yaml_text or "seed: 0\n")
    with pytest.raises(InputError) as err:
        load_config(p, overrides)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_device_gpu_without_one_is_one_line_and_writes_nothing(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from adrcs.cli import main

    sample = Path(__file__).resolve().parents[1] / "src" / "adrcs" / "samples" / "wm811k_sample.pkl.xz"
    with pytest.raises(SystemExit) as ex:
        main(["train", "--train", str(sample), "--out", str(tmp_path / "run"), "--device", "gpu"])
    assert ex.value.code == 2 and "no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_task_without_a_yaml_gets_its_own_defaults(tmp_path):
    cfg = load_config(None, {"task": "detect"})
    assert cfg["input_size"] == 640 and cfg["batch_size"] == 4 and cfg["augment"] == "flips"
    p = tmp_path / "d.yaml"
    p.write_text("task: detect\ninput_size: 512\n")
    cfg = load_config(p, {"batch_size": "2"})
    assert cfg["input_size"] == 512 and cfg["batch_size"] == 2 and cfg["scheduler"] == "cosine"
    assert load_config(None, {})["input_size"] == DEFAULTS["input_size"] == 48


def test_saved_config_holds_only_its_task_keys(tmp_path):
    import yaml

    from adrcs.config import save_config

    det = load_config(None, {"task": "detect"})
    save_config(dict(det, train=["a.txt"]), tmp_path / "d.yaml")
    saved = yaml.safe_load((tmp_path / "d.yaml").read_text())
    assert "detector" in saved and "train_crop" in saved and saved["train"] == ["a.txt"]
    assert not {"selector", "sbae_args", "balance", "model_args", "tta"} & set(saved)
    save_config(load_config(None, {}), tmp_path / "w.yaml")
    wafer = yaml.safe_load((tmp_path / "w.yaml").read_text())
    assert "selector" in wafer and "detector" not in wafer and "use_template" not in wafer
    assert load_config(tmp_path / "w.yaml") == load_config(None, {})  # a saved config reloads to the same run



@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parents[1] / "configs").glob("*.yaml")
                                        if not p.name.startswith("synth_")))
def test_every_shipped_training_config_loads_and_its_wafer_model_builds(name):
    """Every training config under configs/ is valid; a wafer-map network builds and runs one tiny forward pass."""
    import torch

    from adrcs.models import create_model

    cfg = load_config(Path(__file__).parents[1] / "configs" / name, {"device": "cpu"})
    if cfg["task"] != "wafer" or cfg["features"] == "sinogram":
        return  # image models, detectors and 1-D feature models are built by their own tests
    net = create_model(cfg["model"], num_classes=9, **dict(cfg["model_args"])).eval()
    s = int(cfg["input_size"])
    with torch.no_grad():
        assert net(torch.zeros(2, 3, s, s)).shape == (2, 9)


def test_model_flag_over_a_config_for_another_network_keeps_only_the_args_it_takes():
    cfg = load_config(Path(__file__).parents[1] / "configs" / "images_classify.yaml", {"model": "cnn"})
    assert cfg["model"] == "cnn" and "hidden" not in cfg["model_args"] and cfg["model_args"]["width"] == 16
    same = load_config(Path(__file__).parents[1] / "configs" / "images_classify.yaml", {"model": "ffn"})
    assert same["model_args"]["hidden"] == 256
    given = load_config(Path(__file__).parents[1] / "configs" / "images_classify.yaml",
                        {"model": "cnn", "model_args": "{width: 8, hidden: 3}"})
    assert given["model_args"] == {"width": 8, "hidden": 3}  # the command line's own args are kept (and fail later)
