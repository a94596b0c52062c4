"""Options of `adrcs synth fit`: a small YAML file (configs/synth_*.yaml) plus --key value overrides."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from adrcs.config import read_yaml_mapping
from adrcs.errors import InputError

COMMON_KEYS = ("method", "size", "seed", "device")


def parse_value(text: str) -> Any:
    """A command-line value as YAML ('2000' -> 2000, '[0.5, 0.9]' -> list, 'abc' -> 'abc')."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load_synth_config(path: str | Path | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """{'method', 'size', 'seed', 'device', 'args': {...synthesizer options...}} from file + overrides."""
    data: dict[str, Any] = read_yaml_mapping(path) if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    out = {"method": data.pop("method", None), "size": data.pop("size", None), "seed": int(data.pop("seed", 0)),
           "device": str(data.pop("device", "auto"))}
    if out["method"] is None:
        raise InputError(path, "no synthesis method: give --method cae|gan")
    out["args"] = data
    return out
