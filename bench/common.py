"""Shared benchmark steps: train from a config, evaluate on val, time inference."""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from adrcs.api import train
from adrcs.config import load_config
from adrcs.data import load_many
from adrcs.metrics.classification import report_for
from adrcs.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]


def machine() -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_threads": torch.get_num_threads(), "gpu": gpu, "torch": torch.__version__,
            "python": platform.python_version(), "processor": platform.processor() or platform.machine()}


def time_inference(run_dir: Path, maps: list[np.ndarray], device: str, batch: int = 1024) -> dict[str, float]:
    """Maps/s at `batch` (prepared tensors, and end to end from raw maps incl. resize + one-hot) and batch-1 latency."""
    pipe = Pipeline.load(run_dir, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    n = min(len(maps), 16 * batch if device.startswith("cuda") else 8 * batch)
    maps = maps[:n]
    x = pipe.prepare(maps)
    pipe.predict_tensor(x[:batch], batch_size=batch)  # warm-up
    sync()
    t = time.perf_counter()
    pipe.predict_tensor(x, batch_size=batch)
    sync()
    model_only = n / (time.perf_counter() - t)
    t = time.perf_counter()
    pipe.predict_proba(maps, batch_size=batch)
    sync()
    end_to_end = n / (time.perf_counter() - t)
    lat = []
    for m in maps[:200]:
        t = time.perf_counter()
        pipe.predict_proba([m], batch_size=1)
        sync()
        lat.append(time.perf_counter() - t)
    return {"maps_per_s_batch%d" % batch: round(model_only, 1), "maps_per_s_batch%d_end_to_end" % batch: round(end_to_end, 1),
            "latency_batch1_ms_p50": round(1000 * float(np.median(lat)), 3),
            "latency_batch1_ms_p99": round(1000 * float(np.percentile(lat, 99)), 3), "device": device}


def run_model(config: str, train_paths: list[Path], val_paths: list[Path], run_dir: Path,
              overrides: dict[str, Any]) -> dict[str, Any]:
    """Train one config on the given files and return its benchmark record."""
    cfg = load_config(REPO / "configs" / config, overrides)
    t = time.perf_counter()
    report = train(cfg, train_paths, val_paths, run_dir)
    wall = time.perf_counter() - t
    metrics = json.loads((run_dir / "metrics.json").read_text())
    val = load_many(val_paths).labeled()
    pipe = Pipeline.load(run_dir)
    val = val.with_classes(pipe.class_names)
    y = np.clip(val.labels, 0, None) if val.multilabel else val.labels
    t = time.perf_counter()
    report_tta = report_for(y, pipe.predict_proba(val, tta=True), pipe.class_names, pipe.multilabel)
    tta_maps_s = len(val) / (time.perf_counter() - t)
    speed = {"cpu": time_inference(run_dir, val.maps, "cpu")}
    if torch.cuda.is_available():
        speed["gpu"] = time_inference(run_dir, val.maps, "cuda", batch=8192)
    return {"config": config, "overrides": overrides, "model": cfg["model"], "input_size": cfg["input_size"],
            "params": sum(p.numel() for p in pipe.net.parameters()),
            "train_seconds": round(metrics["train_seconds"], 1), "wall_seconds": round(wall, 1),
            "best_epoch": metrics["best_epoch"], "report": report, "report_tta": report_tta,
            "speed": speed, "cpu_tta_maps_per_s_end_to_end": round(tta_maps_s, 1), "run_dir": str(run_dir)}


def write_result(name: str, record: dict[str, Any]) -> Path:
    out = REPO / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    return out


def bench_args(doc: str, dataset: str, models: list[str]) -> tuple[argparse.Namespace, list[Path], list[Path]]:
    """Command-line arguments shared by the dataset benchmarks, and the train/val files they name."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / dataset)
    ap.add_argument("--models", nargs="+", default=models)
    ap.add_argument("--epochs", type=int, default=None, help="override the configs' epochs")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tag", default="", help="suffix for result files and run folders")
    args = ap.parse_args()
    train_paths = sorted(args.data_dir.glob("train_*_split.pkl.xz"))
    val_paths = [args.data_dir / "val_data.pkl.xz"]
    if not train_paths or not val_paths[0].is_file():
        sys.exit(f"no {dataset} train/val files in {args.data_dir}")
    return args, train_paths, val_paths


def run_benchmark(dataset: str, args: argparse.Namespace, train_paths: list[Path], val_paths: list[Path],
                  table_rows: Callable[[str, dict[str, Any]], list[dict[str, Any]]]) -> str:
    """Train and measure each of `args.models` with `configs/<dataset>_<model>.yaml`; write the JSON
    records and a markdown table (`bench/results/<dataset><tag>.md`), and return the table."""
    from adrcs.report.tables import markdown_table

    rows = []
    for model in args.models:
        name = f"{dataset}_{model}{args.tag}"
        rec = run_model(f"{dataset}_{model}.yaml", train_paths, val_paths, REPO / "bench" / "runs" / name,
                        {"epochs": args.epochs, "device": args.device})
        rec["machine"] = machine()
        rec["train_files"] = [p.name for p in train_paths]
        print(f"wrote {write_result(name, rec)}")
        rows += table_rows(model, rec)
    md = markdown_table(rows, list(rows[0]))
    (REPO / "bench" / "results" / f"{dataset}{args.tag}.md").write_text(md + "\n")
    return md
