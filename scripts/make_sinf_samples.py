"""Write the SINF, SEMI E142 and SEMI G85 samples shipped in src/adrcs/samples/ from maps of
wm811k_sample_val.pkl.xz (reproducible).

  wafer_sample_01.sinf .. wafer_sample_03.sinf   SINF, one wafer a file (as most probers write them)
  lot_sample_e142.xml                            SEMI E142 MapData, 5 wafers, HexaDecimal bins
  lot_sample_g85.xml                             SEMI G85 Maps, 5 wafers, Decimal bins

Wafer ids are ``W<row>`` (the map's row in wm811k_sample_val.pkl.xz), lot ``WM811K-VAL``. Passing dies get
bin 1, failing dies bins 2-5; a few passing dies are written untested (SINF ``@@``, E142 / G85 a bin of
quality ``Unknown``) and the SINF files carry a reference die (``FF``), so every file reads back as its source
map, off-wafer border included. SINF and E142 are written by ``tests/helpers/sinf_writer``; the G85 file by
the independent ``g85`` package (GPL-3.0, only needed here: ``pip install g85``) so the reader is not only
tested against its own writer. Without g85 the test helper's writer is used (``--own-writer`` forces it).

Usage: python scripts/make_sinf_samples.py [--out src/adrcs/samples] [--seed 0] [--own-writer]
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

from helpers.sinf_writer import UNTESTED_BIN, plan_bins, write_e142, write_g85, write_sinf  # noqa: E402

from adrcs.data.loader import load  # noqa: E402

LOT = "WM811K-VAL"
MAX_SIDE = 45
FAIL_BINS = (2, 3, 4, 5)
SIZE_LIMIT = 300 * 1024  # all samples together


def pick(ds, n: int) -> list[int]:
    """Rows of `n` maps of at most MAX_SIDE per side, one of each class in turn."""
    small = [i for i, m in enumerate(ds.maps) if max(m.shape) <= MAX_SIDE]
    out: list[int] = []
    while len(out) < min(n, len(small)):
        for c in range(len(ds.class_names)):
            row = next((i for i in small if ds.labels[i] == c and i not in out), None)
            if row is not None and len(out) < n:
                out.append(row)
    return out


def untested_masks(maps: list[np.ndarray], rng: np.random.Generator, share: float = 0.03) -> list[np.ndarray]:
    """A few passing dies of each map, to be written as untested (they read back as passing dies)."""
    return [(m == 1) & (rng.random(m.shape) < share) for m in maps]


def g85_package(path: Path, wafers: list[tuple[str, np.ndarray]], masks: list[np.ndarray], seed: int) -> None:
    """The G85 file written by the g85 package: Decimal bins, NullBin 255, untested dies in bin UNTESTED_BIN."""
    import g85
    from g85.main import Device, Map

    plans = plan_bins(wafers, fail_bins=FAIL_BINS, untested=masks, seed=seed)
    maps = []
    for p in plans:
        data = np.where(p["map"] == 0, 255, np.where(p["untested_mask"], UNTESTED_BIN, p["written"]))
        dev = Device(BinType="Decimal", NullBin=255, ProductId="WM811K", LotId=LOT, WaferSize=200.0,
                     CreateDate=datetime(2024, 3, 5, 14, 30), SupplierName="FAB1", OriginLocation=2, Orientation=180)
        dev.map = data.astype(int).tolist()
        dev.bin_pass = {1: True, **{b: False for b in FAIL_BINS}}
        maps.append(Map(SubstrateType="Wafer", SubstrateId=p["wafer"], devices=[dev]))
        # BinQuality "Unknown" is no pass/fail flag g85 writes: add the untested bin to the text afterwards
    with open(path, "wb") as f:  # ElementTree writes us-ascii bytes
        g85.write(maps, f)
    text = path.read_text()
    text = text.replace('<Data', f'<Bin BinCode="{UNTESTED_BIN:03d}" BinQuality="Unknown" '
                                  'BinDescription="NotTested" />\n      <Data')
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n' + text + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "src" / "adrcs" / "samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--own-writer", action="store_true", help="write G85 with tests/helpers/sinf_writer, not g85")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        if args.own_writer:
            raise ImportError
        import g85  # noqa: F401
        independent = True
    except ImportError:
        independent = False
    ds = load(REPO / "src" / "adrcs" / "samples" / "wm811k_sample_val.pkl.xz")
    rows = pick(ds, 13)
    rng = np.random.default_rng(args.seed)
    wafers = [(f"W{i}", ds.maps[i]) for i in rows]
    files = []
    for k, (wid, m) in enumerate(wafers[:3]):
        path = args.out / f"wafer_sample_{k + 1:02d}.sinf"
        write_sinf(path, [(wid, m)], lot=LOT, device="WM811K", fail_bins=FAIL_BINS, references=1,
                   untested=untested_masks([m], rng), seed=args.seed + k)
        files.append((path, [(wid, m)]))
    e_wafers, g_wafers = wafers[3:8], wafers[8:13]
    path = args.out / "lot_sample_e142.xml"
    write_e142(path, e_wafers, lot=LOT, product="WM811K", fail_bins=FAIL_BINS,
               untested=untested_masks([m for _, m in e_wafers], rng), seed=args.seed + 10)
    files.append((path, e_wafers))
    path = args.out / "lot_sample_g85.xml"
    g_masks = untested_masks([m for _, m in g_wafers], rng)
    if independent:
        g85_package(path, g_wafers, g_masks, args.seed + 20)
    else:
        write_g85(path, g_wafers, lot=LOT, product="WM811K", fail_bins=FAIL_BINS, untested=g_masks,
                  seed=args.seed + 20)
    files.append((path, g_wafers))
    total = 0
    for path, src in files:
        back = load(path)
        for (wid, m), got, w in zip(src, back.maps, back.meta["wafer"]):
            if w != wid or not np.array_equal(m, got):
                raise SystemExit(f"{path.name}: wafer {wid} does not read back as its map")
        size = path.stat().st_size
        total += size
        print(f"{path}: {back.notes['format']}, {len(src)} wafer(s), {size / 1024:.0f} KiB, "
              f"{int(back.meta['untested_count'].sum())} untested dies")
    print(f"G85 writer: {'g85 package' if independent else 'tests/helpers/sinf_writer'}; {total / 1024:.0f} KiB in all")
    if total > SIZE_LIMIT:
        raise SystemExit("the samples are over 300 KB together: lower MAX_SIDE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
