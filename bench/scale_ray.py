"""Ray scoring throughput: `adrcs predict --engine ray` on N replicated sample maps, for each worker count.

The package's WM-811K sample maps (train + val samples) are replicated into ``--maps-per-file`` npz files (the
``adrcs convert`` format: read without unpickling) in a temp folder until N maps are reached; each worker count
scores all of them on a fresh local Ray (`deploy.ray_predict.predict_ray`: reading tasks + one model per actor,
Parquet shards) and the maps/s (Ray execution, from the first read to the last shard written; Ray start-up and
the driver's ONNX export not counted), maps/s per worker and the scaling ratio against the first count are
written to bench/results/scale_ray.{json,md}.

    nice -n 19 python bench/scale_ray.py --maps 1000000 --workers 1 2 [--model RUN] [--runtime onnx]

Without --model a small default ffn is trained on the samples into bench/runs/scale_ray_ffn (the throughput is
the network's and the pipeline's, not the accuracy's). The map files are kept under bench/runs/scale_ray_maps/ (written
once per size), each worker count prints its progress (maps in the shards written so far) every ``--progress-s``
seconds, and its shards are checked against local `adrcs predict` (same runtime) on the first file's maps: every
file holds copies of the same maps, so every row of the shards has its local twin (`check_against_local`).

Ray is the optional ``adrcs[ray]`` extra; where it is not installed in the environment but a
``pip install --target bench/runs/ray_site 'ray[data]'`` folder exists, `ensure_ray` puts that folder on the path
(of this process and of Ray's workers). bench/scale.py (issue 20's scale benchmark) runs the same steps.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "adrcs" / "samples"
RESULTS = REPO / "bench" / "results"
RAY_SITE = REPO / "bench" / "runs" / "ray_site"
MAPS_CACHE = REPO / "bench" / "runs" / "scale_ray_maps"


def ensure_ray(site: Path = RAY_SITE) -> str:
    """Where ``ray`` is imported from: the environment, else `site` (a ``pip install --target`` folder) appended to
    this process's path and put on PYTHONPATH for Ray's workers. ImportError when neither has it."""
    try:
        import ray  # noqa: F401
        return str(site) if str(site) in sys.path else "environment"
    except ImportError:
        if not (site / "ray").is_dir():
            raise
    sys.path.append(str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(site)) if p)
    importlib.import_module("ray")
    return str(site)


def default_run(epochs: int) -> Path:
    """bench/runs/scale_ray_ffn: the default ffn config trained briefly on the samples (once)."""
    from adrcs.api import train
    from adrcs.config import load_config

    run = REPO / "bench" / "runs" / "scale_ray_ffn"
    if not (run / "model.ckpt").is_file():
        cfg = load_config(REPO / "configs" / "wm811k_ffn.yaml", {"epochs": epochs, "device": "cpu",
                                                                 "progress": False})
        train(cfg, [SAMPLES / "wm811k_sample.pkl.xz"], [SAMPLES / "wm811k_sample_val.pkl.xz"], run,
              say=lambda s: None)
    return run


def write_maps(folder: Path, n_maps: int, per_file: int) -> list[Path]:
    """`n_maps` sample maps in npz files of `per_file` maps (the last one shorter) under `folder`."""
    from adrcs.data.loader import load_many
    from adrcs.data.wafer_map_set import WaferMapSet
    from adrcs.data.writer import save_wafer_maps_npz

    base = load_many([SAMPLES / "wm811k_sample.pkl.xz", SAMPLES / "wm811k_sample_val.pkl.xz"])
    idx = np.arange(per_file) % len(base)
    block = base.subset(idx)
    block = WaferMapSet(maps=block.maps, labels=block.labels, class_names=block.class_names,
                        meta=block.meta.assign(index=np.arange(per_file)), multilabel=block.multilabel)
    first = folder / "maps_00000.npz"
    save_wafer_maps_npz(block, first)
    files = [first]
    for k in range(1, n_maps // per_file):
        files.append(folder / f"maps_{k:05d}.npz")
        shutil.copyfile(first, files[-1])
    rest = n_maps - per_file * len(files)
    if rest > 0:
        files.append(folder / f"maps_{len(files):05d}.npz")
        save_wafer_maps_npz(block.subset(np.arange(rest)), files[-1])
    return files


def maps_folder(n_maps: int, per_file: int, say: Callable[[str], None] = print) -> tuple[Path, list[Path]]:
    """bench/runs/scale_ray_maps/<n>_<per_file>: `write_maps`' files, written once (a ``.complete`` marker says
    they are all there; a folder without it is written again)."""
    folder = MAPS_CACHE / f"{n_maps}_{per_file}"
    done = folder / ".complete"
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        t = time.perf_counter()
        write_maps(folder, n_maps, per_file)
        done.write_text(str(n_maps))
        say(f"{n_maps:,} maps written to {folder} ({time.perf_counter() - t:.1f}s)")
    return folder, sorted(folder.glob("maps_*.npz"))


def shard_rows(out: Path) -> int:
    """Rows in the Parquet shards written to `out` so far (footers only)."""
    import pyarrow.parquet as pq

    n = 0
    for f in list(out.glob("*.parquet")):
        try:
            n += pq.read_metadata(f).num_rows
        except Exception:  # noqa: BLE001 - a shard being written
            pass
    return n


def _progress(out: Path, total: int, workers: int, every: float, stop: threading.Event,
              say: Callable[[str], None], loads: list[float]) -> None:
    t0 = time.perf_counter()
    while not stop.wait(every):
        n, dt = shard_rows(out), time.perf_counter() - t0
        loads.append(os.getloadavg()[0])
        say(f"[progress] workers {workers}: {n:,}/{total:,} maps written ({100 * n / max(total, 1):.1f} %), "
            f"{dt:.0f}s, {n / max(dt, 1e-9):.0f} maps/s so far, load {loads[-1]:.2f}")


def score(run: Path, maps_dir: Path, workers: int, out: Path, n_maps: int, runtime: str | None = None,
          say: Callable[[str], None] = print, progress_s: float = 30.0) -> dict[str, Any]:
    """`predict_ray` on the maps of `maps_dir` with `workers` actors into `out` (removed first), printing progress;
    one result row (maps/s, maps/s per worker, load average while it ran)."""
    from adrcs.deploy.ray_predict import predict_ray

    shutil.rmtree(out, ignore_errors=True)
    stop, loads = threading.Event(), [os.getloadavg()[0]]
    th = threading.Thread(target=_progress, args=(out, n_maps, workers, progress_s, stop, say, loads), daemon=True)
    th.start()
    try:
        s = predict_ray(run, [maps_dir], out, runtime=runtime, workers=workers, say=say)
    finally:
        stop.set()
        th.join()
    return {"workers": workers, "maps": s["maps"], "seconds": round(s["seconds"], 2),
            "maps_per_s": round(s["maps_per_s"], 1), "maps_per_s_per_worker": round(s["maps_per_s"] / workers, 1),
            "runtime": s["runtime"], "shards": s["shards"], "files": s["files"],
            "load_avg_1min_mean": round(float(np.mean(loads)), 2), "load_avg_1min_max": round(float(np.max(loads)), 2)}


def check_against_local(run: Path, first_file: Path, out: Path, runtime: str,
                        say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every row of the Ray shards in `out` against local `api.predict` (same runtime) of `first_file`: all files
    are copies of its maps (the last one a prefix of them), so the row with ``index`` i equals local row i. Compares
    ``predicted``, ``decision`` and the ``prob_*`` columns (max abs difference)."""
    import pandas as pd
    import pyarrow.parquet as pq

    from adrcs.api import predict

    local = predict(run, [first_file], out.with_name(out.name + "_local.csv"), runtime=runtime, say=lambda s: None)
    out.with_name(out.name + "_local.csv").unlink(missing_ok=True)
    probs = [c for c in local.columns if c.startswith("prob_")]
    cols = ["source", "index", "predicted", "decision", *probs]
    ray_rows = pd.concat([pq.read_table(f, columns=cols).to_pandas() for f in sorted(out.glob("*.parquet"))],
                         ignore_index=True)
    return compare_rows(ray_rows, local, probs)


def compare_rows(ray_rows: Any, local: Any, probs: list[str]) -> dict[str, Any]:
    """Ray rows (``index`` numbering the maps in their file) against the local rows of one file (row i = index i):
    how many rows, how many differ in ``predicted`` / ``decision``, the largest probability difference."""
    idx = ray_rows["index"].to_numpy(np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= len(local)):
        return {"rows_compared": 0, "equal": False, "error": "index outside the local file"}
    twin = local.iloc[idx].reset_index(drop=True)
    diff_pred = int((ray_rows["predicted"].astype(str).to_numpy() != twin["predicted"].astype(str).to_numpy()).sum())
    diff_dec = int((ray_rows["decision"].astype(str).to_numpy() != twin["decision"].astype(str).to_numpy()).sum())
    dp = (float(np.abs(ray_rows[probs].to_numpy(np.float64) - twin[probs].to_numpy(np.float64)).max())
          if len(idx) and probs else 0.0)
    return {"rows_compared": int(len(idx)), "files": int(ray_rows["source"].nunique()) if len(idx) else 0,
            "predicted_differ": diff_pred, "decision_differ": diff_dec, "max_abs_prob_diff": dp,
            "equal": bool(diff_pred == 0 and diff_dec == 0 and dp <= 1e-5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--maps-per-file", type=int, default=10_000)
    ap.add_argument("--model", type=Path, default=None, help="run folder (default: a small ffn on the samples)")
    ap.add_argument("--runtime", default=None, help="torch | onnx | onnx-int8 (default: onnx where it exports)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the default run when it is trained")
    ap.add_argument("--name", default="scale_ray", help="bench/results/NAME.{json,md}")
    ap.add_argument("--progress-s", type=float, default=30.0, help="seconds between progress lines")
    args = ap.parse_args()

    ensure_ray()
    run = args.model or default_run(args.epochs)
    maps_dir, files = maps_folder(args.maps, args.maps_per_file)
    print(f"{args.maps:,} maps in {len(files)} npz files under {maps_dir}")
    tmp = Path(tempfile.mkdtemp(prefix="adrcs-scale-ray-"))
    rows: list[dict[str, Any]] = []
    try:
        for w in args.workers:
            out = tmp / f"out_w{w}"
            row = score(run, maps_dir, w, out, args.maps, args.runtime, progress_s=args.progress_s)
            row["check"] = check_against_local(run, files[0], out, row["runtime"])
            rows.append(row)
            print(f"workers {w}: {row['maps_per_s']:.0f} maps/s; equals local predict: {row['check']['equal']}")
            shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record = {"maps": args.maps, "maps_per_file": args.maps_per_file, "model": str(run), "rows": scaled(rows),
              "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    write(args.name, record)


def scaled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` with ``scaling_vs_first``: maps/s over the first row's."""
    base = rows[0]["maps_per_s"] if rows else float("nan")
    for r in rows:
        r["scaling_vs_first"] = round(r["maps_per_s"] / base, 3) if base else None
    return rows


def write(name: str, record: dict[str, Any]) -> None:
    """bench/results/NAME.json and a Markdown table beside it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2))
    lines = [f"# Ray scoring: {record['maps']:,} maps ({record['maps_per_file']:,} per npz file), "
             f"{record['cpus']} CPUs, {record['date']}", "",
             "| workers | runtime | maps | seconds | maps/s | maps/s per worker | scaling vs first | load avg (mean) | "
             "equals local predict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in record["rows"]:
        c = r.get("check") or {}
        eq = (f"{c['equal']} ({c['rows_compared']:,} rows, max prob diff {c['max_abs_prob_diff']:.1e})"
              if "equal" in c and "max_abs_prob_diff" in c else "")
        lines.append(f"| {r['workers']} | {r['runtime']} | {r['maps']:,} | {r['seconds']} | {r['maps_per_s']:,} | "
                     f"{r['maps_per_s_per_worker']:,} | {r['scaling_vs_first']} | {r.get('load_avg_1min_mean', '')} | "
                     f"{eq} |")
    if record.get("note"):
        lines += ["", record["note"]]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
