"""Write the STDF sample shipped in src/adrcs/samples/ from maps of wm811k_sample_val.pkl.xz (reproducible).

  lot_sample.stdf.gz        STDF V4 (little endian, gzip), one lot of 25 wafers of one size (25 x 27 dies)
  lot_sample_labels.csv     lot,wafer,label: each wafer's WM-811K failureType (for ``evaluate --labels``)

The maps are taken a class at a time in turn (Center, Edge-Loc, Loc, Near-full, Random, Scratch, none: the
classes maps of that size have) so the lot mixes patterns. Wafer ids are ``W<row>`` (the map's row in
wm811k_sample_val.pkl.xz), lot ``WM811K-VAL-STDF``. Written by ``tests/helpers/stdf_writer``: 4 sites tested
together, 2 PTRs per die, 3 dies per wafer retested (first the other result, then the map's: the default
``--retest last`` reads back the map), passing dies in hard bin 1, failing ones in bins 5-8. STDF has no map
extent, so a wafer reads back as its source map with all-empty border rows and columns trimmed.

Usage: python scripts/make_stdf_samples.py [--out src/adrcs/samples] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

from helpers.stdf_writer import write_stdf  # noqa: E402

from adrcs.data.loader import load  # noqa: E402

LOT = "WM811K-VAL-STDF"
WAFERS = 25
SIZE_LIMIT = 300 * 1024


def pick(ds, n: int) -> list[int]:
    """Rows of `n` labelled maps of the most common size among them, one class at a time in turn."""
    labelled = [i for i in range(len(ds)) if ds.labels[i] >= 0]
    shape = Counter(ds.maps[i].shape for i in labelled).most_common(1)[0][0]
    by_class: dict[int, list[int]] = {}
    for i in labelled:
        if ds.maps[i].shape == shape:
            by_class.setdefault(int(ds.labels[i]), []).append(i)
    out: list[int] = []
    while len(out) < n and any(by_class.values()):
        for c in sorted(by_class):
            if by_class[c] and len(out) < n:
                out.append(by_class[c].pop(0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "src" / "adrcs" / "samples")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    ds = load(REPO / "src" / "adrcs" / "samples" / "wm811k_sample_val.pkl.xz")
    rows = pick(ds, WAFERS)
    wafers = [(f"W{r}", ds.maps[r]) for r in rows]
    path = a.out / "lot_sample.stdf.gz"
    write_stdf(path, wafers, lot=LOT, sites=4, ptr_per_die=2, retests=3, gzip=True, level=9, seed=a.seed)
    labels = pd.DataFrame({"lot": LOT, "wafer": [w for w, _ in wafers],
                           "label": [ds.class_names[ds.labels[r]] for r in rows]})
    labels.to_csv(a.out / "lot_sample_labels.csv", index=False)
    size = path.stat().st_size
    print(f"wrote {path} ({size / 1024:.0f} KiB, {len(wafers)} wafers of {wafers[0][1].shape}; "
          f"{dict(Counter(labels['label']))}) and {a.out / 'lot_sample_labels.csv'}")
    if size > SIZE_LIMIT:
        sys.exit(f"{path} is {size / 1024:.0f} KiB, over the {SIZE_LIMIT // 1024} KiB budget")


if __name__ == "__main__":
    main()
