"""Write tests/data/legacy/ with an older ADRCS (e.g. 264f045): one tiny run per saved-model kind, the
predictions that code made with it, and a service store it created.

tests/compat/ then checks that today's code loads those runs and predicts the same, and that the old store
upgrades in place through Alembic with no record lost.

    git worktree add /tmp/old 264f045
    python scripts/make_legacy_fixtures.py --old-src /tmp/old/src
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "adrcs" / "samples"
KEEP = ("model.ckpt", "config.yaml", "metrics.json")  # what a run folder needs to load and predict

# kind -> (YAML config, extra train flags); every model tiny, one or two epochs
WAFER = ["--train", str(SAMPLES / "wm811k_sample.pkl.xz"), "--val", str(SAMPLES / "wm811k_sample_val.pkl.xz")]
MIXED = ["--train", str(SAMPLES / "mixedwm38_sample.pkl.xz"), "--val", str(SAMPLES / "mixedwm38_sample_val.pkl.xz")]
TINY_WAFER = "{width: 8, hidden: 32, dropout: 0.2}"


def _runs(inputs: Path) -> dict[str, tuple[str, list[str], list[str]]]:
    """kind -> (config name, train flags, predict flags)."""
    det = inputs / "boxes" / "trainval.txt"
    cls = inputs / "classes"
    return {
        "wafer": ("wm811k_ffn", WAFER + ["--epochs", "2", "--input-size", "16", "--model-args", TINY_WAFER],
                  ["--data", str(SAMPLES / "wm811k_sample_val.pkl.xz")]),
        "multilabel": ("mixedwm38_ffn", MIXED + ["--epochs", "2", "--input-size", "16", "--model-args", TINY_WAFER],
                       ["--data", str(SAMPLES / "mixedwm38_sample_val.pkl.xz")]),
        "sinogram": ("wm811k_sinogram", WAFER + [
            "--epochs", "2", "--sbae-args", "{channels: 4, hidden: 16, steps: 30, batch_size: 64}",
            "--synth-args", "{size: 32, steps: 20}",
            "--selector-args", "{population: 4, iterations: 3}", "--select-samples", "200"],
                     ["--data", str(SAMPLES / "wm811k_sample_val.pkl.xz")]),
        "detect": ("deeppcb_detect", ["--data", str(det), "--epochs", "2", "--input-size", "64",
                                      "--batch-size", "2", "--detector-args", "{width_mult: 0.125, fpn_channels: 32, head_convs: 1}"], ["--data", str(det)]),
        "image_classify": ("images_classify", ["--data", str(cls), "--epochs", "2", "--input-size", "32",
                                               "--batch-size", "8", "--model-args", "{width: 4, hidden: 16}"],
                           ["--data", str(cls)]),
    }


def _adrcs(old_src: Path, *args: str, cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(old_src), PYTHONUNBUFFERED="1")
    res = subprocess.run([sys.executable, "-m", "adrcs.cli", *args], env=env, cwd=cwd, capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise SystemExit(f"old adrcs {' '.join(args[:1])} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")


def _inputs(out: Path) -> None:
    """Tiny image inputs, committed next to the runs so the test predicts on exactly these files."""
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.images import make_deeppcb, write_class_folders

    shutil.rmtree(out, ignore_errors=True)
    make_deeppcb(out / "boxes", n=6)
    write_class_folders(out / "classes", per_class=5, size=32, templates=True)


STORE_SCRIPT = r'''
import json
import sys
from datetime import datetime, timezone
from adrcs.serve.store.store import NewInspection, Store

store = Store(sys.argv[1])
t0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
store.register_model("v1", kind="wafer", path="/runs/v1", metrics={"macro_f1": 0.81}, actor="admin")
store.register_model("v2", kind="wafer", path="/runs/v2", metrics={"macro_f1": 0.84}, actor="admin")
store.register_model("d1", kind="detect", path="/runs/d1", metrics={"map_50": 0.9}, actor="admin")
store.promote("v1", actor="admin")
store.promote("v2", actor="admin")
store.promote("d1", actor="admin")
items = []
for i in range(40):
    img = i % 5 == 0
    items.append(NewInspection(
        kind="image" if img else "wafer_map", model_version="d1" if img else ("v1" if i < 20 else "v2"),
        predicted=["Center", "Donut", "none", "Scratch"][i % 4],
        probabilities={"Center": 0.7, "Donut": 0.2, "none": 0.1}, confidence=0.5 + (i % 5) / 10,
        content=b"map-%d" % (i % 30), media_type="application/json", lot=f"LOT{i // 10}", wafer=str(i % 25),
        tool="AOI-1" if img else None,
        boxes=[{"class": "open", "score": 0.9, "x1": 1, "y1": 2, "x2": 3, "y2": 4}] if img else None,
        request_id=f"req{i}", created_at=t0.replace(minute=i)))
store.add_inspections(items)
store.add_review(3, action="confirm", reviewer="eng1")
store.add_review(4, action="correct", label="Donut", reviewer="eng2", note="ring visible")
store.add_review(7, action="correct", label="Center", reviewer="eng1")
store.rollback(actor="admin", kind="wafer")
tokens = {"line-1": store.create_token("line-1", "inspector"), "eng1": store.create_token("eng1", "engineer")}
store.revoke_token("line-1")
snapshot = {"inspections": [r.to_dict() for r in store.list_inspections(limit=1000, newest_first=False)],
            "models": [m.to_dict() for m in store.list_models()],
            "champions": {k: store.champion(k).version for k in ("wafer", "detect")},
            "events": store.model_events(), "tokens": [t.to_dict() for t in store.list_tokens()],
            "secrets": tokens}
store.close()
print(json.dumps(snapshot, indent=1, default=str))
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-src", type=Path, required=True, help="src/ folder of the older tree")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "legacy")
    ap.add_argument("--only", nargs="*", help="kinds to (re)write, and/or 'store'")
    a = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=a.old_src, capture_output=True,
                            text=True).stdout.strip()
    a.out.mkdir(parents=True, exist_ok=True)
    if not a.only:
        _inputs(a.out / "inputs")
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for kind, (config, train_flags, predict_flags) in _runs(a.out / "inputs").items():
            if a.only and kind not in a.only:
                continue
            run = tmp / kind
            _adrcs(a.old_src, "train", "--config", str(REPO / "configs" / f"{config}.yaml"), "--out", str(run),
                   "--device", "cpu", "--seed", "0", *train_flags, cwd=tmp)
            dest = a.out / "runs" / kind
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            for name in KEEP:
                if (run / name).is_file():
                    shutil.copy2(run / name, dest / name)
            pred = tmp / f"{kind}_pred" if kind == "detect" else tmp / f"{kind}.csv"  # a detector writes a folder
            _adrcs(a.old_src, "predict", "--model", str(dest), "--out", str(pred), *predict_flags, cwd=tmp)
            csv = pred / "predictions.csv" if kind == "detect" else pred
            # paths in the CSV relative to the fixture folder, so the test can compare them anywhere
            text = csv.read_text().replace(str(a.out) + os.sep, "")
            (a.out / "expected" / f"{kind}.csv").parent.mkdir(exist_ok=True)
            (a.out / "expected" / f"{kind}.csv").write_text(text)
            print(kind, "done", flush=True)
        if not a.only or "store" in a.only:
            db = a.out / "store.db"
            db.unlink(missing_ok=True)
            env = dict(os.environ, PYTHONPATH=str(a.old_src))
            res = subprocess.run([sys.executable, "-c", STORE_SCRIPT, f"sqlite:///{db}"], env=env, check=True,
                                 capture_output=True, text=True)
            # what the old code read back from its own store (test tokens only: this store is a fixture)
            (a.out / "expected" / "store.json").write_text(res.stdout)
            print("store done", flush=True)
    (a.out / "SOURCE.json").write_text(json.dumps({"written_by": commit, "script": "scripts/make_legacy_fixtures.py"},
                                                  indent=1) + "\n")


if __name__ == "__main__":
    main()
