"""DeepPCB defect detection benchmark (issue 6).

Protocol: DeepPCB trainval (1,000 image pairs) minus a held-back 20 % (fixed seed 0, stratified
on each image's dominant defect class). Each variant trains on the other 80 % with
`configs/deeppcb_detect.yaml` (the model is selected on a further 10 % of those 80 %), and is
then scored once on the held-back part: mAP@0.5, mAP@0.5:0.95, per-class AP, precision /
recall / F1 at the config's score threshold, and images/s at 640x640 on CPU (and GPU when present).

Variants (`--variants`):
  template        test + template + |difference| channels (the reference-aware detector)
  no_template     the test image alone
  template_gan    as `template`, plus synthetic defects pasted into defect-free regions
                  (`paste_defects`, a conditional GAN fitted on the training part's defect crops)
  no_template_gan as `no_template`, plus the pasted synthetic defects

Results: bench/results/deeppcb<tag>.json (one record per variant) and deeppcb<tag>.md; run folders
in bench/runs/deeppcb/<variant><tag>/. Example:

    python bench/deeppcb.py --variants template no_template template_gan
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine, write_result  # noqa: E402

from adrcs.api_images import evaluate_detection, train_detection  # noqa: E402
from adrcs.config import load_config  # noqa: E402
from adrcs.data.image_formats import load_images  # noqa: E402
from adrcs.data.image_set import ImageSet  # noqa: E402
from adrcs.detector_pipeline import DetectorPipeline, prepare_input  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "template": {"use_template": True},
    "no_template": {"use_template": False},
    "template_gan": {"use_template": True, "paste_defects": "gan"},
    "no_template_gan": {"use_template": False, "paste_defects": "gan"},
}
HELD_FRACTION = 0.2
SPLIT_SEED = 0


def held_back_split(data: Path) -> tuple[ImageSet, ImageSet]:
    """(train part, held-back part) of the DeepPCB list file `data`: 20 %, seed 0, stratified."""
    full = load_images(data)
    return full.split(HELD_FRACTION, SPLIT_SEED)


def images_per_second(run_dir: Path, held: ImageSet, device: str, n: int = 64) -> dict[str, float]:
    """Throughput at the model's input size: model only (prepared tensors, batch 1 and 8) and end to
    end from files on disk (decode, template, resize, detect, boxes back to image pixels; batch 4)."""
    pipe = DetectorPipeline.load(run_dir, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sub = held.subset(np.arange(min(n, len(held))))
    xs = []
    for i in range(len(sub)):
        t = sub.read_template(i, pipe.image_mode) if pipe.use_template else None
        xs.append(prepare_input(sub.read_image(i, pipe.image_mode), t, pipe.input_size, pipe.use_template))
    sizes = [(x.shape[-1], x.shape[-2]) for x in xs]
    out: dict[str, float] = {"device": device, "threads": torch.get_num_threads(), "images": len(sub)}
    for bs in (1, 8):
        pipe.predict_tensors(xs[:bs], sizes[:bs])  # warm-up
        sync()
        t0 = time.perf_counter()
        for s in range(0, len(xs), bs):
            pipe.predict_tensors(xs[s:s + bs], sizes[s:s + bs])
        sync()
        out[f"images_per_s_batch{bs}"] = round(len(xs) / (time.perf_counter() - t0), 2)
    t0 = time.perf_counter()
    pipe.predict(sub, batch_size=4)
    sync()
    out["images_per_s_end_to_end"] = round(len(sub) / (time.perf_counter() - t0), 2)
    return out


def run_variant(name: str, train: ImageSet, held: ImageSet, args: argparse.Namespace) -> dict[str, Any]:
    overrides = dict(VARIANTS[name], val_fraction=0.1, device=args.device, epochs=args.epochs)
    cfg = load_config(REPO / "configs" / "deeppcb_detect.yaml", overrides)
    run_dir = REPO / "bench" / "runs" / "deeppcb" / f"{name}{args.tag}"
    if not (args.reuse and (run_dir / "model.ckpt").is_file()):
        t0 = time.perf_counter()
        train_detection(cfg, train, out=run_dir)
        wall = time.perf_counter() - t0
    else:
        print(f"{name}: reusing {run_dir}")
        wall = None
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = evaluate_detection(run_dir, held, out=run_dir / "held_back.json")
    torch.set_num_threads(args.cpu_threads)
    speed = {"cpu": images_per_second(run_dir, held, "cpu")}
    if torch.cuda.is_available():
        speed["gpu"] = images_per_second(run_dir, held, "cuda", n=256)
    pipe = DetectorPipeline.load(run_dir)
    return {
        "variant": name, "overrides": overrides, "detector": pipe.detector, "input_size": pipe.input_size,
        "params": sum(p.numel() for p in pipe.net.parameters()), "use_template": pipe.use_template,
        "n_train": metrics["n_train"], "n_select": metrics["n_val"], "n_held_back": len(held),
        "train_seconds": round(metrics["train_seconds"], 1), "wall_seconds": None if wall is None else round(wall, 1),
        "best_epoch": metrics["best_epoch"], "select_map_50": metrics["val"]["map_50"],
        "synthetic": metrics.get("synthetic"), "held_back": report, "speed": speed,
        "run_dir": str(run_dir.relative_to(REPO)),
    }


def table_row(rec: dict[str, Any]) -> dict[str, Any]:
    r = rec["held_back"]
    cpu = rec["speed"]["cpu"]
    gpu = rec["speed"].get("gpu", {})
    f = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    return {"variant": rec["variant"], "mAP@0.5": f(r["map_50"]), "mAP@0.5:0.95": f(r["map_50_95"]),
            **{f"AP {c}": f(v) for c, v in r["per_class_ap"].items()},
            "score thr": r["score_threshold"],
            "P / R / F1": f"{r['precision']:.3f} / {r['recall']:.3f} / {r['f1']:.3f}",
            "CPU img/s (b1 / b8 / e2e)": f"{cpu['images_per_s_batch1']} / {cpu['images_per_s_batch8']} / "
                                         f"{cpu['images_per_s_end_to_end']}",
            "GPU img/s (b8)": gpu.get("images_per_s_batch8", "no GPU"),
            "train s": rec["train_seconds"], "best epoch": rec["best_epoch"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "deeppcb" / "trainval.txt")
    ap.add_argument("--variants", nargs="+", default=["template", "no_template", "template_gan"],
                    choices=sorted(VARIANTS))
    ap.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cpu-threads", type=int, default=2, help="threads for the CPU speed measurement")
    ap.add_argument("--tag", default="", help="suffix for result files and run folders")
    ap.add_argument("--reuse", action="store_true", help="score existing run folders instead of training")
    args = ap.parse_args()
    if not args.data.is_file():
        sys.exit(f"{args.data}: no DeepPCB list file (pass --data PATH/trainval.txt)")
    from adrcs.report.tables import markdown_table

    train, held = held_back_split(args.data)
    print(f"DeepPCB: {len(train)} images to train on, {len(held)} held back (seed {SPLIT_SEED})")
    out_json = REPO / "bench" / "results" / f"deeppcb{args.tag}.json"
    records = json.loads(out_json.read_text()) if out_json.is_file() else {}
    for name in args.variants:
        rec = run_variant(name, train, held, args)
        rec["machine"] = machine()
        records[name] = rec
        write_result(f"deeppcb{args.tag}", records)
        print(json.dumps(table_row(rec)))
    rows = [table_row(r) for r in records.values()]
    md = markdown_table(rows, list(rows[0]))
    (REPO / "bench" / "results" / f"deeppcb{args.tag}.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
