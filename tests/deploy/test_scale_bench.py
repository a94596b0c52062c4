"""bench/scale.py and bench/scale_ray.py helpers (issue 20's scale benchmark): variant names, the interleaved-round
summary and its baseline, the Ray-vs-local row comparison, the child process's arguments, the targets table, and
(slow) the runtime part end to end on a tiny run."""
from __future__ import annotations

import argparse
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def bench_scale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "scale.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_scale"] = mod  # its dataclass looks its module up while the file runs
    spec.loader.exec_module(mod)
    return mod


def test_variant_names() -> None:
    s = bench_scale()
    assert s.parse_variant("torch-frozen-t2") == ("torch-frozen", 2, set())
    assert s.parse_variant("onnx-int8-t2-nospin") == ("onnx-int8", 2, {"nospin"})
    assert s.parse_variant("onnx-t1-basic") == ("onnx", 1, {"basic"})
    for bad in ("onnx", "torch-t1", "torch-frozen-t1-nospin", "onnx-t2-fast"):
        with pytest.raises(ValueError):
            s.parse_variant(bad)
    for name in s.VARIANTS:
        s.parse_variant(name)


def test_summary_picks_fastest_torch_and_takes_per_round_ratios() -> None:
    s = bench_scale()
    raw = {"torch-frozen-t1": {"big": [100, 200, 100], "b1": [10, 10, 10], "lat": [0.1] * 10},
           "torch-frozen-t2": {"big": [150, 150, 150], "b1": [5, 5, 5], "lat": [0.2] * 10},
           "onnx-t1": {"big": [300, 400, 200], "b1": [40, 30, 20], "lat": [0.025] * 10}}
    fam = {"torch-frozen-t1": "torch-frozen", "torch-frozen-t2": "torch-frozen", "onnx-t1": "onnx"}
    out = s.summarise(raw, fam)
    assert out["baseline_b1024"] == "torch-frozen-t2"  # median 150 > 100
    assert out["baseline_b1"] == "torch-frozen-t1"
    v = out["variants"]["onnx-t1"]
    assert v["maps_per_s_b1024"] == 300 and v["maps_per_s_b1024_range"] == [200, 400]
    assert v["x_best_torch_b1024"] == pytest.approx(2.0)   # median of 300/150, 400/150, 200/150
    assert v["x_best_torch_b1"] == pytest.approx(3.0)      # median of 4, 3, 2
    assert v["latency_ms_p50"] == pytest.approx(25.0)
    assert v["latency_p50_x_faster_than_best_torch"] == pytest.approx(4.0)
    assert out["variants"]["torch-frozen-t2"]["x_best_torch_b1024"] == 1.0


def test_compare_rows() -> None:
    import scale_ray  # on the path once bench/scale.py is loaded

    bench_scale()
    local = pd.DataFrame({"predicted": ["A", "B", "C"], "decision": ["ok", "review", "ok"],
                          "prob_A": [0.9, 0.1, 0.2], "prob_B": [0.1, 0.9, 0.8]})
    rows = pd.DataFrame({"source": ["f0", "f0", "f1", "f1"], "index": [0, 2, 0, 1],
                         "predicted": ["A", "C", "A", "B"], "decision": ["ok", "ok", "ok", "review"],
                         "prob_A": [0.9, 0.2, 0.9, 0.1], "prob_B": [0.1, 0.8, 0.1, 0.9]})
    same = scale_ray.compare_rows(rows, local, ["prob_A", "prob_B"])
    assert same == {"rows_compared": 4, "files": 2, "predicted_differ": 0, "decision_differ": 0,
                    "max_abs_prob_diff": 0.0, "equal": True}
    rows.loc[3, "predicted"], rows.loc[1, "prob_B"] = "A", 0.7
    diff = scale_ray.compare_rows(rows, local, ["prob_A", "prob_B"])
    assert diff["predicted_differ"] == 1 and diff["max_abs_prob_diff"] == pytest.approx(0.1) and not diff["equal"]
    rows.loc[0, "index"] = 7
    assert scale_ray.compare_rows(rows, local, ["prob_A"])["equal"] is False


def test_scaled_and_child_arguments() -> None:
    import scale_ray

    s = bench_scale()
    rows = scale_ray.scaled([{"maps_per_s": 100.0}, {"maps_per_s": 150.0}])
    assert [r["scaling_vs_first"] for r in rows] == [1.0, 1.5]
    argv = ["--parts", "runtime", "ray", "--model", "runs/x", "--ray-maps", "20000", "--parts=ray", "--rounds", "3"]
    assert s.without_parts(argv) == ["--ray-maps", "20000", "--rounds", "3"]


def _record() -> dict:
    variants = {"torch-frozen-t1": {"family": "torch-frozen", "maps_per_s_b1024": 1000.0, "maps_per_s_b1": 400.0,
                                    "x_best_torch_b1024": 1.0, "x_best_torch_b1": 1.0, "latency_ms_p50": 2.0,
                                    "latency_ms_p99": 5.0, "rounds": 3},
                "onnx-int8-t1": {"family": "onnx-int8", "maps_per_s_b1024": 2000.0, "maps_per_s_b1": 1300.0,
                                 "x_best_torch_b1024": 1.8, "x_best_torch_b1": 3.2, "latency_ms_p50": 0.6,
                                 "latency_ms_p99": 2.0, "rounds": 3}}
    acc = {"n": 100, "reference": "torch-frozen", "families": {
        "torch-frozen": {"macro_f1": 0.9, "accuracy": 0.95, "agreement_with_reference": 1.0, "max_abs_prob_diff": 0.0,
                         "macro_f1_change_points": 0.0},
        "onnx-int8": {"macro_f1": 0.897, "accuracy": 0.95, "agreement_with_reference": 0.99,
                      "max_abs_prob_diff": 0.01, "macro_f1_change_points": -0.3}}}
    return {"date": "today", "cpus": 2, "machine": {}, "loads": [], "runtime_model": "run",
            "runtime": {"variants": variants, "baseline_b1": "torch-frozen-t1", "baseline_b1024": "torch-frozen-t1",
                        "resize_maps_per_s": 5000.0, "maps_b1024_per_round": 4096, "single_maps_per_round": 200,
                        "accuracy": acc, "val": "val.pkl", "rounds": 3},
            "ray": {"config": {"maps": 1_000_000, "maps_per_file": 10_000, "model": "run", "runtime": "auto"},
                    "rows": [{"workers": 1, "runtime": "onnx", "maps": 1_000_000, "seconds": 1000.0, "maps_per_s": 1000.0,
                              "maps_per_s_per_worker": 1000.0, "scaling_vs_first": 1.0,
                              "check": {"equal": True, "rows_compared": 1_000_000, "max_abs_prob_diff": 0.0}},
                             {"workers": 2, "runtime": "onnx", "maps": 1_000_000, "seconds": 600.0, "maps_per_s": 1666.7,
                              "maps_per_s_per_worker": 833.3, "scaling_vs_first": 1.667,
                              "check": {"equal": True, "rows_compared": 1_000_000, "max_abs_prob_diff": 0.0}}]}}


def test_targets_and_markdown() -> None:
    s = bench_scale()
    rec = _record()
    met = {t["target"][:20]: t["met"] for t in s.targets(rec)}
    assert met["ONNX >= 3x the faste"] is True
    assert met[">= 1.5x at batch 102"] is True
    assert met["8,000 maps/s on 2 co"] is False
    assert met["INT8 loses <= 0.5 ma"] is True
    assert met["Ray scoring of 1 M m"] is True
    rec["runtime"]["accuracy"]["families"]["onnx-int8"]["macro_f1_change_points"] = -0.8  # too much lost
    assert not any(t["target"].startswith(">= 1.5x") for t in s.targets(rec))
    rec["ray"]["rows"][1]["check"]["equal"] = False
    assert {t["target"][:20]: t["met"] for t in s.targets(rec)}["Ray scoring of 1 M m"] is False
    md = s.markdown(rec)
    assert "| onnx-int8-t1 | 1 | 1,300.0 | 3.2 | 2,000.0 | 1.8 | 0.6 | 2.0 | None |" in md
    assert "## Ray scoring" in md and "## Targets" in md


def test_service_summary_ratio() -> None:
    s = bench_scale()
    run = {"client": "raw", "errors": 0, "latency_ms_p50": 10.0, "latency_ms_p99": 20.0}
    runs = {"torch": {"single_map": [dict(run, maps_per_s=100.0), dict(run, maps_per_s=300.0)]},
            "onnx": {"single_map": [dict(run, maps_per_s=300.0), dict(run, maps_per_s=500.0)]}}
    out = s.service_summary(runs)
    assert out["torch"]["single_map"]["maps_per_s"] == 200.0
    assert out["onnx"]["single_map"]["x_torch_maps_per_s"] == 2.0


@pytest.mark.slow
def test_runtime_part_on_a_tiny_run(tmp_path: Path) -> None:
    from helpers.runs import train_wafer_run

    s = bench_scale()
    run = train_wafer_run(tmp_path)
    args = argparse.Namespace(variants=["torch-frozen-t1", "torch-eager-t1", "onnx-t1", "onnx-int8-t1-nospin"],
                              rounds=2, big_maps=40, single_maps=3, val=tmp_path / "wm0_1.pkl.xz")
    res = s.runtime_part(run, args, say=lambda m: None)
    v = res["variants"]
    assert set(v) == set(args.variants) and all(d["rounds"] == 2 and d["single_calls"] == 6 for d in v.values())
    assert res["baseline_b1024"] in ("torch-frozen-t1", "torch-eager-t1")
    fams = res["accuracy"]["families"]
    assert fams["onnx"]["agreement_with_reference"] == 1.0 and fams["onnx"]["max_abs_prob_diff"] < 1e-4
    assert set(fams) == {"torch-frozen", "torch-eager", "onnx", "onnx-int8"}
    assert np.isfinite(res["resize_maps_per_s"]) and "int8" in res["int8_export_report"]["onnx"]
