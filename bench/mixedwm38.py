"""MixedWM38 benchmark: train the multi-label `ffn` on all shared train splits, report val
exact-match accuracy, macro-F1, per-label F1, training time and inference speed.

    python bench/mixedwm38.py [--data-dir ../shared/data/mixedwm38] [--epochs N]

Writes bench/results/mixedwm38_ffn.json and prints a table.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, run_benchmark  # noqa: E402


def table_rows(model: str, rec: dict) -> list[dict]:
    """The plain and the TTA row of one model's benchmark record."""
    rows = []
    for label, r in ((model, rec["report"]), (f"{model} + TTA (8 views)", rec["report_tta"])):
        row = {"model": label, "input": rec["input_size"], "params": rec["params"], "exact_match": r["exact_match"],
               "macro_f1": r["macro_f1"], "train_min": rec["train_seconds"] / 60,
               "cpu_maps_s_b1024": rec["speed"]["cpu"]["maps_per_s_batch1024"] if r is rec["report"] else None}
        row.update({f"F1 {c}": r["per_label"][c]["f1"] for c in r["class_names"]})
        rows.append(row)
    return rows


def main() -> None:
    args, train_paths, val_paths = bench_args(__doc__, "mixedwm38", ["ffn"])
    print(run_benchmark("mixedwm38", args, train_paths, val_paths, table_rows))


if __name__ == "__main__":
    main()
