"""Fab-file parse speed per format: dies/s and MB/s of `adrcs.data.loader.load` (the whole read: sniffing,
decompression, parsing, the die grids), on the shipped samples and on a large synthetic lot file per format.

Target (issue 17): the 400 MB STDF lot file becomes maps in <= 30 s on 2 cores. Every synthetic lot is 25
wafers x 10,057 dies (a round wafer on a 113 x 113 grid, 10 % random fails), written by the test writers in
tests/helpers into a temporary folder:

* STDF (stdf_writer): 100 parametric records (minimal 16-byte PTRs, random results) per die: 25.6 million
  records, 411 MB.
* KLARF 1.2 (klarf_writer): 40-80 defects per failing die (~60,000 per wafer, 1.5 million defect rows of 17
  columns, IMAGELIST rows of varying width), a full SampleTestPlan and the wafer geometry: ~125 MB.
* SINF, SEMI E142 (HexaDecimal codes) and SEMI G85 (Decimal codes) (sinf_writer): one bin code per die, ~1 MB.

STDF and KLARF are also read gzipped (the plain file compressed at gzip level 6, the gzip default); SINF, E142
and G85 are read plain only (small text files, seldom compressed). Each read runs in a fresh process (imports not
timed) so its peak memory (max RSS) is its own; the best of ``--repeats`` is kept (samples: at least 3).
``--profile`` adds the functions that dominate each large plain read (cProfile, by own time).

Formats are entries of FORMATS (name -> FormatBench: the shipped samples, a writer of the large file).
Writes bench/results/formats.{json,md}.

    python bench/formats.py                                  # all formats, ~3 min on 2 cores
    python bench/formats.py --formats stdf --wafers 5 --ptr 20  # quicker
    python bench/formats.py --formats klarf --update --profile  # rerun KLARF, keep the other rows
"""
from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "adrcs" / "samples"
sys.path.insert(0, str(REPO / "tests"))

# peak memory: VmHWM of the process's own address space (ru_maxrss would include the bench process's RSS at the
# spawn: Linux keeps ru_maxrss across exec)
READ = """
import json, re, resource, sys, time
from adrcs.data.loader import load
t, c = time.perf_counter(), time.process_time()
ds = load(sys.argv[1])
took, cpu = time.perf_counter() - t, time.process_time() - c
try:
    rss = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
except (OSError, AttributeError):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": took, "cpu_seconds": cpu, "wafers": len(ds), "dies": int(ds.meta["die_count"].sum()),
                  "max_rss_mb": rss}))
"""


@dataclass
class FormatBench:
    """One format: its shipped samples, a writer of the large synthetic file (returns a description), the
    large file's suffix and whether it is also read gzipped."""

    samples: tuple[Path, ...]
    write_large: Callable[[Path, argparse.Namespace], str]
    suffix: str
    gzip: bool


def round_wafer(side: int, fail_share: float, rng: np.random.Generator) -> np.ndarray:
    """A round wafer on a side x side grid (0 off wafer, 1 pass, 2 fail: random fails)."""
    yy, xx = np.mgrid[:side, :side]
    c = (side - 1) / 2
    disk = (yy - c) ** 2 + (xx - c) ** 2 <= (side / 2 + 0.1) ** 2
    return np.where(disk, np.where(rng.random(disk.shape) < fail_share, 2, 1), 0).astype(np.uint8)


def lot_maps(a: argparse.Namespace) -> tuple[list[np.ndarray], str]:
    """The synthetic lot's die-code maps (the same for every format) and their description."""
    rng = np.random.default_rng(0)
    maps = [round_wafer(a.side, 0.1, rng) for _ in range(a.wafers)]
    dies = int(sum((m > 0).sum() for m in maps))
    return maps, f"{a.wafers} wafers x {dies // a.wafers} dies"


def write_stdf_lot(path: Path, a: argparse.Namespace) -> str:
    from helpers.stdf_writer import write_stdf

    maps, desc = lot_maps(a)
    write_stdf(path, maps, lot="BENCH", ptr_per_die=a.ptr)
    return f"{desc} x {a.ptr} PTR per die"


def write_klarf_lot(path: Path, a: argparse.Namespace) -> str:
    from helpers.klarf_writer import write_klarf

    maps, desc = lot_maps(a)
    lo, hi = a.defects * 2 // 3, a.defects * 4 // 3
    plans = write_klarf(path, maps, version=a.klarf_version, lot="BENCH", defects_per_fail=(lo, hi))
    n = sum(len(p["defects"]) for p in plans)
    return (f"{desc}, KLARF {a.klarf_version}, {lo}-{hi} defects per failing die ({n:,} defects, "
            f"{n // a.wafers:,} per wafer)")


def _bin_map_writer(name: str, label: str) -> Callable[[Path, argparse.Namespace], str]:
    def write(path: Path, a: argparse.Namespace) -> str:
        from helpers import sinf_writer

        maps, desc = lot_maps(a)
        getattr(sinf_writer, name)(path, maps, lot="BENCH")
        return f"{desc}, {label}"
    return write


FORMATS: dict[str, FormatBench] = {
    "stdf": FormatBench((SAMPLES / "lot_sample.stdf.gz",), write_stdf_lot, ".stdf", gzip=True),
    "klarf": FormatBench((SAMPLES / "defects_sample.klarf", SAMPLES / "defects_sample_18.klarf"), write_klarf_lot,
                         ".klarf", gzip=True),
    "sinf": FormatBench(tuple(sorted(SAMPLES.glob("wafer_sample_0*.sinf"))),
                        _bin_map_writer("write_sinf", "2-character hex codes, spaced"), ".sinf", gzip=False),
    "e142": FormatBench((SAMPLES / "lot_sample_e142.xml",),
                        _bin_map_writer("write_e142", "one SubstrateMap per wafer, HexaDecimal codes"), ".xml",
                        gzip=False),
    "g85": FormatBench((SAMPLES / "lot_sample_g85.xml",),
                       _bin_map_writer("write_g85", "one Map per wafer, Decimal codes spaced"), ".xml", gzip=False),
}


# what the profiles of the large plain reads show (bench/formats.py --profile)
DOMINATES = {
    "stdf": "the record walk (stdf_records: `_walk_lanes`, `_lengths`, `record_starts`, `batches`: numpy over all "
            "record headers), then the Python loop over the PIR / PRR records (stdf.py `batch`); the parametric "
            "records are never decoded. Gzip adds the inflate.",
    "klarf": "the 1.2 defect rows, read in pure Python: the lexer splitting every line into tokens "
             "(klarf_lexer `_split`, `_line_tokens`, `segments`), the walk over rows of varying width (the IMAGELIST "
             "column: klarf_table `_scan_variable`, a Python step per row), and picking the wanted columns and "
             "converting them to floats (`_take`: list comprehensions, `numpy.array` of strings); about a fifth goes "
             "to the per-wafer `defects` meta (klarf.py `_json_values` and `json.dumps` of ~60,000 rows per wafer). "
             "Gzip adds the inflate.",
    "sinf": "fixed costs: `numpy.array` over the RowData codes (str.split per row), the die grid's `unique` / "
            "`argsort`, the header regexes; 1 MB of codes is read in under 0.1 s.",
    "e142": "the expat parse (defusedxml with a line-numbered tree: xml_maps `start` / `end`) and decoding the "
            "BinCode rows (xml_maps `decode_rows`: a list comprehension per row), then the die grid.",
    "g85": "as E142 (the same xml_maps code): the expat parse, `decode_rows` over the spaced Decimal codes, the die "
           "grid.",
}


def gzip_file(src: Path, dst: Path, level: int = 6) -> None:
    with open(src, "rb") as f, gzip.GzipFile(dst, "wb", compresslevel=level, mtime=0) as g:
        shutil.copyfileobj(f, g, 1 << 24)


def decompressed_size(path: Path) -> int:
    from adrcs.data.bounded_io import open_data

    n = 0
    with open_data(path, path.name, 1 << 40) as f:
        while chunk := f.read(1 << 24):
            n += len(chunk)
    return n


def timed_read(path: Path, repeats: int) -> dict:
    """Best of `repeats` reads, each in a fresh process."""
    runs = []
    for _ in range(repeats):
        r = subprocess.run([sys.executable, "-c", READ, str(path)], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        if r.returncode:
            raise SystemExit(f"reading {path} failed:\n{r.stderr}")
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda x: x["seconds"])
    best["all_seconds"] = [round(x["seconds"], 2) for x in runs]
    return best


def measure(fmt: str, what: str, path: Path, repeats: int, desc: str) -> dict:
    r = timed_read(path, repeats)
    raw = decompressed_size(path)
    rec = {"format": fmt, "file": what, "description": desc, "file_mb": round(path.stat().st_size / 1e6, 2),
           "data_mb": round(raw / 1e6, 2), "wafers": r["wafers"], "dies": r["dies"],
           "seconds": round(r["seconds"], 3), "cpu_seconds": round(r["cpu_seconds"], 3),
           "all_seconds": r["all_seconds"],
           "mb_per_s": round(raw / 1e6 / r["seconds"], 1), "dies_per_s": round(r["dies"] / r["seconds"]),
           "max_rss_mb": round(r["max_rss_mb"])}
    print(json.dumps(rec), flush=True)
    return rec


def profile(path: Path, top: int = 10) -> list[str]:
    """The `top` functions by own time of one read of `path`."""
    from adrcs.data.loader import load

    prof = cProfile.Profile()
    prof.enable()
    load(path)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    rows = []
    total = stats.total_tt
    for (file, line, func), (_cc, _nc, tt, ct, _callers) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]:
        rows.append(f"{tt:.2f} s own ({100 * tt / total:.0f} %), {ct:.2f} s with callees: "
                    f"{Path(file).name}:{line} {func}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", nargs="+", choices=list(FORMATS), default=list(FORMATS))
    ap.add_argument("--wafers", type=int, default=25)
    ap.add_argument("--side", type=int, default=113, help="wafer grid side (113: 10,057 dies)")
    ap.add_argument("--ptr", type=int, default=100, help="STDF: parametric records per die")
    ap.add_argument("--defects", type=int, default=60, help="KLARF: mean defects per failing die (2/3 to 4/3 of it)")
    ap.add_argument("--klarf-version", choices=("1.2", "1.8"), default="1.2")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--tmp", type=Path, default=None, help="folder for the large files (default: a temp folder)")
    ap.add_argument("--update", action="store_true", help="replace only the rows (and profiles) of --formats in "
                    "the saved results, keeping the others (to rerun one format on a quiet machine)")
    a = ap.parse_args()
    records, notes = [], {}
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        for fmt in a.formats:
            fb = FORMATS[fmt]
            for sample in fb.samples:
                records.append(measure(fmt, f"sample {sample.name}", sample, max(a.repeats, 3), "shipped sample"))
            path = Path(tmp) / f"lot{fb.suffix}"
            t = time.perf_counter()
            desc = fb.write_large(path, a)
            took = time.perf_counter() - t
            records.append(measure(fmt, "synthetic lot", path, a.repeats, f"{desc}; written in {took:.0f} s"))
            if a.profile:
                notes[f"{fmt}_profile"] = profile(path)
            if fb.gzip:
                gz = path.with_name(path.name + ".gz")
                t = time.perf_counter()
                gzip_file(path, gz)
                took = time.perf_counter() - t
                records.append(measure(fmt, "synthetic lot (gzip -6)", gz, a.repeats,
                                       f"{desc}; the plain file gzipped (level 6) in {took:.0f} s"))
                gz.unlink()
            path.unlink()
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
               "processor": platform.processor() or platform.machine()}
    out = REPO / "bench" / "results" / "formats"
    if a.update and out.with_suffix(".json").exists():
        saved = json.loads(out.with_suffix(".json").read_text())
        records += [r for r in saved["records"] if r["format"] not in a.formats]
        notes.update({k: v for k, v in saved.items() if k.endswith("_profile") and k[:-8] not in a.formats})
    order = list(FORMATS)
    records.sort(key=lambda r: order.index(r["format"]))  # stable: each format's rows keep their order
    shown = [f for f in order if any(r["format"] == f for r in records)]
    notes = {f"{f}_profile": notes[f"{f}_profile"] for f in shown if f"{f}_profile" in notes}
    out.with_suffix(".json").write_text(json.dumps({"records": records, "machine": machine, **notes}, indent=2) + "\n")
    lines = ["# Fab-file parse speed (`adrcs.data.loader.load`, fresh process, best of runs)", "",
             "| format | file | MB on disk | MB data | wafers | dies | seconds | CPU s | MB/s | dies/s | max RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['format']} | {r['file']} | {r['file_mb']} | {r['data_mb']} | {r['wafers']} | "
                     f"{r['dies']} | {r['seconds']} | {r.get('cpu_seconds', '')} | {r['mb_per_s']} | "
                     f"{r['dies_per_s']:,} | {r['max_rss_mb']} |")
    lines += ["", "seconds: wall time of the best run; CPU s: its process time (a wall time well above it: the "
              "machine was busy). MB/s: decompressed data per second; dies: dies on the wafers (KLARF: the plan's "
              "and the defects' dies and those inside the wafer circle). Synthetic lots:", ""]
    lines += [f"- {r['format']} {r['file']}: {r['description']}" for r in records if not r["file"].startswith("sample")]
    lines += ["", "What dominates (profiles below, with --profile):", ""]
    lines += [f"- {fmt}: {DOMINATES[fmt]}" for fmt in shown]
    lines += ["", f"Machine: {machine['cpus']} CPUs, Python {machine['python']}, numpy {machine['numpy']}. Target: "
              "the 400 MB STDF lot in <= 30 s on 2 cores. `python bench/formats.py"
              + (" --profile" if a.profile else "") + "`."]
    for key, rows in notes.items():
        lines += ["", f"Profile ({key.replace('_', ' ')}, plain file, cProfile adds overhead):", ""]
        lines += [f"- {row}" for row in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
