"""Build the small sample data sets shipped in src/adrcs/samples/ (reproducible: seeded).

Stratified samples of the shared processed pickles, in the same format (columns, dtypes, index):
  wm811k_sample.pkl.xz          up to 175 maps per class from wm811k/train_*_split.pkl.xz
  wm811k_sample_val.pkl.xz      up to 70 maps per class from wm811k/val_data.pkl.xz
  mixedwm38_sample.pkl.xz       up to 21 maps per label combination from mixedwm38/train_*_split.pkl.xz
  mixedwm38_sample_val.pkl.xz   up to 11 maps per label combination from mixedwm38/val_data.pkl.xz

Then the fab-format samples, written from those maps by the per-format scripts (independent writers where one
exists; see each script's text): make_stdf_samples.py (lot_sample.stdf.gz + lot_sample_labels.csv),
make_klarf_samples.py (defects_sample.klarf, defects_sample_18.klarf), make_sinf_samples.py
(wafer_sample_0*.sinf, lot_sample_e142.xml, lot_sample_g85.xml).

Usage: python scripts/make_samples.py [--shared ../shared/data] [--out src/adrcs/samples] [--seed 0] [--fab-only]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]

# (output name, data set folder, input glob, column to stratify on, cap per stratum)
SAMPLES = [
    ("wm811k_sample.pkl.xz", "wm811k", "train_*_split.pkl.xz", "failureType", 175),
    ("wm811k_sample_val.pkl.xz", "wm811k", "val_data.pkl.xz", "failureType", 70),
    ("mixedwm38_sample.pkl.xz", "mixedwm38", "train_*_split.pkl.xz", "failureType", 21),
    ("mixedwm38_sample_val.pkl.xz", "mixedwm38", "val_data.pkl.xz", "failureType", 11),
]
FAB_SCRIPTS = ["make_stdf_samples.py", "make_klarf_samples.py", "make_sinf_samples.py"]


def _combination(df: pd.DataFrame) -> pd.Series:
    """Stratum key: the multi-hot label for MixedWM38 (38 combinations), else the column value."""
    if "label" in df.columns:
        return df["label"].map(lambda v: "".join(str(int(x)) for x in v))
    return df["failureType"].astype(str)


def stratified(df: pd.DataFrame, cap: int, seed: int) -> pd.DataFrame:
    """Up to `cap` rows of every stratum, picked at random (seeded), original order of strata kept."""
    rng = np.random.default_rng(seed)
    key = _combination(df)
    picks = []
    for value in sorted(key.unique()):
        rows = np.flatnonzero((key == value).to_numpy())
        take = rows if len(rows) <= cap else np.sort(rng.choice(rows, size=cap, replace=False))
        picks.append(take)
    order = np.sort(np.concatenate(picks))
    return df.iloc[order]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data",
                    help="folder holding wm811k/ and mixedwm38/ (default: ../shared/data)")
    ap.add_argument("--out", type=Path, default=REPO / "src" / "adrcs" / "samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fab-only", action="store_true", help="only rewrite the fab-format samples")
    args = ap.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    code = 0 if args.fab_only else pickle_samples(args)
    for script in FAB_SCRIPTS if code == 0 else []:
        cmd = [sys.executable, str(REPO / "scripts" / script), "--out", str(args.out), "--seed", str(args.seed)]
        code = subprocess.run(cmd, check=False).returncode
        if code:
            print(f"error: {script} failed (exit {code})", file=sys.stderr)
            break
    return code


def pickle_samples(args: argparse.Namespace) -> int:
    """The stratified pickle samples from the shared data sets."""
    for i, (name, folder, pattern, _col, cap) in enumerate(SAMPLES):
        files = sorted((args.shared / folder).glob(pattern))
        if not files:
            print(f"error: no {pattern} in {args.shared / folder}", file=sys.stderr)
            return 2
        frames = [pd.read_pickle(f) for f in files]
        df = pd.concat(frames)
        if isinstance(frames[0]["failureType"].dtype, pd.CategoricalDtype):
            # concat of differently ordered categories falls back to object: restore the category
            df["failureType"] = df["failureType"].astype(frames[0]["failureType"].dtype)
        df = df[~df.index.duplicated()]
        sample = stratified(df, cap, args.seed + i)
        out = args.out / name
        sample.to_pickle(out, compression={"method": "xz", "preset": 9})
        counts = sample["failureType"].astype(str).value_counts()
        print(f"{out}: {len(sample)} maps, {len(counts)} types, {out.stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
