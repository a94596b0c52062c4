"""bench/deeppcb_patches.py: the training commands, and the report / figures from evaluation records."""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from helpers.bench import load_script  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NAMES = ["copper", "mousebite", "open", "pin-hole", "short", "spur"]


bp = load_script("bench/deeppcb_patches.py", "deeppcb_patches_bench")


def test_both_models_build_from_the_documented_config_with_the_bench_overrides():
    from adrcs.config import load_config
    from adrcs.models.registry import create_model
    importlib.import_module("adrcs.models")  # registers the models

    args = argparse.Namespace(patches=Path("P"), size=64, epochs=3, device="cpu")
    for model in ("ffn", "cnn"):
        cmd = bp.train_command(model, args, Path("R"))
        assert cmd[cmd.index("--model") + 1] == model and cmd[cmd.index("--input-size") + 1] == "64"
        over = {"model": model}
        if "--model-args" in cmd:
            over["model_args"] = yaml.safe_load(cmd[cmd.index("--model-args") + 1])
        cfg = load_config(bp.CONFIG, over)
        net = create_model(cfg["model"], num_classes=6, in_chans=3, **{**cfg["model_args"]})
        assert net(__import__("torch").zeros(2, 3, 64, 64)).shape == (2, 6)


def _record(model: str, tmp_path: Path, rng: np.random.Generator) -> dict:
    y = np.repeat(np.arange(6), 5)
    probs = rng.dirichlet(np.ones(6), len(y)) * 0.5
    probs[np.arange(len(y)), y] += 0.5
    df = pd.DataFrame({"image": [f"test/{NAMES[c]}/x{i}.png" for i, c in enumerate(y)],
                       **{f"prob_{c}": probs[:, j] for j, c in enumerate(NAMES)}})
    pred = tmp_path / f"{model}.csv"
    df.to_csv(pred, index=False)
    per = {c: {"precision": 0.98, "recall": 0.97, "f1": 0.975, "support": 5, "roc_auc": 0.999} for c in NAMES}
    cm = (np.eye(6, dtype=int) * 5).tolist()
    return {"model": model, "params": 1000, "input_size": 64, "epochs": 3, "use_template": True, "best_epoch": 2,
            "train_minutes": 1.5, "threads": 1, "machine": {"processor": "x86_64", "torch": "2"},
            "test": {"accuracy": 0.98, "macro_f1": 0.975, "macro_precision": 0.98, "macro_recall": 0.97,
                     "roc_auc_macro": 0.999, "n": 30, "per_class": per, "confusion_matrix": cm,
                     "class_names": NAMES},
            "predictions": str(pred)}


def test_report_and_figures(tmp_path):
    rng = np.random.default_rng(0)
    recs = [_record("ffn", tmp_path, rng), _record("cnn", tmp_path, rng)]
    for fn in (bp.plot_table1, bp.plot_confusion, bp.plot_roc):
        path = tmp_path / f"{fn.__name__}.png"
        fn(recs, path)
        assert path.stat().st_size > 1000
    summary = {"settings": {"size": 64}, "groups": {s: [f"g{s}"] for s in ("train", "val", "test")},
               "images": {"train": 3, "val": 1, "test": 1},
               "counts": {s: {c: 5 for c in bp._script().CLASS_NAMES} for s in ("train", "val", "test")},
               "totals": {"train": 30, "val": 30, "test": 30}}
    md = bp.markdown(recs, summary, "")
    assert "| ffn | 1,000 | 0.9800 |" in md and "macro-F1 >= 0.97 -> 0.9750 (met)" in md
    assert all(f"| {c} | 5 |" in md for c in NAMES)
