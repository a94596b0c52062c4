"""Train every shipped config for 2 epochs with this tree and with an older source tree; compare metrics.

The redesign of issue 16 must not change results: with the same seed, each config's validation metrics
must agree within 0.002. Data: the shipped samples (wafer maps), 24 DeepPCB pairs from ../shared (when
present), tiny synthetic box / class-folder sets from tests/helpers (voc_detect trains on the box list). Synthesizer configs train for a few
steps and compare their last logged losses.

    git worktree add /tmp/old 264f045
    python scripts/compare_with_commit.py --old-src /tmp/old/src --out bench/results/issue16_compat.md
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "adrcs" / "samples"
TOL = 0.002


def _data(tmp: Path) -> dict[str, list[str]]:
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.images import make_deeppcb, write_class_folders

    wm = ["--train", str(SAMPLES / "wm811k_sample.pkl.xz"), "--val", str(SAMPLES / "wm811k_sample_val.pkl.xz")]
    mixed = ["--train", str(SAMPLES / "mixedwm38_sample.pkl.xz"), "--val", str(SAMPLES / "mixedwm38_sample_val.pkl.xz")]
    args = {"wm811k_ffn": wm, "wm811k_cnn": wm, "mixedwm38_ffn": mixed,
            "wm811k_sinogram": wm + ["--sbae-args", "{channels: 8, hidden: 32, steps: 40, batch_size: 64}",
                                     "--selector-args", "{population: 6, iterations: 4}", "--select-samples", "300"],
            "synth_cae": ["--train", str(SAMPLES / "wm811k_sample.pkl.xz"), "--steps", "20"],
            "synth_gan": ["--train", str(SAMPLES / "wm811k_sample.pkl.xz"), "--iterations", "10"]}
    shared = REPO.parent / "shared" / "data" / "deeppcb"
    if (shared / "trainval.txt").is_file():
        lst = tmp / "deeppcb" / "trainval.txt"
        lst.parent.mkdir()
        for g in shared.iterdir():
            if g.is_dir():
                os.symlink(g, lst.parent / g.name)
        lst.write_text("".join((shared / "trainval.txt").read_text().splitlines(keepends=True)[:24]))
        args["deeppcb_detect"] = ["--data", str(lst)]
    args["voc_detect"] = ["--data", str(make_deeppcb(tmp / "boxes", n=8)), "--input-size", "128"]
    args["images_classify"] = ["--data", str(write_class_folders(tmp / "cls", per_class=8, templates=True)),
                               "--input-size", "64"]
    return args


def _run(src: Path | None, config: str, extra: list[str], out: Path) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if src is not None:
        env["PYTHONPATH"] = str(src)
    synth = config.startswith("synth_")
    verb = ["synth", "fit"] if synth else ["train", "--epochs", "2", "--device", "cpu"]
    cmd = [sys.executable, "-m", "adrcs.cli", *verb, "--config", str(REPO / "configs" / f"{config}.yaml"),
           "--out", str(out), *extra]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out.parent)
    if res.returncode != 0:
        return {"error": (res.stderr or res.stdout).strip().splitlines()[-1][:200]}
    if synth:
        import pandas as pd

        hist = pd.read_csv(out / "history.csv")
        return {k: float(v) for k, v in hist.iloc[-1].items() if isinstance(v, (int, float))}
    val = json.loads((out / "metrics.json").read_text())["val"]
    keys = ("accuracy", "macro_f1", "exact_match", "map_50", "map_50_95", "f1")
    got = {k: float(val[k]) for k in keys if isinstance(val.get(k), (int, float))}
    history = out / "logs" / "metrics.csv"
    if history.is_file():  # the last logged losses: a finer check than metrics that may be 0 after 2 epochs
        import pandas as pd

        df = pd.read_csv(history)
        for col in ("train_loss", "val_loss"):
            if col in df and df[col].notna().any():
                got[f"last_{col}"] = float(df[col].dropna().iloc[-1])
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-src", type=Path, required=True, help="src/ folder of the older tree (e.g. 264f045)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "issue16_compat.md")
    ap.add_argument("--only", nargs="*", help="config names (default: all)")
    a = ap.parse_args()
    rows, worst = [], 0.0
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for config, extra in _data(tmp).items():
            if a.only and config not in a.only:
                continue
            old = _run(a.old_src, config, extra, tmp / f"{config}_old")
            new = _run(None, config, extra, tmp / f"{config}_new")
            for k in sorted(set(old) | set(new)):
                o, n = old.get(k), new.get(k)
                diff = abs(o - n) if isinstance(o, float) and isinstance(n, float) else None
                worst = max(worst, diff or 0.0)
                rows.append(f"| {config} | {k} | {o if o is not None else '-'} | {n if n is not None else '-'} | "
                            f"{'-' if diff is None else f'{diff:.6f}'} |")
            print(config, old, new, flush=True)
    table = ["| config | metric | before | after | abs diff |", "|---|---|---|---|---|", *rows]
    text = (f"# Metrics with --epochs 2, before ({a.old_src}) and after\n\nLargest difference: {worst:.6f} "
            f"(tolerance {TOL}).\n\n" + "\n".join(table) + "\n")
    a.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
