"""Dense products: `resize: nearest` vs `resize: failmax` on val maps re-rendered at 2x and 4x die density.

A 10,000-die product is resized to the model's 48 px input; nearest-neighbour sampling then skips rows and
columns, and a one-die scratch breaks up. Here each die of the WM-811K val maps is split into k x k dies
(k = 1, 2, 4: the same pattern on a denser product) and two models are compared, each trained on the usual
training maps with one resize method. Writes bench/results/dense_maps.{json,md}.

    python bench/dense_maps.py                      # ../shared train_1 + train_10, 12 epochs, all val maps
    python bench/dense_maps.py --train src/adrcs/samples/wm811k_sample.pkl.xz \\
        --val src/adrcs/samples/wm811k_sample_val.pkl.xz --epochs 15   # quick, shipped samples
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from adrcs.api import train
from adrcs.config import load_config
from adrcs.data import load_many
from adrcs.metrics.classification import report_for
from adrcs.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "wm811k"


def densify(maps: list[np.ndarray], k: int, render: str = "split") -> list[np.ndarray]:
    """Each die split into k x k dies. render "split": all k x k take the die's code (the issue's protocol);
    "thin": a failing die's block fails only on its diagonal (defects stay one die wide on the denser product,
    as a scratch on a real 10,000-die product does), the rest of the block passes."""
    if k == 1:
        return maps
    out = []
    eye = np.eye(k, dtype=bool)
    for m in maps:
        d = m.repeat(k, axis=0).repeat(k, axis=1)
        if render == "thin":
            fail_block = (m == 2).repeat(k, axis=0).repeat(k, axis=1)
            diag = np.tile(eye, m.shape)
            d[fail_block & ~diag] = 1
        out.append(d)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", nargs="+", type=Path,
                    default=[SHARED / "train_1_split.pkl.xz", SHARED / "train_10_split.pkl.xz"])
    ap.add_argument("--val", nargs="+", type=Path, default=[SHARED / "val_data.pkl.xz"])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--densities", nargs="+", type=int, default=[1, 2, 4])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tag", default="")
    a = ap.parse_args()
    val = load_many(a.val).labeled()
    records = []
    for method in ("nearest", "failmax"):
        run = REPO / "bench" / "runs" / f"dense_{method}{a.tag}"
        cfg = load_config(REPO / "configs" / "wm811k_ffn.yaml", {"resize": method, "epochs": a.epochs,
                                                                 "device": a.device})
        t = time.perf_counter()
        train(cfg, a.train, a.val, run, say=lambda s: None)
        train_s = time.perf_counter() - t
        pipe = Pipeline.load(run)
        v = val.with_classes(pipe.class_names)
        for render, k in [("split", k) for k in a.densities] + [("thin", k) for k in a.densities if k > 1]:
            maps = densify(v.maps, k, render)
            t = time.perf_counter()
            probs = pipe.predict_proba(maps)
            rep = report_for(v.labels, probs, pipe.class_names, False)
            rec = {"resize": method, "render": render, "density": k, "macro_f1": round(rep["macro_f1"], 4),
                   "accuracy": round(rep["accuracy"], 4),
                   "recall_scratch": round(rep["per_class"]["Scratch"]["recall"], 4),
                   "median_side": int(np.median([max(m.shape) for m in maps])),
                   "predict_maps_per_s": round(len(maps) / (time.perf_counter() - t), 1),
                   "train_seconds": round(train_s, 1)}
            records.append(rec)
            print(json.dumps(rec), flush=True)
    out = REPO / "bench" / "results" / f"dense_maps{a.tag}"
    meta = {"train": [p.name for p in a.train], "val": [p.name for p in a.val], "n_val": len(val),
            "epochs": a.epochs, "config": "configs/wm811k_ffn.yaml"}
    out.with_suffix(".json").write_text(json.dumps({"setup": meta, "results": records}, indent=2))
    cols = ["resize", "render", "density", "median_side", "macro_f1", "accuracy", "recall_scratch", "predict_maps_per_s"]
    lines = [f"# Dense products: nearest vs failmax resize ({', '.join(meta['train'])} -> {meta['val'][0]}, "
             f"{len(val)} val maps, {a.epochs} epochs)", "", "| " + " | ".join(cols) + " |",
             "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in records]
    lines += ["", "render split: every die becomes k x k dies of its code (the issue's protocol); thin: a failing "
              "die's block fails only on its diagonal, so defects stay one die wide on the denser product."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
