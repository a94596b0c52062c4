"""Label-efficiency benchmark for generative balancing (issue 4).

For each WM-811K training split (1 %, 10 %, all), fit the CAE and the GAN synthesizer on that
split only, then train `ffn` (configs/wm811k_ffn.yaml) with balance = none / oversample / cae /
gan (same seed, same number of optimizer steps: `epoch_size` is fixed per split) and report val
macro-F1, per-class F1 of the rare classes and generator training time. Then evaluate each
synthesizer's samples (FD / KID vs the real val maps, in the feature space of the classifier
trained on all real training maps by bench/wm811k.py, or else of the `none` classifier of the
largest split run here; classifier accuracy; memorisation).

    python bench/synth.py [--splits 1 10 all] [--modes none oversample cae gan] [--epochs 30]

Writes bench/results/synth_<split>.json, synth_quality_<split>.json and synth.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine, write_result  # noqa: E402

from adrcs.api import train  # noqa: E402
from adrcs.config import load_config  # noqa: E402
from adrcs.data import load_many  # noqa: E402
from adrcs.pipeline import Pipeline  # noqa: E402
from adrcs.synth import create_synthesizer, load_synthesizer  # noqa: E402
from adrcs.synth.balance import auto_target, maps_to_add  # noqa: E402
from adrcs.synth.evaluate import evaluate_synthesizer, write_evaluation  # noqa: E402

RARE = ["Donut", "Near-full", "Random", "Scratch"]
SPLIT_FILES = {"1": ["train_1_split.pkl.xz"], "10": ["train_10_split.pkl.xz"], "20": ["train_20_split.pkl.xz"],
               "all": ["train_1_split.pkl.xz", "train_10_split.pkl.xz", "train_20_split.pkl.xz",
                       "train_29_split.pkl.xz"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "wm811k")
    ap.add_argument("--splits", nargs="+", default=["1", "10", "all"], choices=list(SPLIT_FILES))
    ap.add_argument("--modes", nargs="+", default=["none", "oversample", "cae", "gan", "cae+filter", "gan+filter"],
                    help="balance modes; `X+filter` keeps only synthetic maps that the split's `none` "
                         "classifier (trained on the same real training maps) assigns to their class")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the runs and fitted synthesizers already in bench/results/synth_<split>.json")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--gan-iterations", type=int, default=None, help="default: the synthesizer's")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n-quality", type=int, default=500, help="synthetic maps per class for FD/KID")
    ap.add_argument("--feature-classifier", type=Path, default=REPO / "bench" / "runs" / "wm811k_ffn",
                    help="run folder of a classifier trained on real training maps only (bench/wm811k.py "
                         "writes it); default when missing: the `none` run of the largest split here")
    ap.add_argument("--no-quality", action="store_true", help="skip the synthetic-map quality evaluation")
    args = ap.parse_args()
    val_paths = [args.data_dir / "val_data.pkl.xz"]
    runs = REPO / "bench" / "runs" / "synth"
    feature_clf = None
    results = {}
    for split in args.splits:
        train_paths = [args.data_dir / f for f in SPLIT_FILES[split]]
        train_set = load_many(train_paths).labeled()
        counts = np.bincount(train_set.labels, minlength=len(train_set.class_names))
        target = auto_target(counts)
        n_balanced = int(len(train_set) + maps_to_add(counts, target).sum())
        epoch_size = max(4096, n_balanced)
        rec = {"split": split, "train_files": SPLIT_FILES[split], "n_train": len(train_set), "target": target,
               "epoch_size": epoch_size, "epochs": args.epochs, "class_counts": dict(zip(train_set.class_names,
                                                                                          counts.tolist())),
               "machine": machine(), "synthesizers": {}, "runs": {}}
        old = REPO / "bench" / "results" / f"synth_{split}.json"
        if args.reuse and old.is_file():
            prev = json.loads(old.read_text())
            rec["synthesizers"], rec["runs"] = prev["synthesizers"], prev["runs"]
        print(f"== split {split}: {len(train_set)} maps, target {target}/class, epoch_size {epoch_size}", flush=True)
        for method in [m for m in ("cae", "gan") if any(x.split("+")[0] == m for x in args.modes)]:
            syn_dir = runs / f"split{split}" / f"synth_{method}"
            if method in rec["synthesizers"] and (syn_dir / "synthesizer.pt").is_file():
                continue  # --reuse
            extra = {"iterations": args.gan_iterations} if method == "gan" and args.gan_iterations else {}
            t = time.perf_counter()
            syn = create_synthesizer(method, seed=0, device=args.device, **extra)
            syn.fit(train_set, progress=False)
            syn.save(syn_dir)
            rec["synthesizers"][method] = {"dir": str(syn_dir), "fit_seconds": round(time.perf_counter() - t, 1),
                                           "size": syn.size, "args": syn.args}
            print(f"{method}: fitted in {time.perf_counter() - t:.0f}s", flush=True)
        for mode in args.modes:
            if mode in rec["runs"]:
                continue  # --reuse
            run_dir = runs / f"split{split}" / f"ffn_{mode.replace('+', '_')}"
            balance = mode.split("+")[0]
            over = {"balance": balance, "epochs": args.epochs, "epoch_size": epoch_size, "device": args.device,
                    "seed": 0, "balance_target": target, "progress": False}
            if balance in ("cae", "gan"):
                over["synth_model"] = rec["synthesizers"][balance]["dir"]
            if mode.endswith("+filter"):
                over["synth_filter"] = str(runs / f"split{split}" / "ffn_none")
            cfg = load_config(REPO / "configs" / "wm811k_ffn.yaml", over)
            t = time.perf_counter()
            report = train(cfg, train_paths, val_paths, run_dir)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            pc = report["per_class"]
            rec["runs"][mode] = {
                "val_accuracy": report["accuracy"], "val_macro_f1": report["macro_f1"],
                "rare_f1": {c: pc[c]["f1"] for c in RARE}, "rare_mean_f1": float(np.mean([pc[c]["f1"] for c in RARE])),
                "per_class_f1": {c: pc[c]["f1"] for c in report["class_names"]},
                "train_seconds": round(metrics["train_seconds"], 1), "wall_seconds": round(time.perf_counter() - t, 1),
                "n_train": metrics["n_train"], "best_epoch": metrics["best_epoch"], "run_dir": str(run_dir),
                "filter_accept_rate": metrics.get("balance", {}).get("filter_accept_rate")}
            print(f"split {split} balance={mode}: macro-F1 {report['macro_f1']:.4f} rare F1 "
                  f"{rec['runs'][mode]['rare_mean_f1']:.4f}", flush=True)
        if "none" in rec["runs"]:
            feature_clf = Path(rec["runs"]["none"]["run_dir"])  # the last (largest) split's real-data classifier
        results[split] = rec
        print(f"wrote {write_result(f'synth_{split}', rec)}", flush=True)

    if (args.feature_classifier / "model.ckpt").is_file():
        feature_clf = args.feature_classifier
    if feature_clf is not None and not args.no_quality:
        pipe = Pipeline.load(feature_clf)
        val = load_many(val_paths).labeled()
        for split in args.splits:
            for method, info in results[split]["synthesizers"].items():
                syn = load_synthesizer(info["dir"], device=args.device)
                report, real_maps, synth_maps = evaluate_synthesizer(syn, pipe, val, n=args.n_quality, say=lambda m: None)
                report.update(classifier=str(feature_clf), split=split)
                path, _ = write_evaluation(report, real_maps, synth_maps,
                                           REPO / "bench" / "results" / f"synth_quality_{split}_{method}.json")
                info["quality"] = {c: {k: r.get(k) for k in ("fd", "fd_oversample", "kid", "kid_oversample",
                                                             "classifier_accuracy", "memorised_share")}
                                   for c, r in report["classes"].items()}
                print(f"wrote {path}", flush=True)
            write_result(f"synth_{split}", results[split])
    # the table covers every split benchmarked so far (runs of this script with other --splits too)
    for split in SPLIT_FILES:
        f = REPO / "bench" / "results" / f"synth_{split}.json"
        if split not in results and f.is_file():
            results[split] = json.loads(f.read_text())
    results = {k: results[k] for k in SPLIT_FILES if k in results}
    md = markdown(results)
    (REPO / "bench" / "results" / "synth.md").write_text(md)
    print(md)


def markdown(results: dict) -> str:
    from adrcs.report.tables import markdown_table

    rows, qrows = [], []
    for split, rec in results.items():
        for mode, r in rec["runs"].items():
            fit = rec["synthesizers"].get(mode, {}).get("fit_seconds")
            rows.append({"split": f"{split}% ({rec['n_train']})" if split != "all" else f"all ({rec['n_train']})",
                         "balance": mode, "epochs": rec["epochs"], "val_macro_f1": r["val_macro_f1"], "val_acc": r["val_accuracy"],
                         "rare_mean_f1": r["rare_mean_f1"], **{f"F1 {c}": r["rare_f1"][c] for c in RARE},
                         "generator_fit_min": None if fit is None else fit / 60, "train_min": r["train_seconds"] / 60})
        for method, info in rec["synthesizers"].items():
            for c, q in info.get("quality", {}).items():
                qrows.append({"split": split, "method": method, "class": c, "FD": q["fd"],
                              "FD oversample": q["fd_oversample"], "KID": q["kid"], "KID oversample": q["kid_oversample"],
                              "clf acc on synthetic": q["classifier_accuracy"], "memorised": q["memorised_share"]})
    out = "## Balancing: val macro-F1 and rare-class F1\n\n" + markdown_table(rows, list(rows[0]) if rows else [])
    if qrows:
        out += "\n\n## Synthetic-map quality (vs real val maps)\n\n" + markdown_table(qrows, list(qrows[0]))
    return out + "\n"


if __name__ == "__main__":
    main()
