"""Ray scoring throughput: `adrcs predict --engine ray` on N replicated sample maps, for each worker count.

The package's WM-811K sample maps (train + val samples) are replicated into ``--maps-per-file`` npz files (the
``adrcs convert`` format: read without unpickling) in a temp folder until N maps are reached; each worker count
scores all of them on a fresh local Ray (`deploy.ray_predict.predict_ray`: reading tasks + one model per actor,
Parquet shards) and the maps/s (Ray execution, from the first read to the last shard written; Ray start-up and
the driver's ONNX export not counted), maps/s per worker and the scaling ratio against the first count are
written to bench/results/scale_ray.{json,md}.

    nice -n 19 python bench/scale_ray.py --maps 1000000 --workers 1 2 [--model RUN] [--runtime onnx]

Without --model a small default ffn is trained on the samples into bench/runs/scale_ray_ffn (the throughput is
the network's and the pipeline's, not the accuracy's).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "adrcs" / "samples"
RESULTS = REPO / "bench" / "results"


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--maps-per-file", type=int, default=10_000)
    ap.add_argument("--model", type=Path, default=None, help="run folder (default: a small ffn on the samples)")
    ap.add_argument("--runtime", default=None, help="torch | onnx | onnx-int8 (default: onnx where it exports)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the default run when it is trained")
    ap.add_argument("--name", default="scale_ray", help="bench/results/NAME.{json,md}")
    args = ap.parse_args()

    from adrcs.deploy.ray_predict import predict_ray

    run = args.model or default_run(args.epochs)
    tmp = Path(tempfile.mkdtemp(prefix="adrcs-scale-ray-"))
    rows: list[dict[str, Any]] = []
    try:
        t = time.perf_counter()
        (tmp / "maps").mkdir()
        files = write_maps(tmp / "maps", args.maps, args.maps_per_file)
        print(f"{args.maps} maps in {len(files)} npz files ({time.perf_counter() - t:.1f}s to write)")
        for w in args.workers:
            out = tmp / f"out_w{w}"
            s = predict_ray(run, [tmp / "maps"], out, runtime=args.runtime, workers=w, say=print)
            rows.append({"workers": w, "maps": s["maps"], "seconds": round(s["seconds"], 2),
                         "maps_per_s": round(s["maps_per_s"], 1),
                         "maps_per_s_per_worker": round(s["maps_per_s"] / w, 1),
                         "runtime": s["runtime"], "shards": s["shards"]})
            print(f"workers {w}: {s['maps_per_s']:.0f} maps/s")
            shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0]["maps_per_s"] if rows else float("nan")
    for r in rows:
        r["scaling_vs_first"] = round(r["maps_per_s"] / base, 3) if base else None
    record = {"maps": args.maps, "maps_per_file": args.maps_per_file, "model": str(run), "rows": rows,
              "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    write(args.name, record)


def write(name: str, record: dict[str, Any]) -> None:
    """bench/results/NAME.json and a Markdown table beside it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2))
    lines = [f"# Ray scoring: {record['maps']:,} maps ({record['maps_per_file']:,} per npz file), "
             f"{record['cpus']} CPUs, {record['date']}", "",
             "| workers | runtime | maps | seconds | maps/s | maps/s per worker | scaling vs first |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in record["rows"]:
        lines.append(f"| {r['workers']} | {r['runtime']} | {r['maps']:,} | {r['seconds']} | {r['maps_per_s']:,} | "
                     f"{r['maps_per_s_per_worker']:,} | {r['scaling_vs_first']} |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
