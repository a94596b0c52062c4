"""Does `adrcs suggest` pick better maps to label than chance? A pool-based active-learning simulation on WM-811K.

Start: the 1 % training split (train_1, 623 labelled maps). Pool: the maps of the other training splits (train_10,
train_20, train_29) with their labels hidden. Each round, a strategy picks `--per-round` maps of the pool, their
labels are revealed and added to the labelled set, and `configs/wm811k_ffn.yaml` is trained again from scratch.
`badge` picks go through the API exactly as a user's would: the pool left is written as an `adrcs convert` npz
without labels and `adrcs.api_suggest.suggest(run, pool.npz, ...)` ranks it with the latest model. `random`
draws with `adrcs.inference.suggest.random` (the same function as `--method random`; no model needed).

Training is shortened so the whole study fits on a CPU: `--epochs` epochs of `--epoch-size` maps each (drawn from
the labelled set, so every round trains the same number of steps), early stopping / best-epoch selection on a fixed
stratified `--select-maps` subset of the val maps, no calibration split; every trained model is then scored on all
val maps (macro-F1 and F1 per class).

    python bench/suggest.py                          # badge vs random, 5 rounds of +100, seed 0
    python bench/suggest.py --seeds 0 1 2            # 3 seeds
    python bench/suggest.py --pool-limit 2000 --epochs 2 --rounds 2 --tag _smoke   # minutes, a smoke test

Writes bench/results/suggest<tag>.{json,md} and suggest<tag>_curve.png (macro-F1 vs labelled maps). A finished
simulation (strategy, seed) is kept in bench/runs/suggest<tag>/<strategy>_seed<seed>/records.json and read back
instead of rerun, so seeds can be added in later sittings (same settings).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adrcs.api import train_sets
from adrcs.api_suggest import suggest
from adrcs.config import load_config
from adrcs.data import load_many
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.data.writer import save_wafer_maps_npz
from adrcs.inference import suggest as strategies
from adrcs.metrics.classification import report_for
from adrcs.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "wm811k"
POOL_SPLITS = ("train_10_split.pkl.xz", "train_20_split.pkl.xz", "train_29_split.pkl.xz")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=SHARED)
    ap.add_argument("--strategies", nargs="+", default=["badge", "random"], choices=list(strategies.METHODS))
    ap.add_argument("--rounds", type=int, default=5, help="labelling rounds (trainings: rounds + 1 per strategy)")
    ap.add_argument("--per-round", type=int, default=100, help="maps labelled per round")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="one simulation per seed (training and picks)")
    ap.add_argument("--epochs", type=int, default=4, help="training epochs per round (the config says 30)")
    ap.add_argument("--epoch-size", type=int, default=2048, help="maps drawn per training epoch")
    ap.add_argument("--batch-size", type=int, default=128, help="training batch (the config says 256)")
    ap.add_argument("--select-maps", type=int, default=2000, help="val maps for best-epoch selection (0: all)")
    ap.add_argument("--pool-limit", type=int, default=0, help="use a random part of the pool this large (0: all)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tag", default="")
    return ap.parse_args(argv)


def command(cfg: dict[str, Any]) -> str:
    """The command line that gives `cfg` (only the options that differ from the defaults)."""
    base = vars(parse([]))
    parts = ["python bench/suggest.py"]
    for k, v in cfg.items():
        if k in base and str(v) != str(base[k]):
            parts.append(f"--{k.replace('_', '-')} " + (" ".join(map(str, v)) if isinstance(v, list) else str(v)))
    return " ".join(parts)


def load_data(a: argparse.Namespace) -> tuple[WaferMapSet, WaferMapSet, WaferMapSet, dict[str, Any]]:
    """(start, pool, val): the pool without maps also in train_1 or val (by their row id in the source data)."""
    start = load_many([a.data_dir / "train_1_split.pkl.xz"]).labeled()
    val = load_many([a.data_dir / "val_data.pkl.xz"]).labeled().with_classes(start.class_names)
    pool = load_many([a.data_dir / f for f in POOL_SPLITS]).labeled().with_classes(start.class_names)
    ids = pool.meta["index"].astype(int).to_numpy()
    taken = set(start.meta["index"].astype(int)) | set(val.meta["index"].astype(int))
    keep = ~pd.Series(ids).duplicated().to_numpy() & np.array([i not in taken for i in ids])
    info = {"pool_read": len(pool), "pool_dropped_duplicates": int((~keep).sum())}
    pool = pool.subset(keep)
    if a.pool_limit and len(pool) > a.pool_limit:
        pool = pool.subset(np.sort(np.random.default_rng(0).choice(len(pool), a.pool_limit, replace=False)))
    return start, pool, val, info


def select_split(val: WaferMapSet, n: int) -> WaferMapSet:
    """A fixed stratified part of the val maps (every class kept) for best-epoch selection."""
    if not n or n >= len(val):
        return val
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(val)), train_size=n, random_state=0, stratify=val.labels)
    return val.subset(np.sort(idx))


def train_and_score(a: argparse.Namespace, labelled: WaferMapSet, select: WaferMapSet, val: WaferMapSet,
                    run: Path, seed: int) -> dict[str, Any]:
    """Train from scratch on `labelled`, then macro-F1 / per-class F1 on all val maps."""
    cfg = load_config(REPO / "configs" / "wm811k_ffn.yaml",
                      {"epochs": a.epochs, "epoch_size": a.epoch_size, "batch_size": a.batch_size, "device": a.device, "seed": seed,
                       "progress": False, "calibrate": False, "early_stopping_patience": 0})
    t = time.perf_counter()
    train_sets(cfg, labelled, select, run, say=lambda s: None)
    train_s = time.perf_counter() - t
    pipe = Pipeline.load(run)
    rep = report_for(val.labels, pipe.predict_proba(val), pipe.class_names, False)
    return {"macro_f1": rep["macro_f1"], "accuracy": rep["accuracy"],
            "f1": {c: rep["per_class"][c]["f1"] for c in rep["class_names"]}, "train_seconds": round(train_s, 1)}


def pick(a: argparse.Namespace, method: str, run: Path, rest: WaferMapSet, work: Path, seed: int,
         rnd: int) -> np.ndarray:
    """Rows of `rest` to label next: through `adrcs.api_suggest.suggest` (model-based) or a seeded draw."""
    if method == "random":
        return strategies.random(len(rest), a.per_round, seed=1000 * seed + rnd)[0]
    hidden = rest.subset(np.arange(len(rest)))
    hidden.labels = np.full(len(rest), -1, np.int64)
    pool_file = save_wafer_maps_npz(hidden, work / "pool.npz")
    table = suggest(run, pool_file, work / f"to_label_{rnd}.csv", n=a.per_round, method=method, seed=seed,
                    say=lambda s: None)
    return table["source_index"].astype(int).to_numpy()  # the npz's row numbers


def simulate(a: argparse.Namespace, method: str, seed: int, start: WaferMapSet, pool: WaferMapSet,
             select: WaferMapSet, val: WaferMapSet) -> list[dict[str, Any]]:
    """One strategy, one seed: rounds + 1 trainings; one record per training."""
    work = REPO / "bench" / "runs" / f"suggest{a.tag}" / f"{method}_seed{seed}"
    cache = work / "records.json"  # a finished simulation is kept: more seeds can be added later
    if cache.is_file():
        print(f"{method} seed {seed}: from {cache}", flush=True)
        return json.loads(cache.read_text())
    labelled, rest = start, pool
    out: list[dict[str, Any]] = []
    for rnd in range(a.rounds + 1):
        t = time.perf_counter()
        score = train_and_score(a, labelled, select, val, work / f"round{rnd}", seed)
        rec = {"strategy": method, "seed": seed, "round": rnd, "n_labelled": len(labelled), **score}
        if rnd < a.rounds:
            t_pick = time.perf_counter()
            rows = pick(a, method, work / f"round{rnd}", rest, work, seed, rnd)
            chosen = rest.subset(rows)
            rec["pick_seconds"] = round(time.perf_counter() - t_pick, 1)
            rec["picked_classes"] = {c: int(k) for c, k in zip(
                chosen.class_names, np.bincount(chosen.labels, minlength=len(chosen.class_names))) if k}
            labelled = WaferMapSet.concat([labelled, chosen])
            rest = rest.subset(np.setdiff1d(np.arange(len(rest)), rows))
        rec["round_seconds"] = round(time.perf_counter() - t, 1)
        print(f"{method} seed {seed} round {rnd}: {rec['n_labelled']} labelled, val macro-F1 "
              f"{rec['macro_f1']:.4f} ({rec['round_seconds']:.0f}s)"
              + (f"; picked {rec['picked_classes']}" if "picked_classes" in rec else ""), flush=True)
        out.append(rec)
    cache.write_text(json.dumps(out, indent=2))
    return out


def summary(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Mean (and spread over seeds) of macro-F1 per strategy and labelled-set size."""
    df = pd.DataFrame(records)
    g = df.groupby(["strategy", "n_labelled"])["macro_f1"]
    return pd.DataFrame({"mean": g.mean(), "min": g.min(), "max": g.max(), "seeds": g.count()}).reset_index()


def plot(records: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary(records)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method, part in s.groupby("strategy"):
        ax.plot(part["n_labelled"], part["mean"], marker="o", label=method)
        if (part["seeds"] > 1).any():
            ax.fill_between(part["n_labelled"], part["min"], part["max"], alpha=0.2)
    ax.set_xlabel("labelled training maps")
    ax.set_ylabel("val macro-F1 (all val maps)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(rec: dict[str, Any]) -> str:
    s, cfg = summary(rec["records"]), rec["settings"]
    names = rec["class_names"]
    lines = ["# Label suggestions: active-learning simulation (`python bench/suggest.py`)", "",
             f"Settings: start {rec['n_start']} labelled maps (train_1), pool {rec['n_pool']} maps (labels hidden"
             + (f"; a seeded random {cfg['pool_limit']} of the {rec['pool_read'] - rec['pool_dropped_duplicates']}"
                if cfg["pool_limit"] and rec["n_pool"] == cfg["pool_limit"] else "") + "), "
             f"{cfg['rounds']} rounds of +{cfg['per_round']}, strategies {', '.join(cfg['strategies'])}, seeds "
             f"{cfg['seeds']}; each round `ffn` (configs/wm811k_ffn.yaml) trained from scratch for {cfg['epochs']} "
             f"epochs of {cfg['epoch_size']} maps, batch {cfg['batch_size']} (the config: 30 epochs over the training set, "
             f"batch 256), best epoch on "
             f"{rec['n_select']} val maps, scored on all {rec['n_val']} val maps. Device {cfg['device']}; "
             f"{rec['wall_minutes']:.0f} min for this call (simulations finished before are read back from "
             "bench/runs/suggest*/).", "",
             f"Command: `{command(cfg)}`", "",
             "## Val macro-F1 by labelled maps (mean over seeds; min - max when several)", "",
             "| labelled | " + " | ".join(cfg["strategies"]) + " |", "|---|" + "---|" * len(cfg["strategies"])]
    for n in sorted(s["n_labelled"].unique()):
        cells = []
        for m in cfg["strategies"]:
            r = s[(s["strategy"] == m) & (s["n_labelled"] == n)]
            cells.append("" if r.empty else f"{r['mean'].iat[0]:.4f}" + (
                f" ({r['min'].iat[0]:.3f} - {r['max'].iat[0]:.3f})" if r["seeds"].iat[0] > 1 else ""))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    after = s[s["n_labelled"] > rec["n_start"]].groupby("strategy")["mean"].mean()
    lines.append("| mean over the rounds after the start | " + " | ".join(
        f"{after.get(m, float('nan')):.4f}" for m in cfg["strategies"]) + " |")
    if len(cfg["seeds"]) == 1:
        lines += ["", "One seed: with this shortened training, F1 moves by several points from one training to the "
                  "next (the curves are not monotone), so differences of that size are noise; `--seeds 0 1 2` "
                  "for a spread."]
    df = pd.DataFrame(rec["records"])
    last = df[df["round"] == df["round"].max()]
    lines += ["", f"## F1 per class after the last round ({int(last['n_labelled'].iat[0])} labelled; mean over seeds)",
              "", "| strategy | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for m in cfg["strategies"]:
        f1 = pd.DataFrame(list(last[last["strategy"] == m]["f1"])).mean()
        lines.append(f"| {m} | " + " | ".join(f"{f1[c]:.3f}" for c in names) + " |")
    lines += ["", "## True classes of the picked maps (all rounds and seeds)", "",
              "| strategy | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for m in cfg["strategies"]:
        counts = pd.DataFrame(list(df[(df["strategy"] == m) & df["picked_classes"].notna()]["picked_classes"])
                              ).sum() if "picked_classes" in df else pd.Series(dtype=float)
        lines.append(f"| {m} | " + " | ".join(str(int(counts.get(c, 0))) for c in names) + " |")
    lines += ["", "Plot: `suggest" + cfg["tag"] + "_curve.png`. `badge` picks go through `adrcs.api_suggest.suggest` "
              "(the pool left written as an unlabelled npz each round); `random` is a seeded uniform draw. Shortened "
              "training makes the absolute F1 lower than a full run; the comparison is between strategies at equal "
              "training budgets.", ""]
    return "\n".join(lines)


def main() -> None:
    a = parse()
    t0 = time.perf_counter()
    start, pool, val, info = load_data(a)
    select = select_split(val, a.select_maps)
    print(f"start {len(start)} labelled, pool {len(pool)}, val {len(val)} (select {len(select)})", flush=True)
    records: list[dict[str, Any]] = []
    for seed in a.seeds:
        for method in a.strategies:
            records += simulate(a, method, seed, start, pool, select, val)
    rec = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
           "n_start": len(start), "n_pool": len(pool), "n_val": len(val), "n_select": len(select), **info,
           "class_names": start.class_names, "wall_minutes": (time.perf_counter() - t0) / 60, "records": records}
    res = REPO / "bench" / "results"
    (res / f"suggest{a.tag}.json").write_text(json.dumps(rec, indent=2))
    (res / f"suggest{a.tag}.md").write_text(markdown(rec))
    plot(records, res / f"suggest{a.tag}_curve.png",
         f"WM-811K: {', '.join(a.strategies)}; +{a.per_round}/round, {a.epochs}x{a.epoch_size} maps, seeds {a.seeds}")
    print(markdown(rec))


if __name__ == "__main__":
    main()
