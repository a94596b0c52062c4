"""How sure is it? Calibration, prediction sets, decisions and unknown patterns on WM-811K (issue 18 targets).

Part 1 (`full`): train `ffn` on the training splits with the usual select / calib split of the val maps and report
what `adrcs train` records: ECE on calib before / after temperature scaling, conformal coverage (overall and per
class) and set sizes on select, the decided / review / unknown shares (overall and per class) and accuracy /
macro-F1 on the decided maps.
Part 2 (`loco`): leave one class out. For each of the 8 defect classes: train without it (training maps of that
class removed, validation maps of that class removed from select / calib), then score its val maps as unknown;
AUROC and FPR at 95 % TPR against the known classes' select maps, and the share flagged at the calib threshold.

    python bench/trust.py                                # both parts, ../shared data
    python bench/trust.py --parts loco --loco-epochs 4   # only the leave-one-class-out study
    python bench/trust.py --train src/adrcs/samples/wm811k_sample.pkl.xz \\
        --val src/adrcs/samples/wm811k_sample_val.pkl.xz --epochs 5 --loco-epochs 3   # quick, shipped samples

Writes bench/results/trust<tag>.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from adrcs.api import train_sets
from adrcs.config import load_config
from adrcs.data import load_many
from adrcs.inference.unknown import ood_report
from adrcs.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "wm811k"
DEFECTS = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random", "Scratch"]


def run_tag(a: argparse.Namespace) -> str:
    """Suffix of the run folders: --run-tag, else --tag."""
    return a.tag if a.run_tag is None else a.run_tag


def overrides(a: argparse.Namespace) -> dict:
    """--set KEY=VALUE pairs as config overrides (values parsed as YAML)."""
    import yaml

    return {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in a.set)}


def full_run(a: argparse.Namespace, train, val) -> dict:
    """Part 1: one model, the trust block of its metrics.json."""
    run = REPO / "bench" / "runs" / f"trust_full{run_tag(a)}"
    cfg = load_config(REPO / "configs" / "wm811k_ffn.yaml", {"epochs": a.epochs, "device": a.device,
                                                             "progress": False, **overrides(a)})
    t = time.perf_counter()
    if a.reuse_runs and (run / "model.ckpt").is_file():  # the trained network kept, the trust layer refitted
        trust, metrics = refit_trust(cfg, run, train, val)
        report, train_s = metrics["val"], metrics["train_seconds"]
    else:
        report = train_sets(cfg, train, val, run, say=print)
        train_s = time.perf_counter() - t
        trust = json.loads((run / "metrics.json").read_text())["trust"]
    return {"epochs": a.epochs, "train_seconds": round(train_s, 1), "n_train": len(train),
            "n_val": len(val), "val_select_accuracy": report["accuracy"], "val_select_macro_f1": report["macro_f1"],
            "trust": trust}


def refit_trust(cfg: dict, run: Path, train, val) -> tuple[dict, dict]:
    """`--reuse-runs`: fit the trust layer of an already trained run again with the current config (same seed, so
    the same select / calib split), as `adrcs train` does at its end; returns (trust block, metrics.json)."""
    from adrcs.api_trust import fit_trust_run, split_select_calib

    pipe = Pipeline.load(run)
    pipe.trust = None
    select, calib = split_select_calib(val, float(cfg["calib_fraction"]), int(cfg["seed"]))
    trust = fit_trust_run(cfg, pipe, train, select, calib, run, say=print)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["trust"] = trust
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return trust, metrics


def loco_run(a: argparse.Namespace, train, val, cls: str) -> dict:
    """Part 2 for one class: train without `cls`, score its val maps as unknown."""
    k = train.class_names.index(cls)
    keep = [c for c in train.class_names if c != cls]
    tr = train.subset(train.labels != k).with_classes(keep)
    va_known = val.subset(val.labels != k).with_classes(keep)
    held = val.subset(val.labels == k)
    run = REPO / "bench" / "runs" / f"trust_loco_{cls}{run_tag(a)}"
    cfg = load_config(REPO / "configs" / "wm811k_ffn.yaml", {"epochs": a.loco_epochs, "device": a.device,
                                                             "progress": False, "early_stopping_patience": 0,
                                                             **overrides(a)})
    t = time.perf_counter()
    if a.reuse_runs and (run / "model.ckpt").is_file():
        split, _ = refit_trust(cfg, run, tr, va_known)
    else:
        train_sets(cfg, tr, va_known, run, say=lambda s: None)
        split = json.loads((run / "metrics.json").read_text())["trust"]
    pipe = Pipeline.load(run)
    import pandas as pd

    parts = pd.read_csv(run / "calibration_split.csv")
    sel_index = set(parts.loc[parts["part"] == "select", "index"].astype(int))
    known_sel = va_known.subset(np.array([i in sel_index for i in va_known.meta["index"].astype(int)]))
    p_in, f_in = pipe.predict_outputs(pipe.prepare(known_sel.maps))
    p_out, f_out = pipe.predict_outputs(pipe.prepare(held.maps))
    s_in, s_out = pipe.trust.unknown_scores(f_in, p_in), pipe.trust.unknown_scores(f_out, p_out)
    rep = ood_report(s_in, s_out)
    thr = pipe.trust.unknown.threshold
    return {"class": cls, "n_unknown": len(held), "n_known": len(known_sel), "auroc": rep["auroc"],
            "fpr_at_95_tpr": rep["fpr_at_95_tpr"], "flagged_unknown_share": float((s_out > thr).mean()),
            "known_false_alarm": float((s_in > thr).mean()), "train_seconds": round(time.perf_counter() - t, 1),
            "select_coverage": split["select"]["coverage"]}


def markdown(rec: dict) -> str:
    lines = ["# Trust benchmark (`python bench/trust.py`)", ""]
    if "full" in rec:
        f = rec["full"]
        t = f["trust"]
        s = t["select"]
        lines += [f"## One model: `ffn`, {f['epochs']} epochs, {f['n_train']} training maps, {f['n_val']} val maps "
                  f"({t['n_select']} select / {t['n_calib']} calib), trained in {f['train_seconds'] / 60:.1f} min", "",
                  f"Trust layer: unknown score `{t['unknown']}`, class-conditional sets: {t['class_conditional']}.", "",
                  "| measure | value | target |", "|---|---|---|",
                  f"| ECE on calib before / after temperature (T = {t['temperature'][0]}) | "
                  f"{t['calib']['ece_before']:.4f} / {t['calib']['ece']:.4f} | <= 0.02 after |",
                  f"| MCE on calib before / after | {t['calib']['mce_before']:.4f} / {t['calib']['mce']:.4f} | |",
                  f"| coverage on select (alpha {t['alpha']}) | {s['coverage']:.4f} | within 0.02 of {1 - t['alpha']} |",
                  f"| mean set size | {s['mean_set_size']:.3f} | |",
                  f"| decided share on select | {s['decided_share']:.4f} | >= 0.90 |",
                  f"| review / unknown share | {s['review_share']:.4f} / {s['unknown_share']:.4f} | |",
                  f"| accuracy / macro-F1 on the decided maps | {s.get('decided_accuracy', float('nan')):.4f} / "
                  f"{s.get('decided_macro_f1', float('nan')):.4f} | macro-F1 >= 0.97 |",
                  f"| accuracy / macro-F1 on all select maps | {f['val_select_accuracy']:.4f} / "
                  f"{f['val_select_macro_f1']:.4f} | |", "",
                  "| class | coverage | decided share |", "|---|---|---|"]
        lines += [f"| {c} | {s['per_class_coverage'].get(c, float('nan')):.4f} | "
                  f"{s['per_class_decided_share'].get(c, float('nan')):.4f} |" for c in s["per_class_coverage"]]
        lines.append("")
    if rec.get("loco"):
        rows = rec["loco"]
        lines += [f"## Leave one class out ({rec['loco_epochs']} epochs each; unknown = the held-out class's val "
                  "maps, known = the other classes' select maps)", "",
                  "| held-out class | unknown maps | AUROC | FPR at 95 % TPR | flagged at the calib threshold | "
                  "known maps flagged |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['class']} | {r['n_unknown']} | {r['auroc']:.4f} | {r['fpr_at_95_tpr']:.4f} | "
                  f"{r['flagged_unknown_share']:.4f} | {r['known_false_alarm']:.4f} |" for r in rows]
        lines += [f"| **mean** | | **{np.mean([r['auroc'] for r in rows]):.4f}** | "
                  f"{np.mean([r['fpr_at_95_tpr'] for r in rows]):.4f} | "
                  f"{np.mean([r['flagged_unknown_share'] for r in rows]):.4f} | |", ""]
    lines.append(f"Machine: {rec['machine']}. Target: mean leave-one-class-out AUROC >= 0.90.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", nargs="+", type=Path, default=sorted(SHARED.glob("train_*_split.pkl.xz")))
    ap.add_argument("--loco-train", nargs="+", type=Path, default=None,
                    help="training files of the leave-one-class-out models (default: --train)")
    ap.add_argument("--val", nargs="+", type=Path, default=[SHARED / "val_data.pkl.xz"])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--loco-epochs", type=int, default=4)
    ap.add_argument("--parts", nargs="+", default=["full", "loco"], choices=["full", "loco"])
    ap.add_argument("--classes", nargs="+", default=DEFECTS)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tag", default="")
    ap.add_argument("--run-tag", default=None, help="suffix of the run folders (default: --tag)")
    ap.add_argument("--reuse-runs", action="store_true",
                    help="keep the networks of earlier runs (bench/runs/trust_*), refit only their trust layers")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides for every run, e.g. class_conditional=false unknown=mahalanobis")
    a = ap.parse_args()
    import os
    import platform

    val = load_many(a.val).labeled()
    rec: dict = {"machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}", "loco_epochs": a.loco_epochs}
    out = REPO / "bench" / "results" / f"trust{a.tag}"
    if "full" in a.parts:
        train = load_many(a.train).labeled()
        rec["full"] = full_run(a, train, val.with_classes(train.class_names))
    if "loco" in a.parts:
        train = load_many(a.loco_train or a.train).labeled()
        v = val.with_classes(train.class_names)
        rec["loco"] = []
        for cls in a.classes:
            rec["loco"].append(loco_run(a, train, v, cls))
            print(json.dumps(rec["loco"][-1]))
            out.with_suffix(".json").write_text(json.dumps(rec, indent=2))
    out.with_suffix(".json").write_text(json.dumps(rec, indent=2))
    out.with_suffix(".md").write_text(markdown(rec))
    print(markdown(rec))


if __name__ == "__main__":
    main()
