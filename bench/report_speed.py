"""`adrcs report` on 1,000 wafers: wall time and HTML size (target: <= 60 s, < 20 MB).

The 590 shipped validation maps are repeated to 1,000 and given fake lots of 25 wafers (lot L01..L40, wafer
1..25) in an ``adrcs convert`` npz; a small model is trained on the shipped training sample (the default
``configs/wm811k_ffn.yaml`` network, a few epochs: enough for a realistic mix of patterns and confidences).
The report and `adrcs maps` are timed as the command line runs them (a fresh process: imports, model load,
reading, prediction, rendering, writing). Writes bench/results/report_speed.{json,md}.

    python bench/report_speed.py                     # trains bench/runs/report_speed_ffn first (~1 min)
    python bench/report_speed.py --model RUN --n 1000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "adrcs" / "samples"


def make_data(n: int, per_lot: int, out: Path) -> Path:
    """`n` maps of the shipped validation sample (repeated) with lots of `per_lot` wafers, as an adrcs npz."""
    from adrcs.data.loader import load
    from adrcs.data.writer import save_wafer_maps_npz

    ds = load(SAMPLES / "wm811k_sample_val.pkl.xz")
    order = np.random.default_rng(0).permutation(len(ds))
    ds = ds.subset(np.resize(order, n))
    ds.meta["lot"] = [f"L{i // per_lot + 1:02d}" for i in range(n)]
    ds.meta["wafer"] = [str(i % per_lot + 1) for i in range(n)]
    return save_wafer_maps_npz(ds, out)


def train_model(run: Path, epochs: int) -> Path:
    from adrcs.api import train
    from adrcs.config import load_config

    cfg = load_config(REPO / "configs" / "wm811k_ffn.yaml", {"epochs": epochs, "device": "cpu", "progress": False})
    train(cfg, [SAMPLES / "wm811k_sample.pkl.xz"], [SAMPLES / "wm811k_sample_val.pkl.xz"], run, say=lambda s: None)
    return run


def timed(argv: list[str]) -> tuple[float, str]:
    """Seconds of `adrcs ARGV` in a fresh process, and its output."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "adrcs.cli", *argv], capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    took = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"adrcs {' '.join(argv)} failed:\n{r.stdout}\n{r.stderr}")
    return took, r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="wafer-map run (default: train one, --epochs)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--per-lot", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    import torch

    run = a.model
    if run is None:
        run = REPO / "bench" / "runs" / "report_speed_ffn"
        if not (run / "model.ckpt").is_file():
            train_model(run, a.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_data(a.n, a.per_lot, tmp / "lots.npz")
        rec: dict = {"wafers": a.n, "lots": -(-a.n // a.per_lot), "model": run.name, "cpu_threads":
                     torch.get_num_threads(), "report_seconds": [], "report_tta_seconds": None, "maps_seconds": []}
        for _ in range(a.repeats):
            s, said = timed(["report", "--model", str(run), "--data", str(data), "--out", str(tmp / "report.html")])
            rec["report_seconds"].append(round(s, 2))
        rec["report_tta_seconds"] = round(timed(["report", "--model", str(run), "--data", str(data), "--out",
                                                 str(tmp / "tta.html"), "--tta"])[0], 2)
        for _ in range(a.repeats):
            rec["maps_seconds"].append(round(timed(["maps", "--data", str(data), "--out", str(tmp / "maps")])[0], 2))
        report = json.loads((tmp / "report.json").read_text())
        rec["html_mb"] = round((tmp / "report.html").stat().st_size / 1e6, 2)
        rec["json_kb"] = round((tmp / "report.json").stat().st_size / 1e3, 1)
        rec["flagged"] = report["flagged"]
        flagged = [w for lot in report["lots"] for w in lot["flagged_wafers"]]
        rec["flagged_low_confidence"] = sum(bool(w["low_confidence"]) for w in flagged)
        rec["flagged_rare_pattern"] = sum(bool(w["rare_pattern"]) for w in flagged)
        rec["maps_png_mb"] = round(sum(p.stat().st_size for p in (tmp / "maps").rglob("*.png")) / 1e6, 2)
        rec["report_output"] = said.strip().splitlines()[-1]
    out = REPO / "bench" / "results" / "report_speed"
    out.with_suffix(".json").write_text(json.dumps(rec, indent=2) + "\n")
    best = min(rec["report_seconds"])
    lines = [f"# `adrcs report` on {a.n} wafers ({rec['lots']} lots of {a.per_lot})", "",
             "| what | seconds (fresh process) | target |", "|---|---|---|",
             f"| `adrcs report` | {', '.join(map(str, rec['report_seconds']))} | <= 60 |",
             f"| `adrcs report --tta` | {rec['report_tta_seconds']} | |",
             f"| `adrcs maps` (1 PNG per wafer + {rec['lots']} stacked) | "
             f"{', '.join(map(str, rec['maps_seconds']))} | |", "",
             f"HTML {rec['html_mb']} MB (target < 20 MB), JSON {rec['json_kb']} kB; {rec['flagged']} wafers flagged "
             f"({rec['flagged_low_confidence']} by confidence < 0.7, {rec['flagged_rare_pattern']} by a pattern on under "
             f"10 % of its lot: the fake lots are random draws of a class-balanced sample, so many patterns are "
             f"rare in them); `adrcs maps` PNGs {rec['maps_png_mb']} MB. An untrained-like model (3 epochs, all 1,000 "
             f"wafers flagged, the flagged table at its longest) gave 1.75 MB.",
             "", f"Data: the 590 shipped validation maps repeated to {a.n} with fake lots; model "
             f"`{run.name}` (configs/wm811k_ffn.yaml, {a.epochs} epochs on the shipped training sample); CPU, "
             f"{rec['cpu_threads']} torch threads. Best report time {best} s. `python bench/report_speed.py`."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
