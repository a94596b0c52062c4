"""The runtime part of bench/scale.py: every inference path of a wafer-map run (PyTorch eager / frozen TorchScript,
ONNX fp32, ONNX INT8; thread and option variants) timed in interleaved rounds from uint8 maps to probabilities, and
INT8's accuracy change on val."""
from __future__ import annotations

import argparse
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_VAL = REPO.parent / "shared" / "data" / "wm811k" / "val_data.pkl.xz"
SAMPLE_VAL = REPO / "src" / "adrcs" / "samples" / "wm811k_sample_val.pkl.xz"
VARIANTS = ("torch-eager-t1", "torch-eager-t2", "torch-frozen-t1", "torch-frozen-t2", "onnx-t1", "onnx-t2",
            "onnx-t2-nospin", "onnx-int8-t1", "onnx-int8-t2", "onnx-int8-t2-nospin")
VARIANT_RE = re.compile(r"^(torch-eager|torch-frozen|onnx|onnx-int8)-t(\d+)((?:-nospin|-basic)*)$")
Printer = Callable[[str], None]


@dataclass
class Variant:
    """One inference path: a model with ``predict_tensor`` and the thread count it runs at."""

    name: str
    family: str          # torch-eager | torch-frozen | onnx | onnx-int8
    threads: int
    model: Any

    @property
    def is_torch(self) -> bool:
        return self.family.startswith("torch")


def parse_variant(name: str) -> tuple[str, int, set[str]]:
    """'onnx-int8-t2-nospin' -> ('onnx-int8', 2, {'nospin'}); ValueError for an unknown name."""
    m = VARIANT_RE.match(name)
    if not m:
        raise ValueError(f"unknown variant {name!r} (e.g. {', '.join(VARIANTS[:3])}, onnx-t1-basic)")
    flags = {f for f in m.group(3).split("-") if f}
    if flags and m.group(1).startswith("torch"):
        raise ValueError(f"{name}: -nospin / -basic are ONNX Runtime options")
    return m.group(1), int(m.group(2)), flags


def onnx_session(path: Path, threads: int, spinning: bool = True, level: str = "all") -> Any:
    """An ONNX Runtime CPU session like `inference.onnx_runtime.make_session` (what --runtime onnx uses), with
    thread spinning off and / or basic graph optimisation for the variants."""
    import onnxruntime as ort

    from adrcs.inference.onnx_runtime import make_session

    if spinning and level == "all":
        return make_session(path, threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if level == "all"
                                     else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    opts.log_severity_level = 3
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def build_variants(run: Path, names: list[str], say: Printer) -> list[Variant]:
    """The models of `names` (one eager and one frozen Pipeline shared by their thread counts; one ONNX session
    per variant), exporting model.onnx + model.int8.onnx first when the run has no current INT8 export."""
    from adrcs.deploy.export_onnx import INT8_NAME, ONNX_NAME, export_onnx
    from adrcs.deploy.runtime import has_int8
    from adrcs.inference.onnx_runtime import OnnxPredictor
    from adrcs.pipeline import Pipeline

    parsed = [(n, *parse_variant(n)) for n in names]
    if any(f.startswith("onnx") for _, f, _, _ in parsed) and not has_int8(run):
        say(f"exporting {run}/{ONNX_NAME} and {INT8_NAME}")
        export_onnx(run, int8=True, say=say)
    eager = frozen = None
    out = []
    for name, family, threads, flags in parsed:
        if family == "torch-eager":
            eager = eager or Pipeline.load(run)
            model = eager
        elif family == "torch-frozen":
            if frozen is None:
                frozen = Pipeline.load(run)
                if not frozen.freeze():
                    raise RuntimeError(f"{run}: the model cannot be frozen (serve would run it eagerly)")
            model = frozen
        else:
            path = run / (INT8_NAME if family == "onnx-int8" else ONNX_NAME)
            model = OnnxPredictor(Pipeline.load(run), path, threads, runtime=family)
            model.session = onnx_session(path, threads, spinning="nospin" not in flags,
                                         level="basic" if "basic" in flags else "all")
        out.append(Variant(name, family, threads, model))
    return out


def set_threads(v: Variant) -> None:
    import torch

    if v.is_torch:
        torch.set_num_threads(v.threads)


def time_batches(v: Variant, x: Any, batch: int) -> float:
    """maps/s for all of `x` in calls of `batch` maps."""
    t = time.perf_counter()
    for i in range(0, len(x), batch):
        v.model.predict_tensor(x[i:i + batch], batch_size=batch, tta=False)
    return len(x) / (time.perf_counter() - t)


def time_singles(v: Variant, x: Any) -> list[float]:
    """Seconds of each one-map call over the maps of `x`."""
    lat = []
    for i in range(len(x)):
        t = time.perf_counter()
        v.model.predict_tensor(x[i:i + 1], batch_size=1, tta=False)
        lat.append(time.perf_counter() - t)
    return lat


def measure_rounds(variants: list[Variant], x_big: Any, x_single: Any, rounds: int, batch: int,
                   say: Printer) -> dict[str, dict[str, list[float]]]:
    """Interleaved rounds: in round r the variants run in their order rotated by r, each timing `x_big` in
    batches of `batch` and every map of `x_single` alone. Per variant: b1024 / b1 maps/s per round and all
    single-map latencies (s)."""
    raw = {v.name: {"big": [], "b1": [], "lat": []} for v in variants}
    for v in variants:  # warm-up (first-call allocations, lazy initialisation)
        set_threads(v)
        time_batches(v, x_big[:batch], batch)
        time_singles(v, x_single[:5])
    for r in range(rounds):
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:
            set_threads(v)
            raw[v.name]["big"].append(time_batches(v, x_big, batch))
            lat = time_singles(v, x_single)
            raw[v.name]["b1"].append(len(lat) / sum(lat))
            raw[v.name]["lat"].extend(lat)
        say(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {d['big'][-1]:.0f}/{d['b1'][-1]:.0f}"
                                                     for n, d in raw.items()) + f" maps/s (b{batch}/b1); load "
            f"{os.getloadavg()[0]:.2f}")
    return raw


def summarise(raw: dict[str, dict[str, list[float]]], families: dict[str, str]) -> dict[str, Any]:
    """Per variant: median maps/s over the rounds at both batch sizes, latency p50 / p99, and the median over
    rounds of its ratio to the baseline of that round (the fastest torch variant by median at that batch size)."""
    torch_names = [n for n in raw if families[n].startswith("torch")]
    base = {}
    for key in ("big", "b1"):
        if torch_names:
            base[key] = max(torch_names, key=lambda n: float(np.median(raw[n][key])))
    rows = {}
    for n, d in raw.items():
        lat = np.asarray(d["lat"]) * 1000
        row = {"family": families[n], "maps_per_s_b1024": round(float(np.median(d["big"])), 1),
               "maps_per_s_b1024_range": [round(float(min(d["big"])), 1), round(float(max(d["big"])), 1)],
               "maps_per_s_b1": round(float(np.median(d["b1"])), 1),
               "latency_ms_p50": round(float(np.percentile(lat, 50)), 3),
               "latency_ms_p99": round(float(np.percentile(lat, 99)), 3), "rounds": len(d["big"]),
               "single_calls": len(lat)}
        for key, col in (("big", "x_best_torch_b1024"), ("b1", "x_best_torch_b1")):
            if key in base:
                b = raw[base[key]][key]
                row[col] = round(float(np.median([a / c for a, c in zip(d[key], b)])), 3)
        if "b1" in base:
            row["latency_p50_x_faster_than_best_torch"] = round(
                float(np.percentile(np.asarray(raw[base["b1"]]["lat"]) * 1000, 50)) / max(row["latency_ms_p50"], 1e-9), 3)
        rows[n] = row
    return {"baseline_b1024": base.get("big"), "baseline_b1": base.get("b1"), "variants": rows}


def val_maps(path: Path | None = None) -> tuple[Any, Path]:
    """The labelled validation maps the accuracy is measured on (shared WM-811K val, else the package sample)."""
    from adrcs.data import load

    src = path or (SHARED_VAL if SHARED_VAL.is_file() else SAMPLE_VAL)
    return load(src).labeled(), src


def accuracy(variants: list[Variant], val: Any, say: Printer) -> dict[str, Any]:
    """Macro-F1 / accuracy of the first variant of each family on `val`, and each one's decision agreement and
    largest probability difference against the torch reference (frozen, else eager)."""
    from sklearn.metrics import f1_score

    firsts: dict[str, Variant] = {}
    for v in variants:
        firsts.setdefault(v.family, v)
    ref_family = "torch-frozen" if "torch-frozen" in firsts else next(iter(firsts))
    model0 = firsts[ref_family].model
    val = val.with_classes(list(model0.class_names))
    y = np.clip(val.labels, 0, None) if val.multilabel else val.labels
    x = model0.prepare(val.maps)
    out: dict[str, Any] = {"n": int(len(val)), "reference": ref_family, "families": {}}
    probs = {}
    for fam, v in firsts.items():
        set_threads(v)
        probs[fam] = v.model.predict_tensor(x, batch_size=1024, tta=False)
    ref_dec = model0.decide(probs[ref_family])
    labels = None if val.multilabel else np.arange(len(model0.class_names))
    for fam, p in probs.items():
        dec = firsts[fam].model.decide(p)
        same = (dec == ref_dec).all(axis=1) if val.multilabel else dec == ref_dec
        acc = float((dec == y).all(axis=1).mean()) if val.multilabel else float((dec == y).mean())
        f1 = float(f1_score(y, dec, average="macro", labels=labels, zero_division=0))
        out["families"][fam] = {"macro_f1": round(f1, 5), "accuracy": round(acc, 5),
                                "agreement_with_reference": round(float(same.mean()), 5),
                                "max_abs_prob_diff": float(np.abs(p - probs[ref_family]).max())}
    f1_ref = out["families"][ref_family]["macro_f1"]
    for fam, d in out["families"].items():
        d["macro_f1_change_points"] = round(100 * (d["macro_f1"] - f1_ref), 3)
    say("accuracy on %d val maps: " % len(val) + ", ".join(
        f"{f} macro-F1 {d['macro_f1']:.4f} ({d['macro_f1_change_points']:+.2f} pts, agreement "
        f"{100 * d['agreement_with_reference']:.2f} %)" for f, d in out["families"].items()))
    return out


def openvino_note() -> str:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return ("skipped: the openvino package is not installed and is not in this project's offline package "
                "mirror (not pip-installable offline)")
    return "openvino imports, but no OpenVINO variant is implemented in this benchmark yet"


def gpu_note() -> str:
    import onnxruntime as ort
    import torch

    providers = ort.get_available_providers()
    return (f"not measured: no GPU device was lent to this task (torch.cuda.is_available() = "
            f"{torch.cuda.is_available()}; onnxruntime providers: {', '.join(providers)}; CUDA execution provider "
            f"{'present' if 'CUDAExecutionProvider' in providers else 'absent'})")


def runtime_part(run: Path, args: argparse.Namespace, say: Printer) -> dict[str, Any]:
    from adrcs.deploy.export_onnx import read_metadata

    variants = build_variants(run, list(args.variants), say)
    val, src = val_maps(args.val)
    say(f"runtime: {len(variants)} variants, {args.rounds} rounds, val maps from {src}")
    prep = variants[0].model
    n_big = min(args.big_maps, len(val))
    raw_maps = val.maps[:n_big]
    t = time.perf_counter()
    x_big = prep.prepare(raw_maps)
    resize_s = time.perf_counter() - t
    x_single = x_big[:args.single_maps]
    raw = measure_rounds(variants, x_big, x_single, args.rounds, 1024, say)
    res = summarise(raw, {v.name: v.family for v in variants})
    res["resize_maps_per_s"] = round(n_big / resize_s, 1)
    res["accuracy"] = accuracy(variants, val, say)
    res.update({"maps_b1024_per_round": int(n_big), "single_maps_per_round": int(len(x_single)), "val": str(src),
                "int8_export_report": (read_metadata(run) or {}).get("int8"), "openvino": openvino_note(),
                "gpu": gpu_note(), "threads_available": os.cpu_count()})
    return res
