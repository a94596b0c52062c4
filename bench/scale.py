"""Scale benchmark (issue 20, item 7): PyTorch vs ONNX Runtime vs ONNX INT8, Ray scoring, the service with ONNX.

Parts (``--parts``, in this order by default):

runtime
    maps/s at batch 1 and batch 1024 and single-map latency (p50 / p99) of every inference path, measured end to
    end from the prepared uint8 maps (N, S, S) to probabilities (``predict_tensor``, no TTA; the trust layer's
    temperature included where the model has one, as predict does): PyTorch eager and the frozen TorchScript
    `serve` uses (`Pipeline.freeze`), each at 1 and 2 threads; ONNX Runtime fp32 and INT8 (``adrcs export
    --int8``) at 1 and 2 intra-op threads, and with thread spinning off (``-nospin``; on a shared machine a
    spinning worker thread burns a core another process wants). The variants run in interleaved rounds (the
    order rotated each round), so each ratio is the median of ratios measured seconds apart: fair on a machine
    whose load changes. The baseline is the fastest PyTorch path at that batch size (normally the frozen
    TorchScript at its best thread count). Resizing raw maps to the model's grid is the same numpy code for every
    path and is reported apart. Accuracy: macro-F1, accuracy and decision agreement of ONNX fp32 and INT8
    against PyTorch on the validation maps (../shared/data/wm811k/val_data.pkl.xz when present, else the
    package's sample val).
ray
    `adrcs predict --engine ray` (bench/scale_ray.py's steps) for each ``--ray-workers`` count on
    ``--ray-maps`` replicated sample maps (default 1,000,000), with a progress line every 30 s; every row of the
    shards is checked against local ``adrcs predict`` (same runtime). Resumable: each worker count's row is saved
    in bench/results/scale.json as soon as it is done, and a rerun with the same settings skips it
    (``--redo-ray`` measures again); the map files are written once under bench/runs/scale_ray_maps/.
service
    ``adrcs serve --runtime torch|onnx|onnx-int8`` under bench/service.py's raw load generator (single-map
    requests from 16 clients, 256-map requests from 4 clients), ``--service-rounds`` rounds alternating the
    runtimes; maps/s, client p50 / p99 latency and the server's CPU milliseconds per request.

Every part writes its section into bench/results/NAME.json (default scale) when it ends, keeping the sections of
earlier runs that this one did not measure, and NAME.md is rebuilt from the whole record. Load averages are
recorded at each part's start and end (the machine may be shared: read the ratios, not only the absolute maps/s).

    nice -n 19 .venv/bin/python bench/scale.py --model bench/runs/scale_ffn_wm811k          # everything
    nice -n 19 .venv/bin/python bench/scale.py --parts runtime service --name scale_quick     # no Ray
    nice -n 19 .venv/bin/python bench/scale.py --parts ray --ray-maps 20000 --name scale_quick

Without --model the default ffn (configs/wm811k_ffn.yaml) is trained briefly on the package samples into
bench/runs/scale_ray_ffn (bench/scale_ray.py's default run); its macro-F1 is then low, so the INT8 accuracy
change is better read on a model trained on the real data, e.g.
``adrcs train -c configs/wm811k_ffn.yaml --train ../shared/data/wm811k/train_29_split.pkl.xz --epochs 6 --out
bench/runs/scale_ffn_wm811k``.

No GPU figures: this benchmark records the CUDA execution provider as not measured unless onnxruntime has it and a
GPU is present (neither was the case when it was written). OpenVINO is used only when the ``openvino`` package
imports (it is not in this project's offline package mirror); otherwise the record says it was skipped.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_ray  # noqa: E402  (numpy only at import: Ray's path must be set before pandas is imported)
from scale_runtime import VARIANTS, gpu_note, parse_variant, runtime_part, summarise  # noqa: E402,F401

REPO = scale_ray.REPO
RESULTS = REPO / "bench" / "results"
PARTS = ("runtime", "service", "ray")
GOAL_MAPS_S = 8000  # the goal for the default model at batch 1024 on 2 cores
Printer = Callable[[str], None]


# ----------------------------------------------------------------------------------------------- machine load
def uptime() -> str:
    """`uptime`'s line (load averages over 1, 5, 15 minutes)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def load_mark(when: str) -> dict[str, Any]:
    return {"when": when, "time": time.strftime("%H:%M:%S"), "load_avg": [round(x, 2) for x in os.getloadavg()],
            "uptime": uptime()}


# ----------------------------------------------------------------------------------------------- service part
def _bench_service() -> Any:
    import service  # bench/service.py

    return service


def service_part(run: Path, args: argparse.Namespace, say: Printer) -> dict[str, Any]:
    """`adrcs serve --runtime R` for each runtime under the raw load generator, rounds alternating the order."""
    svc = _bench_service()
    maps = svc.load_maps(2000)
    scenarios = [("single_map", 1, args.single_clients), (f"batch_{args.batch_maps}", args.batch_maps, args.batch_clients)]
    bodies = {name: svc.bodies_for(maps, per) for name, per, _ in scenarios}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {rt: {s[0]: [] for s in scenarios} for rt in args.service_runtimes}
    for r in range(args.service_rounds):
        order = list(args.service_runtimes) if r % 2 == 0 else list(reversed(args.service_runtimes))
        for rt in order:
            tmp = Path(tempfile.mkdtemp(prefix="adrcs-bench-scale-"))
            port, token_file, log = svc.free_port(), tmp / "admin.token", tmp / "server.log"
            url = f"http://127.0.0.1:{port}"
            proc = svc.start_server(run, f"sqlite:///{tmp / 'service.db'}", port, token_file, log,
                                    extra=["--runtime", rt])
            try:
                token = token_file.read_text().strip()
                asyncio.run(svc.drive(url, token, svc.bodies_for(maps, 1, 8), 1, 4, 2.0))  # warm-up
                for name, per, clients in scenarios:
                    before, batches, cpu0 = svc.server_histogram(url), svc.batch_totals(url), svc.process_cpu_s(proc.pid)
                    res = asyncio.run(svc.drive(url, token, bodies[name], per, clients, args.service_duration))
                    cpu1 = svc.process_cpu_s(proc.pid)
                    res.update(svc.server_side(before, svc.server_histogram(url)))
                    res.update(svc.batch_side(batches, svc.batch_totals(url)))
                    if cpu0 is not None and cpu1 is not None and res["requests_ok"]:
                        res["server_cpu_ms_per_request"] = round(1000 * (cpu1 - cpu0) / res["requests_ok"], 3)
                    res["load_avg_1min"] = round(os.getloadavg()[0], 2)
                    runs[rt][name].append(res)
                    say(f"service round {r + 1} {rt} {name}: {res['maps_per_s']} maps/s, p50 {res['latency_ms_p50']} "
                        f"ms, p99 {res['latency_ms_p99']} ms, errors {res['errors']}")
            finally:
                proc.kill()
                proc.wait()
                runtime_line = [ln for ln in log.read_text(errors="replace").splitlines() if "runtime" in ln][:1]
                shutil.rmtree(tmp, ignore_errors=True)
            if runtime_line:
                say(f"server log: {runtime_line[0][:200]}")
    return {"runtimes": service_summary(runs), "rounds": args.service_rounds, "seconds_per_scenario":
            args.service_duration, "load_generator": "raw (bench/service.py)", "runs": runs}


def service_summary(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Medians over the rounds per runtime and scenario, with the maps/s ratio to torch where torch ran."""
    out: dict[str, Any] = {}
    for rt, scen in runs.items():
        out[rt] = {}
        for name, rs in scen.items():
            if not rs:
                continue

            def med(k: str) -> float | None:
                vals = [x[k] for x in rs if x.get(k) is not None]
                return round(float(np.median(vals)), 3) if vals else None

            out[rt][name] = {"maps_per_s": med("maps_per_s"), "latency_ms_p50": med("latency_ms_p50"),
                             "latency_ms_p99": med("latency_ms_p99"),
                             "server_cpu_ms_per_request": med("server_cpu_ms_per_request"),
                             "mean_batch_size": med("mean_batch_size"), "errors": int(sum(x["errors"] for x in rs)),
                             "load_avg_1min": med("load_avg_1min")}
    if "torch" in out:
        for rt, scen in out.items():
            for name, d in scen.items():
                t = out["torch"].get(name, {}).get("maps_per_s")
                d["x_torch_maps_per_s"] = round(d["maps_per_s"] / t, 3) if t else None
    return out


# ----------------------------------------------------------------------------------------------- ray part
def ray_part(run: Path, args: argparse.Namespace, record: dict[str, Any], save: Callable[[], None],
             say: Printer) -> dict[str, Any]:
    """Each worker count's row, saved as it is done; rows of an earlier run with the same settings are kept."""
    where = scale_ray.ensure_ray()
    config = {"maps": args.ray_maps, "maps_per_file": args.maps_per_file, "model": str(run),
              "runtime": args.ray_runtime or "auto"}
    sec = record.get("ray") or {}
    if sec.get("config") != config or args.redo_ray:
        sec = {"config": config, "rows": []}
    sec["ray_from"] = where
    record["ray"] = sec
    maps_dir, files = scale_ray.maps_folder(args.ray_maps, args.maps_per_file, say)
    for w in args.ray_workers:
        if any(r["workers"] == w for r in sec["rows"]):
            say(f"ray: workers {w} already measured for these settings (--redo-ray to measure again)")
            continue
        out = REPO / "bench" / "runs" / f"scale_ray_out_w{w}"
        say(f"ray: {args.ray_maps:,} maps, {w} worker(s); {uptime()}")
        row = scale_ray.score(run, maps_dir, w, out, args.ray_maps, args.ray_runtime, say=say)
        row["check"] = scale_ray.check_against_local(run, files[0], out, row["runtime"], say)
        row["uptime_after"] = uptime()
        say(f"ray: workers {w}: {row['maps_per_s']:,} maps/s ({row['maps_per_s_per_worker']:,} per worker); equals "
            f"local predict: {row['check']['equal']} ({row['check']['rows_compared']:,} rows)")
        shutil.rmtree(out, ignore_errors=True)
        sec["rows"] = scale_ray.scaled(sorted(sec["rows"] + [row], key=lambda r: r["workers"]))
        save()
    return sec


# ----------------------------------------------------------------------------------------------- targets + report
def targets(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets against what the record holds (met: True / False, None when not measured)."""
    out = []
    rt = record.get("runtime")
    if rt:
        v = rt["variants"]
        fams = {n: d["family"] for n, d in v.items()}
        acc = rt.get("accuracy", {}).get("families", {})
        onnx = [n for n in v if fams[n].startswith("onnx")]
        ok_acc = [n for n in onnx if acc.get(fams[n], {}).get("macro_f1_change_points", -1e9) >= -0.5]
        if onnx:
            b1 = max(onnx, key=lambda n: v[n].get("x_best_torch_b1", 0))
            fp32 = [n for n in onnx if fams[n] == "onnx"]
            f1 = max(fp32, key=lambda n: v[n].get("x_best_torch_b1", 0)) if fp32 else None
            p50 = v[b1].get("latency_p50_x_faster_than_best_torch")
            out.append({"target": "ONNX >= 3x the fastest PyTorch path at batch 1",
                        "measured": f"{v[b1].get('x_best_torch_b1')}x in maps/s ({b1}: {v[b1]['maps_per_s_b1']:,} maps/s vs "
                                    f"{rt['baseline_b1']}: {v[rt['baseline_b1']]['maps_per_s_b1']:,})"
                                    + (f", {p50}x by p50 latency" if p50 else "")
                                    + (f"; fp32 {f1}: {v[f1].get('x_best_torch_b1')}x" if f1 and f1 != b1 else ""),
                        "met": bool(v[b1].get("x_best_torch_b1", 0) >= 3)})
        if ok_acc:
            big = max(ok_acc, key=lambda n: v[n].get("x_best_torch_b1024", 0))
            out.append({"target": ">= 1.5x at batch 1024 (best runtime option, <= 0.5 macro-F1 points lost)",
                        "measured": f"{v[big].get('x_best_torch_b1024')}x ({big}: {v[big]['maps_per_s_b1024']:,} maps/s "
                                    f"vs {rt['baseline_b1024']}: {v[rt['baseline_b1024']]['maps_per_s_b1024']:,}; "
                                    f"macro-F1 {acc[fams[big]]['macro_f1_change_points']:+.2f} points)",
                        "met": bool(v[big].get("x_best_torch_b1024", 0) >= 1.5)})
            best = max(ok_acc, key=lambda n: v[n]["maps_per_s_b1024"])
            out.append({"target": f"{GOAL_MAPS_S:,} maps/s on 2 cores (default model, batch 1024)",
                        "measured": f"{v[best]['maps_per_s_b1024']:,} maps/s ({best})",
                        "met": bool(v[best]["maps_per_s_b1024"] >= GOAL_MAPS_S)})
        int8 = acc.get("onnx-int8")
        if int8:
            out.append({"target": "INT8 loses <= 0.5 macro-F1 points", "measured":
                        f"{int8['macro_f1_change_points']:+.2f} points, agreement "
                        f"{100 * int8['agreement_with_reference']:.2f} %",
                        "met": bool(int8["macro_f1_change_points"] >= -0.5)})
    ray = record.get("ray")
    if ray and ray.get("rows"):
        rows = ray["rows"]
        n = ray["config"]["maps"]
        done = all(r["maps"] == n for r in rows) and n >= 1_000_000
        equal = all(r.get("check", {}).get("equal") for r in rows)
        out.append({"target": "Ray scoring of 1 M maps completes with progress and equals local predict",
                    "measured": f"{n:,} maps, workers {[r['workers'] for r in rows]}, all rows scored: "
                                f"{all(r['maps'] == n for r in rows)}, equal to local predict: {equal}",
                    "met": bool(done and equal)})
        if len(rows) > 1:
            out.append({"target": "report maps/s per worker and 1 -> 2 worker scaling (no threshold)",
                        "measured": ", ".join(f"{r['workers']} w: {r['maps_per_s_per_worker']:,} maps/s per worker"
                                              for r in rows) + f"; scaling {rows[-1]['scaling_vs_first']}x",
                        "met": None})
    return out


def markdown(record: dict[str, Any]) -> str:
    L = [f"# Scale benchmark (issue 20, item 7): {record.get('date')}", ""]
    m = record.get("machine", {})
    L += [f"Machine: {record.get('cpus')} CPU cores, torch {m.get('torch')}, onnxruntime {record.get('onnxruntime')}, "
          f"Python {m.get('python')}. GPU: {record.get('gpu', 'not measured')}.", ""]
    L += ["Load during the runs (the machine is shared: 1-minute load average at each part's start / end):", ""]
    for mark in record.get("loads", []):
        L.append(f"- {mark['when']} ({mark['time']}): load {mark['load_avg']}")
    L.append("")
    rt = record.get("runtime")
    if rt:
        L += [f"## Inference paths: uint8 maps -> probabilities, no TTA (model {record['runtime_model']})", "",
              f"{rt['rounds'] if 'rounds' in rt else next(iter(rt['variants'].values()))['rounds']} interleaved rounds; "
              f"per round {rt['maps_b1024_per_round']:,} maps in batches of 1024 and {rt['single_maps_per_round']} "
              f"single-map calls per path; medians over rounds; ratios = median of the per-round ratios to the fastest "
              f"PyTorch path at that batch size (batch 1: {rt['baseline_b1']}, batch 1024: {rt['baseline_b1024']}). "
              f"Resizing raw maps to the grid (same for every path): {rt['resize_maps_per_s']:,} maps/s.", "",
              "| path | threads | maps/s batch 1 | x best torch (b1) | maps/s batch 1024 | x best torch (b1024) | "
              "latency p50 ms | latency p99 ms | p50 latency x best torch |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for n, d in rt["variants"].items():
            L.append(f"| {n} | {parse_variant(n)[1]} | {d['maps_per_s_b1']:,} | {d.get('x_best_torch_b1')} | "
                     f"{d['maps_per_s_b1024']:,} | {d.get('x_best_torch_b1024')} | {d['latency_ms_p50']} | "
                     f"{d['latency_ms_p99']} | {d.get('latency_p50_x_faster_than_best_torch')} |")
        L += ["", "maps/s at batch 1 = single-map calls / their total time (so it counts the calls a loaded machine "
              "stalls); the last column is the baseline's p50 latency over the path's (the typical call)."]
        acc = rt.get("accuracy")
        if acc:
            L += ["", f"Accuracy on {acc['n']:,} validation maps ({rt['val']}), reference {acc['reference']}:", "",
                  "| path | macro-F1 | change (points) | accuracy | decisions equal to reference | max abs prob diff |",
                  "| --- | --- | --- | --- | --- | --- |"]
            for f, d in acc["families"].items():
                L.append(f"| {f} | {d['macro_f1']:.4f} | {d['macro_f1_change_points']:+.2f} | {d['accuracy']:.4f} | "
                         f"{100 * d['agreement_with_reference']:.2f} % | {d['max_abs_prob_diff']:.2e} |")
        L += ["", f"OpenVINO: {rt.get('openvino')}.", ""]
    ray = record.get("ray")
    if ray and ray.get("rows"):
        c = ray["config"]
        L += [f"## Ray scoring (`adrcs predict --engine ray`): {c['maps']:,} replicated sample maps "
              f"({c['maps_per_file']:,} per npz file), model {c['model']}", "",
              "| workers | runtime | maps | seconds | maps/s | maps/s per worker | scaling vs 1 | load avg (mean / max) "
              "| equals local predict |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in ray["rows"]:
            k = r.get("check", {})
            L.append(f"| {r['workers']} | {r['runtime']} | {r['maps']:,} | {r['seconds']} | {r['maps_per_s']:,} | "
                     f"{r['maps_per_s_per_worker']:,} | {r['scaling_vs_first']} | {r.get('load_avg_1min_mean')} / "
                     f"{r.get('load_avg_1min_max')} | {k.get('equal')} ({k.get('rows_compared', 0):,} rows; "
                     f"{k.get('predicted_differ')} classes differ; max prob diff {k.get('max_abs_prob_diff', 0):.1e}) |")
        L.append("")
    svc = record.get("service")
    if svc:
        L += [f"## Service (`adrcs serve --runtime ...`, model {record.get('service_model')}): raw load generator, "
              f"{svc['rounds']} round(s) of {svc['seconds_per_scenario']} s per scenario, medians", "",
              "| runtime | scenario | maps/s | x torch | p50 ms | p99 ms | server CPU ms/request | mean micro-batch | "
              "errors |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for rt_name, scen in svc["runtimes"].items():
            for name, d in scen.items():
                L.append(f"| {rt_name} | {name} | {d['maps_per_s']:,} | {d.get('x_torch_maps_per_s')} | "
                         f"{d['latency_ms_p50']} | {d['latency_ms_p99']} | {d['server_cpu_ms_per_request']} | "
                         f"{d['mean_batch_size']} | {d['errors']} |")
        L.append("")
    tg = targets(record)
    if tg:
        L += ["## Targets", "", "| target | measured | met |", "| --- | --- | --- |"]
        for t in tg:
            met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
            L.append(f"| {t['target']} | {t['measured']} | {met} |")
        L.append("")
    if record.get("note"):
        L += [record["note"], ""]
    return "\n".join(L)


def load_record(name: str) -> dict[str, Any]:
    p = RESULTS / f"{name}.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def save_record(name: str, record: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    record["targets"] = targets(record)
    tmp = RESULTS / f".{name}.json.tmp"
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(RESULTS / f"{name}.json")
    (RESULTS / f"{name}.md").write_text(markdown(record) + "\n")


def without_parts(argv: list[str]) -> list[str]:
    """Command-line arguments without ``--parts`` and its values (and without ``--model``: the child is told)."""
    out, skip = [], False
    for a in argv:
        if a in ("--parts", "--model"):
            skip = True
            continue
        if a.startswith(("--parts=", "--model=")):
            continue
        if skip and not a.startswith("--"):
            continue
        skip = False
        out.append(a)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="run folder (default: the default ffn trained briefly "
                                                               "on the package samples, bench/runs/scale_ray_ffn)")
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the default run when it is trained")
    ap.add_argument("--name", default="scale", help="bench/results/NAME.{json,md}")
    ap.add_argument("--note", default=None, help="a paragraph added under the tables")
    g = ap.add_argument_group("runtime")
    g.add_argument("--variants", nargs="+", default=list(VARIANTS), help="paths to time: " + ", ".join(VARIANTS)
                   + " (also -basic: basic ONNX graph optimisation)")
    g.add_argument("--rounds", type=int, default=5)
    g.add_argument("--big-maps", type=int, default=4096, help="maps per round timed in batches of 1024")
    g.add_argument("--single-maps", type=int, default=200, help="single-map calls per round")
    g.add_argument("--val", type=Path, default=None, help="labelled val file (default: shared WM-811K val, else the sample)")
    g = ap.add_argument_group("ray")
    g.add_argument("--ray-maps", type=int, default=1_000_000)
    g.add_argument("--ray-workers", type=int, nargs="+", default=[1, 2])
    g.add_argument("--maps-per-file", type=int, default=10_000)
    g.add_argument("--ray-runtime", default=None, help="torch | onnx | onnx-int8 (default: onnx where it exports)")
    g.add_argument("--redo-ray", action="store_true", help="measure worker counts already in the record again")
    g = ap.add_argument_group("service")
    g.add_argument("--service-runtimes", nargs="+", default=["torch", "onnx", "onnx-int8"])
    g.add_argument("--service-rounds", type=int, default=2)
    g.add_argument("--service-duration", type=float, default=15.0, help="seconds per scenario")
    g.add_argument("--single-clients", type=int, default=16)
    g.add_argument("--batch-clients", type=int, default=4)
    g.add_argument("--batch-maps", type=int, default=256)
    args = ap.parse_args()
    for n in args.variants:
        parse_variant(n)
    if args.parts == ["ray"]:
        # before pandas is imported: pandas decides at import whether pyarrow (which Ray brings) is there
        scale_ray.ensure_ray()

    import onnxruntime
    from common import machine

    def say(s: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {s}", flush=True)

    run = (args.model or scale_ray.default_run(args.epochs)).resolve()
    record = load_record(args.name)
    record.update({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "machine": machine(),
                   "onnxruntime": onnxruntime.__version__, "gpu": gpu_note()})
    record.setdefault("commands", {}).update({p: " ".join(["python", *sys.argv]) for p in args.parts})
    if args.note:
        record["note"] = args.note
    if set(args.parts) == set(PARTS) or "loads" not in record:
        record["loads"] = []
    record["loads"] = [m for m in record["loads"] if m["when"].split(" ")[0] not in args.parts]

    def save() -> None:
        save_record(args.name, record)

    for part in [p for p in PARTS if p in args.parts]:
        record["loads"].append(load_mark(f"{part} start"))
        say(f"== {part} ({record['loads'][-1]['uptime']})")
        if part == "runtime":
            record["runtime"] = runtime_part(run, args, say)
            record["runtime"]["rounds"] = args.rounds
            record["runtime_model"] = str(run)
        elif part == "service":
            record["service"] = service_part(run, args, say)
            record["service_model"] = str(run)
        elif args.parts == ["ray"]:
            ray_part(run, args, record, save, say)
        else:  # in a child process: Ray (and the pyarrow it brings) stays out of this one and the service's
            save()
            cmd = [sys.executable, str(Path(__file__).resolve()), *without_parts(sys.argv[1:]), "--parts", "ray",
                   "--model", str(run)]
            say("ray part in a child process: " + " ".join(cmd[1:]))
            code = subprocess.run(cmd).returncode
            record = load_record(args.name)
            if code:
                raise SystemExit(f"the ray part failed (exit {code}); rerun with --parts ray to continue")
            continue
        record["loads"].append(load_mark(f"{part} end"))
        save()
        say(f"== {part} done; wrote {RESULTS / (args.name + '.md')}")
    ray = record.get("ray")
    if "ray" in args.parts and ray and args.ray_maps >= 1_000_000 and len(ray.get("rows", [])) == len(args.ray_workers):
        scale_ray.write("scale_ray", {"maps": args.ray_maps, "maps_per_file": args.maps_per_file, "model": str(run),
                                      "rows": ray["rows"], "cpus": os.cpu_count(), "date": record["date"],
                                      "note": "Measured by bench/scale.py (see bench/results/scale.md for the load)."})
    print(markdown(record))


if __name__ == "__main__":
    main()
