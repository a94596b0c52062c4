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
