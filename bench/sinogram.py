"""The sinogram paper's studies on WM-811K (issue 5), each writing bench/results/sinogram_<study>.json + .md.

Studies (pick with --studies; all run by default, cheapest first):
  standard     configs/wm811k_sinogram.yaml on the standard train splits -> val (9 classes), beside the
               `ffn` of bench/wm811k.py (bench/results/wm811k_ffn.json)
  ablation     with/without SBAE x with/without ERD on the 26x26 set (60:20:20): pool size, accuracy, macro-F1
  selectors    ERD vs RD / GA / PSO / GWO / SCA / EO on the 26x26 set: selected features, KNN fitness,
               search time, 1DCNN test accuracy / macro-F1, convergence plot
  classifiers  the five 1-D nets on the ERD features of the 26x26 set (cached features): params, accuracy, F1
  resolution   per native size with >= 1,500 maps, and All resized to 26x26, 60:20:20, balanced after the
               split (honest) and before it (the paper's order); see sinogram_splits.py
  protocols    train:val:test 60:20:20, 36:15:49, 23:15:62 and the 8-class variant on All, both orders
  tsne         t-SNE of raw one-hot maps vs SBAE codes (26x26 set, test part)

The per-resolution sets and protocols pool the shared train splits and val (the only labelled data
here) and split them stratified with a fixed seed; SBAE and the feature search are fitted on the
train part only, balancing too except under --orders before (the paper's leaky order, kept to show
what it does to the numbers). Confusion matrices and classification reports of every run's test
part go to bench/runs/sinogram/<run>/test_plots and the JSON.

    python bench/sinogram.py [--studies standard ablation ...] [--epochs N] [--sbae-steps N] [--reuse]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine, write_result  # noqa: E402
from sinogram_splits import (ORDERS, PROTOCOLS, big_sizes, ensure_synthesizer, leaky_split,  # noqa: E402
                             per_class_f1, real_only, size_counts, size_set, split3, without_class)

from adrcs.api import train_sets  # noqa: E402
from adrcs.config import load_config  # noqa: E402
from adrcs.data import load_many  # noqa: E402
from adrcs.data.wafer_map_set import WaferMapSet  # noqa: E402
from adrcs.metrics.classification import report_for  # noqa: E402
from adrcs.pipeline import Pipeline  # noqa: E402
from adrcs.report.tables import markdown_table  # noqa: E402

RUNS = REPO / "bench" / "runs" / "sinogram"
RESULTS = REPO / "bench" / "results"
SELECTORS = ["erd", "rd", "ga", "pso", "gwo", "sca", "eo"]
NETS = ["cnn1d", "vgg16_1d", "resnet50_1d", "lenet5_1d", "inception1d"]
SET26 = "26x26-60:20:20"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Skipped(Exception):
    """A run without a saved record under --tables-only (left out of the tables)."""


def base_overrides(args: argparse.Namespace, input_size: int) -> dict[str, Any]:
    o: dict[str, Any] = {"input_size": input_size, "progress": False, "device": args.device}
    if args.epochs:
        o["epochs"] = args.epochs
    return o


def synthesizer_for(split_key: str, cfg: dict[str, Any], train: WaferMapSet) -> str:
    """Fit the balancing synthesizer once per training split (on that split only) and reuse it."""
    return str(ensure_synthesizer(RUNS / f"synth_{split_key.replace(':', '-')}_{cfg['balance']}", cfg, train, log))


def run(name: str, args: argparse.Namespace, overrides: dict[str, Any], train: WaferMapSet, val: WaferMapSet,
        test: WaferMapSet | None, split_key: str = "") -> dict[str, Any]:
    """Train the pipeline as configured (+ overrides) and measure it on val and test (or, with --reuse,
    return the record a previous run left in its folder)."""
    record_path = RUNS / name / "record.json"
    if (args.reuse or args.tables_only) and record_path.is_file():
        log(f"{name}: reusing {record_path}")
        return json.loads(record_path.read_text())
    if args.tables_only:
        raise Skipped(name)
    cfg = load_config(REPO / "configs" / "wm811k_sinogram.yaml", overrides)
    if args.sbae_steps:
        cfg["sbae_args"] = {**cfg["sbae_args"], "steps": args.sbae_steps}
    if split_key and cfg["balance"] in ("cae", "gan") and not cfg["synth_model"]:
        cfg["synth_model"] = synthesizer_for(split_key, cfg, train)
    run_dir = RUNS / name
    t0 = time.time()
    log(f"{name}: {cfg['model']} encoder={cfg['encoder']} selector={cfg['selector']} on {len(train)} maps "
        f"({len(train.class_names)} classes, {cfg['input_size']}px)")
    val_report = train_sets(cfg, train, val, run_dir, say=lambda m: None)
    wall = time.time() - t0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    pipe = Pipeline.load(run_dir)
    rec: dict[str, Any] = {
        "run": name, "model": cfg["model"], "encoder": cfg["encoder"], "selector": cfg["selector"],
        "input_size": cfg["input_size"], "classes": list(train.class_names), "n_train": len(train), "n_val": len(val),
        "params": int(sum(p.numel() for p in pipe.net.parameters())), "features": metrics.get("features"),
        "val_accuracy": val_report["accuracy"], "val_macro_f1": val_report["macro_f1"],
        "train_seconds": round(metrics["train_seconds"], 1), "wall_seconds": round(wall, 1), "val_report": val_report,
    }
    if test is not None:
        from adrcs.report.plots import write_report_plots

        probs = pipe.predict_proba(test)
        rep = report_for(test.labels, probs, pipe.class_names, False)
        write_report_plots(rep, test.labels, probs, run_dir / "test_plots")
        rec.update(n_test=len(test), test_accuracy=rep["accuracy"], test_macro_f1=rep["macro_f1"], test_report=rep)
        real = real_only(test)
        if real is not None:  # balanced before the split: the test part holds synthetic maps too
            rr = report_for(real.labels, pipe.predict_proba(real), pipe.class_names, False)
            rec.update(n_test_real=len(real), test_real_accuracy=rr["accuracy"], test_real_macro_f1=rr["macro_f1"],
                       test_real_report=rr)
    record_path.write_text(json.dumps(rec, indent=2))
    f = rec["features"] or {}
    log(f"{name}: val acc {rec['val_accuracy']:.4f} F1 {rec['val_macro_f1']:.4f}"
        + (f", test acc {rec['test_accuracy']:.4f} F1 {rec['test_macro_f1']:.4f}" if test is not None else "")
        + f"; {f.get('selected')}/{f.get('pool_size')} features; {wall:.0f}s")
    return rec


def row(rec: dict[str, Any], **first: Any) -> dict[str, Any]:
    f = rec.get("features") or {}
    out = dict(first)
    out.update({"pool": f.get("pool_size"), "selected": f.get("selected"),
                "selected %": None if not f else round(100 * f["selected"] / f["pool_size"], 2)})
    for part in ("val", "test", "test_real"):
        if f"{part}_accuracy" in rec:
            out[f"{part.replace('_', ' ')} acc"] = round(rec[f"{part}_accuracy"], 4)
            out[f"{part.replace('_', ' ')} macro-F1"] = round(rec[f"{part}_macro_f1"], 4)
    out["search s"] = f.get("search_seconds")
    out["train s"] = rec["train_seconds"]
    return out


def save(study: str, records: list[dict[str, Any]], rows: list[dict[str, Any]], note: str = "",
         extra_md: str = "") -> None:
    write_result(f"sinogram_{study}", {"study": study, "machine": machine(), "records": records, "note": note})
    cols = list(dict.fromkeys(k for r in rows for k in r))
    md = (markdown_table(rows, cols) if rows else "(no rows)") + extra_md
    (RESULTS / f"sinogram_{study}.md").write_text((note + "\n\n" if note else "") + md + "\n")
    print(md, flush=True)


def set_26(pool: WaferMapSet):
    ds, size = size_set(pool, "26x26")
    return split3(ds, PROTOCOLS["60:20:20"]), size


# -- studies ------------------------------------------------------------------------------------------
def study_standard(args, train_std, val_std, pool) -> None:
    size = int(load_config(REPO / "configs" / "wm811k_sinogram.yaml")["input_size"])
    rec = run("standard", args, base_overrides(args, size), train_std, val_std, None, split_key="standard")
    ffn_path = RESULTS / "wm811k_ffn.json"
    rows = [row(rec, pipeline=f"sinogram (SBAE + Radon + ERD + 1DCNN, {size}px)")]
    note = "Standard WM-811K train splits -> val (9 classes)."
    if ffn_path.is_file():
        ffn = json.loads(ffn_path.read_text())
        rows.append({"pipeline": f"ffn ({ffn['input_size']}px, bench/wm811k.py)", "pool": None, "selected": None,
                     "selected %": None, "val acc": round(ffn["report"]["accuracy"], 4),
                     "val macro-F1": round(ffn["report"]["macro_f1"], 4), "search s": None,
                     "train s": ffn["train_seconds"]})
        better = "ffn" if ffn["report"]["macro_f1"] > rec["val_macro_f1"] else "the sinogram pipeline"
        note += f" Better on val macro-F1: {better}."
    save("standard", [rec], rows, note)


def study_ablation(args, train_std, val_std, pool) -> None:
    (tr, va, te), size = set_26(pool)
    records, rows = [], []
    for enc in ("none", "sbae"):
        for sel in ("none", "erd"):
            rec = run(f"ablation_{enc}_{sel}", args, {**base_overrides(args, size), "encoder": enc, "selector": sel},
                      tr, va, te, split_key=SET26)
            records.append(rec)
            rows.append(row(rec, SBAE="yes" if enc == "sbae" else "no", ERD="yes" if sel == "erd" else "no"))
    full = next(r for r in records if r["encoder"] == "sbae" and r["selector"] == "none")
    erd = next(r for r in records if r["encoder"] == "sbae" and r["selector"] == "erd")
    gap = 100 * (full["test_accuracy"] - erd["test_accuracy"])
    share = 100 * erd["features"]["selected"] / erd["features"]["pool_size"]
    note = (f"26x26 set, 60:20:20. SBAE+ERD keeps {share:.2f} % of the pool; test accuracy {gap:+.2f} points below "
            f"SBAE with all features (target: <= 5 % of features within 1.5 points).")
    save("ablation", records, rows, note)


def study_selectors(args, train_std, val_std, pool) -> None:
    from adrcs.report.selection import plot_convergence

    (tr, va, te), size = set_26(pool)
    records, rows, hist = [], [], {}
    for sel in args.selectors:
        rec = run(f"selector_{sel}", args, {**base_overrides(args, size), "selector": sel}, tr, va, te, split_key=SET26)
        records.append(rec)
        f = rec["features"]
        sel_json = json.loads((RUNS / f"selector_{sel}" / "features" / "selection.json").read_text())
        hist[sel] = sel_json["history"]
        rows.append({"selector": sel, **{k: v for k, v in row(rec).items()},
                     "fitness": round(f["fitness"], 4)})
    plot_convergence(hist, RESULTS / "sinogram_selectors_convergence.png",
                     title="Feature search on the 26x26 set: best fitness per iteration")
    save("selectors", records, rows, "26x26 set, 60:20:20; same SBAE (cached), population and iterations for all.")


def study_classifiers(args, train_std, val_std, pool) -> None:
    (tr, va, te), size = set_26(pool)
    records, rows = [], []
    for net in args.nets:
        rec = run(f"net_{net}", args, {**base_overrides(args, size), "model": net}, tr, va, te, split_key=SET26)
        records.append(rec)
        rows.append({"classifier": net, "params": rec["params"], **{k: v for k, v in row(rec).items()
                                                                   if k not in ("pool", "search s")}})
    save("classifiers", records, rows, "26x26 set, 60:20:20; the same ERD-selected features (cached) for every net.")


def run_order(name: str, order: str, args, ds: WaferMapSet, size: int, ratios: tuple[float, float, float],
              set_key: str, split_key: str) -> dict[str, Any]:
    """One set under one balancing order (see sinogram_splits): `after` balances the training part
    only; `before` balances the whole set (synthesizer fitted on all of it), then splits."""
    o = base_overrides(args, size)
    if order == "after":
        tr, va, te = split3(ds, ratios)
        return {**run(f"{name}_after", args, o, tr, va, te, split_key=split_key), "order": order}
    record_path = RUNS / f"{name}_before" / "record.json"
    if (args.reuse or args.tables_only) and record_path.is_file():
        return {**json.loads(record_path.read_text()), "order": order}
    if args.tables_only:
        raise Skipped(f"{name}_before")
    cfg = load_config(REPO / "configs" / "wm811k_sinogram.yaml", o)
    synth_dir = RUNS / f"synth_{set_key}_whole_{cfg['balance']}"
    tr, va, te = leaky_split(ds, ratios, cfg, synth_dir, log)
    return {**run(f"{name}_before", args, {**o, "balance": "none"}, tr, va, te), "order": order}


def per_class_md(records: list[dict[str, Any]], label: str) -> str:
    """A table of per-class test F1 (real test maps where the part holds synthetic ones)."""
    if not records:
        return ""
    rows = []
    for r in records:
        rep = r.get("test_real_report") or r["test_report"]
        rows.append({label: r["label"], "order": r["order"], **per_class_f1(rep)})
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return "\n\nPer-class test F1 (real test maps only):\n\n" + markdown_table(rows, cols)


ORDER_NOTE = ("order `after`: CAE balancing fitted on the training part only (honest); `before`: the paper's order, "
              "the CAE is fitted on the whole set and the whole set balanced before the split, so synthetic "
              "near-copies of val/test maps are in training and val/test hold synthetic maps (`test` columns: the "
              "whole test part as the paper measures; `test real`: its real maps only).")


def study_resolution(args, train_std, val_std, pool) -> None:
    counts = size_counts(pool)
    sizes = args.sizes or big_sizes(pool) + ["All"]
    records, rows = [], []
    for name in sizes:
        ds, size = size_set(pool, name)
        if len(ds.class_names) < 2:
            log(f"resolution {name}: {len(ds)} maps of one class ({ds.class_names}), skipped")
            continue
        for order in args.orders:
            try:
                rec = run_order(f"set_{name}_60-20-20", order, args, ds, size, PROTOCOLS["60:20:20"], name,
                                f"{name}-60:20:20")
            except Skipped as e:
                log(f"{e}: not run yet, left out")
                continue
            rec["label"] = name
            records.append(rec)
            rows.append(row(rec, set=name, order=order, maps=len(ds), classes=len(ds.class_names), input=size))
    top = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:8])
    note = (f"Per native map size with >= 1,500 labelled maps, and All (every size resized to 26x26); shared train "
            f"+ val pooled ({len(pool)} maps: {top}, ...), 60:20:20 stratified, seed 0. The paper's Table 5 sets "
            f"(> 8,000 maps each) cannot be rebuilt from this data. " + ORDER_NOTE)
    save("resolution", records, rows, note, per_class_md(records, "set"))


def study_protocols(args, train_std, val_std, pool) -> None:
    ds, size = size_set(pool, "All")
    records, rows = [], []
    variants = [(p, ds, p) for p in args.protocols] + [("8-class 60:20:20", without_class(ds, "none"), "60:20:20")]
    for label, data, proto in variants:
        key = "All8" if label.startswith("8-class") else "All"
        for order in args.orders:
            try:
                rec = run_order(f"set_{key}_{proto.replace(':', '-')}", order, args, data, size, PROTOCOLS[proto],
                                key, f"{key}-{proto}")
            except Skipped as e:
                log(f"{e}: not run yet, left out")
                continue
            rec["label"] = label
            records.append(rec)
            rows.append(row(rec, protocol=label, order=order, classes=len(data.class_names), train=rec["n_train"],
                            val=rec["n_val"], test=rec["n_test"]))
    note = ("All maps (train + val pooled) resized to 26x26, train:val:test protocols, and the 8-class variant "
            "(without `none`). " + ORDER_NOTE)
    save("protocols", records, rows, note, per_class_md(records, "protocol"))


def study_tsne(args, train_std, val_std, pool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    from adrcs.transforms.one_hot import one_hot_maps
    from adrcs.transforms.resize import resize_stack

    (tr, va, te), size = set_26(pool)
    run_dir = RUNS / "ablation_sbae_none"
    if not (run_dir / "model.ckpt").is_file():
        run("ablation_sbae_none", args, {**base_overrides(args, size), "selector": "none"}, tr, va, te, split_key=SET26)
    feats = Pipeline.load(run_dir).features
    maps = resize_stack(te.maps, size)
    import torch

    raw = one_hot_maps(torch.from_numpy(maps)).flatten(1).numpy()
    codes = feats.sbae_.transform(maps).reshape(len(maps), -1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    out = {}
    for ax, (title, x) in zip(axes, [("raw one-hot maps", raw), ("SBAE codes", codes)]):
        emb = TSNE(n_components=2, random_state=0, init="pca", perplexity=30).fit_transform(x)
        for i, c in enumerate(te.class_names):
            m = te.labels == i
            ax.scatter(emb[m, 0], emb[m, 1], s=4, label=c)
        ax.set_title(f"t-SNE of {title} ({x.shape[1]} dims)")
        from sklearn.metrics import silhouette_score

        out[title] = round(float(silhouette_score(emb, te.labels)), 4)
    axes[1].legend(markerscale=3, fontsize=8)
    path = RESULTS / "sinogram_tsne.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    log(f"t-SNE -> {path}; silhouette of the 2-D embedding by class: {out}")
    save("tsne", [{"silhouette_2d": out, "n": len(te)}],
         [{"input": k, "silhouette (2-D t-SNE, by class)": v} for k, v in out.items()], f"Plot: {path.name}")


STUDIES = {"standard": study_standard, "ablation": study_ablation, "selectors": study_selectors,
           "classifiers": study_classifiers, "tsne": study_tsne, "resolution": study_resolution,
           "protocols": study_protocols}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "wm811k")
    ap.add_argument("--studies", nargs="+", default=list(STUDIES), choices=list(STUDIES))
    ap.add_argument("--selectors", nargs="+", default=SELECTORS)
    ap.add_argument("--nets", nargs="+", default=NETS)
    ap.add_argument("--sizes", nargs="+", default=None, help="native sizes (e.g. 25x27) or All; default: every "
                    "size with >= 1,500 maps, and All")
    ap.add_argument("--orders", nargs="+", default=list(ORDERS), choices=list(ORDERS),
                    help="balancing after the split (honest) and/or before it (the paper's order)")
    ap.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    ap.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    ap.add_argument("--sbae-steps", type=int, default=None, help="override the config's SBAE steps")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reuse", action="store_true", help="reuse runs that left bench/runs/sinogram/<run>/record.json")
    ap.add_argument("--tables-only", action="store_true",
                    help="write the tables from saved records only (runs without one are left out, nothing trains)")
    args = ap.parse_args()
    train_paths = sorted(args.data_dir.glob("train_*_split.pkl.xz"))
    val_path = args.data_dir / "val_data.pkl.xz"
    if not train_paths or not val_path.is_file():
        sys.exit(f"no WM-811K train/val files in {args.data_dir}")
    train_std = load_many(train_paths).labeled()
    val_std = load_many([val_path]).labeled().with_classes(train_std.class_names)
    pool = WaferMapSet.concat([train_std, val_std])
    log(f"train {len(train_std)}, val {len(val_std)}, pooled {len(pool)} maps")
    for s in args.studies:
        t0 = time.time()
        STUDIES[s](args, train_std, val_std, pool)
        log(f"study {s} done in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
