"""MixedWM38 benchmark: train the multi-label `ffn` on all shared train splits, report val
exact-match accuracy, macro-F1, per-label F1, training time and inference speed.

    python bench/mixedwm38.py [--data-dir ../shared/data/mixedwm38] [--epochs N]

Writes bench/results/mixedwm38_ffn.json and prints a table.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, bench_args, machine, run_model, write_result  # noqa: E402

from adrcs.report.tables import markdown_table  # noqa: E402


def main() -> None:
    args, train_paths, val_paths = bench_args(__doc__, "mixedwm38", ["ffn"])
    rows = []
    for model in args.models:
        name = f"mixedwm38_{model}{args.tag}"
        rec = run_model(f"mixedwm38_{model}.yaml", train_paths, val_paths, REPO / "bench" / "runs" / name,
                        {"epochs": args.epochs, "device": args.device})
        rec["machine"] = machine()
        print(f"wrote {write_result(name, rec)}")
        r = rec["report"]
        row = {"model": model, "input": rec["input_size"], "params": rec["params"], "exact_match": r["exact_match"],
               "macro_f1": r["macro_f1"], "train_min": rec["train_seconds"] / 60,
               "cpu_maps_s_b1024": rec["speed"]["cpu"]["maps_per_s_batch1024"]}
        row.update({f"F1 {c}": r["per_label"][c]["f1"] for c in r["class_names"]})
        rows.append(row)
        rt = rec["report_tta"]
        tta_row = {k: None for k in row}
        tta_row.update({"model": f"{model} + TTA (8 views)", "input": rec["input_size"], "params": rec["params"],
                        "exact_match": rt["exact_match"], "macro_f1": rt["macro_f1"], "train_min": rec["train_seconds"] / 60})
        tta_row.update({f"F1 {c}": rt["per_label"][c]["f1"] for c in rt["class_names"]})
        rows.append(tta_row)
    md = markdown_table(rows, list(rows[0]))
    print(md)
    (REPO / "bench" / "results" / f"mixedwm38{args.tag}.md").write_text(md + "\n")


if __name__ == "__main__":
    main()
