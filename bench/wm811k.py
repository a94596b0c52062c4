"""WM-811K benchmark: train `ffn` and `cnn` on all shared train splits, select on val, report
val accuracy, macro-F1, per-class F1 (hard classes highlighted), training time and inference speed.

    python bench/wm811k.py [--data-dir ../shared/data/wm811k] [--models ffn cnn] [--epochs N]

Writes bench/results/wm811k_<model>.json and prints a table.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, run_benchmark  # noqa: E402

def table_rows(model: str, rec: dict) -> list[dict]:
    """The plain and the TTA row of one model's benchmark record."""
    r, rt = rec["report"], rec["report_tta"]
    row = {"model": model, "input": rec["input_size"], "params": rec["params"], "val_acc": r["accuracy"],
           "val_macro_f1": r["macro_f1"], "train_min": rec["train_seconds"] / 60,
           "cpu_maps_s_b1024": rec["speed"]["cpu"]["maps_per_s_batch1024"],
           "cpu_e2e_maps_s": rec["speed"]["cpu"]["maps_per_s_batch1024_end_to_end"],
           "cpu_b1_ms": rec["speed"]["cpu"]["latency_batch1_ms_p50"]}
    row.update({f"F1 {c}": r["per_class"][c]["f1"] for c in r["class_names"]})
    if "gpu" in rec["speed"]:
        row["gpu_maps_s_e2e"] = rec["speed"]["gpu"]["maps_per_s_batch8192_end_to_end"]
    tta_row = {k: None for k in row}
    tta_row.update({"model": f"{model} + TTA (8 views)", "input": rec["input_size"], "params": rec["params"],
                    "val_acc": rt["accuracy"], "val_macro_f1": rt["macro_f1"], "train_min": rec["train_seconds"] / 60,
                    "cpu_e2e_maps_s": rec["cpu_tta_maps_per_s_end_to_end"]})
    tta_row.update({f"F1 {c}": rt["per_class"][c]["f1"] for c in rt["class_names"]})
    return [row, tta_row]


def main() -> None:
    args, train_paths, val_paths = bench_args(__doc__, "wm811k", ["ffn", "cnn"])
    print(run_benchmark("wm811k", args, train_paths, val_paths, table_rows))


if __name__ == "__main__":
    main()
