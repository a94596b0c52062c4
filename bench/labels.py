"""How far do few labels go? WM-811K with 1 %, 10 % or all labels x (supervised, + pretraining, + FixMatch, both).

Splits (../shared/data/wm811k):

- **confirm**: a stratified 20 % of train_29_split (seed 0). Never trained, pretrained or selected on; it only
  confirms the val figures (choices made on val overfit val, see issue 19).
- **labelled**: ``1`` = train_1 (623 maps), ``10`` = train_10, ``all`` = train_1 + train_10 + train_20 + the rest
  of train_29.
- **unlabelled pool** (FixMatch): every other training map (labels hidden), never a confirm map; maps identical to
  a val map are dropped by `adrcs.api_unlabeled.honest_pool`. ``all`` has no pool, so its ``semi`` cells are skipped.
- **distill** (issue 19 item 5): the ``sup`` cells of seeds ``--teacher-seeds`` (trained first when missing)
  teach one student of the same config (`adrcs train --teacher RUN ...`); with 1 % / 10 % labels the unlabelled
  pool joins with the teachers' targets (``semi_supervised: distill``, a noisy student). The cell also scores the
  teachers' ensemble.
- **pretraining**: one SimCLR run (`adrcs pretrain`) on every training map except the confirm split serves every
  ``pre`` / ``both`` cell (`--pretrain DIR` reuses one).

Each cell trains `configs/wm811k_ffn.yaml` (1 % and 10 %: ``balance: oversample``, the best supervised recipe at
few labels) through `adrcs.api.train_sets`, exactly as `adrcs train --unlabeled ... [--init DIR]` does, selects on
val (select split), and is scored without TTA on all val maps and on the confirm split. A cell is cached in
bench/runs/labels/<labels>_<method>_s<seed>/cell.json and never rerun, so the grid can be built over several
sittings; every call rewrites the results from all cached cells.

    python bench/labels.py --labels 1 --methods sup semi --seeds 0          # two cells
    python bench/labels.py --labels 1 10 all --methods sup pre semi both --seeds 0 1 2
    python bench/labels.py --labels all --methods distill --seeds 0         # 3 sup teachers -> 1 student
    python bench/labels.py --report-only                                   # tables + plot from the cache

Writes bench/results/labels.{json,md} and labels_curve.png (macro-F1 against labelled maps, one line per method).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from adrcs.api import train_sets
from adrcs.api_unlabeled import honest_pool
from adrcs.config import load_config
from adrcs.data import load_many
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.metrics.classification import report_for
from adrcs.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "wm811k"
RUNS = REPO / "bench" / "runs" / "labels"
RESULTS = REPO / "bench" / "results"
SPLITS = {"1": "train_1_split.pkl.xz", "10": "train_10_split.pkl.xz", "20": "train_20_split.pkl.xz",
          "29": "train_29_split.pkl.xz"}
METHODS = ("sup", "pre", "semi", "both")
DISTILL = "distill"  # issue 19 item 5: the supervised cells' seeds (--teacher-seeds) distilled into one student


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=SHARED)
    ap.add_argument("--labels", nargs="+", default=["1", "10", "all"], choices=["1", "10", "all"])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=[*METHODS, DISTILL])
    ap.add_argument("--teacher-seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="distill: the sup cells (same labels) whose runs teach the student (trained if missing)")
    ap.add_argument("--distill-args", default="", help="YAML mapping: alpha, temperature of the distill cells")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=0, help="override the config's epochs (0: keep)")
    ap.add_argument("--pretrain", type=Path, default=None, help="an `adrcs pretrain` folder to reuse")
    ap.add_argument("--pretrain-epochs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--semi-args", default="", help="YAML mapping of FixMatch options for the semi / both cells")
    ap.add_argument("--variant", default="", help="name suffix of the cells (an ablation: semi-<variant>)")
    ap.add_argument("--report-only", action="store_true")
    return ap.parse_args(argv)


def load_splits(data_dir: Path) -> tuple[dict[str, WaferMapSet], WaferMapSet, WaferMapSet]:
    """(training splits by name with train_29 minus confirm as "29", confirm, val)."""
    from sklearn.model_selection import train_test_split

    parts = {k: load_many([data_dir / f]).labeled() for k, f in SPLITS.items()}
    names = parts["1"].class_names
    parts = {k: v.with_classes(names) for k, v in parts.items()}
    val = load_many([data_dir / "val_data.pkl.xz"]).labeled().with_classes(names)
    t29 = parts["29"]
    keep, confirm = train_test_split(np.arange(len(t29)), test_size=0.2, random_state=0, stratify=t29.labels)
    parts["29"] = t29.subset(np.sort(keep))
    return parts, t29.subset(np.sort(confirm)), val


def concat(sets: list[WaferMapSet]) -> WaferMapSet:
    return WaferMapSet.concat(sets)


def labelled_and_pool(parts: dict[str, WaferMapSet], labels: str) -> tuple[WaferMapSet, WaferMapSet | None]:
    if labels == "all":
        return concat([parts[k] for k in SPLITS]), None
    rest = [parts[k] for k in SPLITS if k != labels]
    return parts[labels], concat(rest)


def pretrained(a: argparse.Namespace, parts: dict[str, WaferMapSet]) -> Path:
    """The one pretraining run of the grid: every training map except the confirm split, labels ignored."""
    if a.pretrain is not None:
        return a.pretrain
    out = RUNS / "pretrain"
    if (out / "encoder.pt").is_file():
        return out
    from adrcs.api_pretrain import load_pretrain_config, pretrain
    from adrcs.data.writer import save_wafer_maps_npz

    RUNS.mkdir(parents=True, exist_ok=True)
    maps = concat([parts[k] for k in SPLITS])
    hidden = maps.subset(np.arange(len(maps)))
    hidden.labels = np.full(len(maps), -1, np.int64)
    pool_file = save_wafer_maps_npz(hidden, RUNS / "pretrain_maps.npz")
    cfg = load_pretrain_config(REPO / "configs" / "wm811k_ffn.yaml",
                               {"epochs": a.pretrain_epochs, "device": a.device, "progress": False})
    pretrain(cfg, [pool_file], out, say=print, val_paths=[a.data_dir / "val_data.pkl.xz"])
    return out


def score(pipe: Pipeline, ds: WaferMapSet) -> dict[str, Any]:
    rep = report_for(ds.labels, pipe.predict_proba(ds, tta=False), pipe.class_names, False)
    return {"macro_f1": rep["macro_f1"], "accuracy": rep["accuracy"],
            "f1": {c: rep["per_class"][c]["f1"] for c in rep["class_names"]}}


def run_cell(a: argparse.Namespace, labels: str, method: str, seed: int, parts: dict[str, WaferMapSet],
             confirm: WaferMapSet, val: WaferMapSet) -> dict[str, Any] | None:
    name = f"{method}-{a.variant}" if a.variant else method
    run = RUNS / f"{labels}_{name}_s{seed}"
    cached = run / "cell.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    labelled, pool = labelled_and_pool(parts, labels)
    if method in ("semi", "both") and pool is None:
        return None
    over: dict[str, Any] = {"seed": seed, "device": a.device, "progress": False,
                            "semi_supervised": "fixmatch" if method in ("semi", "both") else "none"}
    if labels != "all":
        over["balance"] = "oversample"
    if a.semi_args:
        import yaml

        over["semi_args"] = yaml.safe_load(a.semi_args)
    if a.epochs:
        over["epochs"] = a.epochs
    if method in ("pre", "both"):
        over["init"] = str(pretrained(a, parts))
    teachers: list[Path] = []
    if method == DISTILL:
        import yaml

        for k in a.teacher_seeds:  # the teachers are the supervised cells (trained first when missing)
            run_cell(a, labels, "sup", k, parts, confirm, val)
            teachers.append(RUNS / f"{labels}_sup_s{k}")
        over["distill_from"] = [str(t) for t in teachers]
        over["distill_args"] = yaml.safe_load(a.distill_args) if a.distill_args else {}
        if pool is not None:  # few labels: the teachers label the pool too (a noisy student) ...
            over["semi_supervised"] = "distill"
            # ... in as many steps as a teacher took (epochs over its balanced labelled set), pool maps drawn among them
            over["epoch_size"] = json.loads((teachers[0] / "metrics.json").read_text())["n_train"]
    cfg = load_config(REPO / "configs" / "wm811k_ffn.yaml", over)
    unlabeled, info = None, None
    if method in ("semi", "both") or (method == DISTILL and pool is not None):
        unlabeled, info = honest_pool(pool, labelled, val, say=print)
    print(f"== cell {labels} % labels, {method}, seed {seed}: {len(labelled)} labelled, "
          f"{0 if unlabeled is None else len(unlabeled)} unlabelled", flush=True)
    t = time.perf_counter()
    train_sets(dict(cfg, train=[f"train_{labels}"]), labelled, val, run, say=print, unlabeled=unlabeled,
               unlabeled_info=info)
    seconds = time.perf_counter() - t
    pipe = Pipeline.load(run)
    metrics = json.loads((run / "metrics.json").read_text())
    cell = {"labels": labels, "method": name, "seed": seed, "semi_args": over.get("semi_args", {}), "n_labelled": len(labelled),
            "n_unlabelled": 0 if unlabeled is None else len(unlabeled), "train_seconds": metrics["train_seconds"],
            "wall_seconds": round(seconds, 1), "best_epoch": metrics["best_epoch"],
            "val": score(pipe, val), "confirm": score(pipe, confirm)}
    if teachers:  # the ensemble the student learnt from (mean probabilities, no TTA), for comparison
        cell["distill"] = metrics.get("distill", {})
        cell["teachers"] = {split: ensemble_score(teachers, ds) for split, ds in (("val", val), ("confirm", confirm))}
    cached.write_text(json.dumps(cell, indent=2))
    return cell


def ensemble_score(runs: list[Path], ds: WaferMapSet) -> dict[str, Any]:
    """Macro-F1 / accuracy / F1 per class of the runs' mean probabilities (no TTA)."""
    pipes = [Pipeline.load(r) for r in runs]
    probs = np.mean([p.predict_proba(ds, tta=False) for p in pipes], axis=0)
    rep = report_for(ds.labels, probs, pipes[0].class_names, False)
    return {"macro_f1": rep["macro_f1"], "accuracy": rep["accuracy"],
            "f1": {c: rep["per_class"][c]["f1"] for c in rep["class_names"]}}


def merged_cells(cached: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cached cells plus the cells of the last results file that are not cached here (bench/runs is not kept
    between machines; the committed results are): the grid grows over sittings."""
    old = RESULTS / "labels.json"
    if not old.is_file():
        return cached
    have = {(c["labels"], c["method"], c["seed"]) for c in cached}
    earlier = [c for c in json.loads(old.read_text()).get("cells", [])
               if (c["labels"], c["method"], c["seed"]) not in have]
    return earlier + cached


def summarise(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    extra = sorted({c["method"] for c in cells} - set(METHODS))  # ablations kept under their own name
    for labels in ("1", "10", "all"):
        for method in (*METHODS, *extra):
            got = [c for c in cells if c["labels"] == labels and c["method"] == method]
            if not got:
                continue
            row = {"labels": labels, "method": method, "seeds": sorted(c["seed"] for c in got),
                   "n_labelled": got[0]["n_labelled"], "n_unlabelled": got[0]["n_unlabelled"],
                   "train_minutes": round(float(np.mean([c["train_seconds"] for c in got])) / 60, 1)}
            for split in ("val", "confirm"):
                for k in ("macro_f1", "accuracy"):
                    v = [c[split][k] for c in got]
                    row[f"{split}_{k}"], row[f"{split}_{k}_sd"] = float(np.mean(v)), float(np.std(v))
                names = list(got[0][split]["f1"])
                row[f"{split}_f1"] = {n: float(np.mean([c[split]["f1"][n] for c in got])) for n in names}
            if all("teachers" in c for c in got):  # distill cells: their teachers' ensemble
                row["n_teachers"] = len(got[0].get("distill", {}).get("teachers", []))
                for split in ("val", "confirm"):
                    for k in ("macro_f1", "accuracy"):
                        row[f"teachers_{split}_{k}"] = float(np.mean([c["teachers"][split][k] for c in got]))
            rows.append(row)
    return rows


def write_results(cells: list[dict[str, Any]]) -> None:
    rows = summarise(cells)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "labels.json").write_text(json.dumps({"rows": rows, "cells": cells}, indent=2))
    lines = ["# Few labels: supervised vs + pretraining vs + FixMatch (bench/labels.py)", "",
             "Mean over the seeds listed (sd in brackets); no TTA; val = all of val_data, confirm = stratified 20 % "
             "of train_29 (seed 0), never used for any choice.", "",
             "| labels | method | seeds | labelled | unlabelled | val macro-F1 | val acc | confirm macro-F1 | "
             "confirm acc | train min |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['labels']} % | {r['method']} | {','.join(map(str, r['seeds']))} | {r['n_labelled']} | "
                     f"{r['n_unlabelled']} | {r['val_macro_f1']:.3f} ({r['val_macro_f1_sd']:.3f}) | "
                     f"{r['val_accuracy']:.3f} | {r['confirm_macro_f1']:.3f} ({r['confirm_macro_f1_sd']:.3f}) | "
                     f"{r['confirm_accuracy']:.3f} | {r['train_minutes']} |")
    for r in rows:
        if "teachers_val_macro_f1" in r:
            lines += ["", f"{r['labels']} % {r['method']}: the teachers' ensemble (mean probabilities of "
                          f"{r['n_teachers']} sup runs, no TTA) scores val macro-F1 "
                          f"{r['teachers_val_macro_f1']:.3f} / acc {r['teachers_val_accuracy']:.3f}, confirm "
                          f"{r['teachers_confirm_macro_f1']:.3f} / {r['teachers_confirm_accuracy']:.3f}; the "
                          "student has the default ffn's architecture and speed."]
    if rows:
        names = list(rows[0]["val_f1"])
        lines += ["", "F1 per class (val / confirm):", "",
                  "| labels | method | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        for r in rows:
            lines.append(f"| {r['labels']} % | {r['method']} | " + " | ".join(
                f"{r['val_f1'][n]:.2f} / {r['confirm_f1'][n]:.2f}" for n in names) + " |")
    (RESULTS / "labels.md").write_text("\n".join(lines) + "\n")
    plot_curve(rows, RESULTS / "labels_curve.png")


def plot_curve(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, split in zip(axes, ("val", "confirm")):
        for method in METHODS:
            pts = sorted((r["n_labelled"], r[f"{split}_macro_f1"]) for r in rows if r["method"] == method)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=method)
        ax.set_xscale("log")
        ax.set_xlabel("labelled training maps")
        ax.set_title(f"{split}: macro-F1")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("macro-F1 (mean of seeds)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    a = parse(argv)
    if not a.report_only:
        parts, confirm, val = load_splits(a.data_dir)
        for labels in a.labels:
            for method in a.methods:
                for seed in a.seeds:
                    run_cell(a, labels, method, seed, parts, confirm, val)
    cells = merged_cells([json.loads(p.read_text()) for p in sorted(RUNS.glob("*/cell.json"))])
    write_results(cells)
    print((RESULTS / "labels.md").read_text())


if __name__ == "__main__":
    main()
