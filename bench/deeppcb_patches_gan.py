"""Does the defect GAN help? (issue 21) DeepPCB defect patches with the rarest class cut to 10 %.

Protocol: the patch set of `scripts/deeppcb_patches.py` (split by DeepPCB group folder, see
bench/deeppcb_patches.py). In the training split the rarest class is cut to `--keep` (10 %) of its
patches (seeded choice); val and test stay whole. Then, with the same config, seed and epochs as
bench/deeppcb_patches.py (`configs/images_classify.yaml` through `adrcs train`, `ffn`, 64 px):

  cut   `ffn` trained on the cut training split (real patches only)
  gan   the same split plus defect-GAN patches of the cut class, up to its original count: the GAN
        (`adrcs.synth.defect_gan`: conditional WGAN-GP + feature matching, given the defect-free
        template crop as context, drawing only the box area) is fitted on the cut training split
        only; contexts for the new patches are the template crops of the class's kept training
        patches, each under a random rot90 / flip.

Both are scored once on the untouched test group (per-class P / R / F1, macro ROC-AUC). The paper's
check of the generated data: the accuracy of the real-data classifier (`cut`) on the generated
patches (share assigned to their class), and the Frechet distance, in that classifier's feature
space, from generated to real test patches of the class (beside the distance from the kept real
training patches of the class, the floor a perfect generator would reach).

Outputs: bench/results/deeppcb_patches_gan.json / .md, deeppcb_patches_gan_samples.png (template |
real | generated). Run folders: bench/runs/deeppcb_patches/ffn_cut, ffn_gan; sets and the GAN in
bench/runs/deeppcb_patches_gan/ (reused when present).

    python bench/deeppcb_patches_gan.py [--keep 0.1] [--gan-iterations 1500] [--epochs 20]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deeppcb_patches as bp  # noqa: E402
from common import REPO, machine  # noqa: E402

WORK = REPO / "bench" / "runs" / "deeppcb_patches_gan"
RESULTS = REPO / "bench" / "results"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def train_counts(patches: Path) -> dict[str, int]:
    """Training patches per class folder (templates not counted)."""
    return {d.name: sum(1 for f in d.glob("*.png") if not f.stem.endswith("_temp"))
            for d in sorted((patches / "train").iterdir()) if d.is_dir()}


def cut_set(patches: Path, out: Path, cls: str, keep: float, seed: int = 0) -> list[str]:
    """A set folder whose train split holds `keep` of class `cls` (val / test link to the originals).
    Returns the kept patch names of `cls`."""
    files = sorted(f for f in (patches / "train" / cls).glob("*.png") if not f.stem.endswith("_temp"))
    n = max(1, int(round(keep * len(files))))
    kept = sorted(np.random.default_rng(seed).choice([f.name for f in files], n, replace=False).tolist())
    if out.exists():
        shutil.rmtree(out)
    for d in sorted((patches / "train").iterdir()):
        if not d.is_dir():
            continue
        dst = out / "train" / d.name
        dst.mkdir(parents=True)
        names = kept if d.name == cls else [f.name for f in d.glob("*.png") if not f.stem.endswith("_temp")]
        for name in names:
            shutil.copy2(d / name, dst / name)
            temp = d / f"{Path(name).stem}_temp.png"
            if temp.is_file():
                shutil.copy2(temp, dst / temp.name)
    for split in ("val", "test"):
        (out / split).symlink_to((patches / split).resolve(), target_is_directory=True)
    return kept


def read_pairs(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Grey patches (N, H, W) and their templates from one class folder, with the file names."""
    from PIL import Image

    files = sorted(f for f in folder.glob("*.png") if not f.stem.endswith("_temp"))
    test = np.stack([np.asarray(Image.open(f).convert("L")) for f in files]) if files else np.zeros((0, 1, 1))
    temp = np.stack([np.asarray(Image.open(f.with_name(f"{f.stem}_temp.png")).convert("L")) for f in files]) \
        if files else np.zeros((0, 1, 1))
    return test, temp, [f.name for f in files]


def defect_crops(train: Path, margin: float):
    """The training split of a set folder as `DefectCrops` (patch, template context, class)."""
    import torch

    from adrcs.synth.defect_crops import DefectCrops

    names = sorted(d.name for d in train.iterdir() if d.is_dir())
    tests, temps, labels = [], [], []
    for k, c in enumerate(names):
        t, r, _ = read_pairs(train / c)
        tests.append(t), temps.append(r), labels.append(np.full(len(t), k))
    test = torch.from_numpy(np.concatenate(tests)).float().unsqueeze(1) / 255.0
    ctx = torch.from_numpy(np.concatenate(temps)).float().unsqueeze(1) / 255.0
    side = test.shape[-1] / margin  # the box's longer side fills 1 / margin of the patch
    return DefectCrops(test=test, context=ctx, labels=torch.from_numpy(np.concatenate(labels)).long(),
                       sizes=np.full((len(test), 2), side, np.float32), class_names=names, uses_template=True,
                       margin=margin)


def fitted_gan(crops, out: Path, iterations: int, seed: int):
    from adrcs.synth.defect_gan import CHECKPOINT_NAME, DefectGAN

    if (out / CHECKPOINT_NAME).is_file():
        gan = DefectGAN.load(out)
        if int(gan.args["iterations"]) == iterations:
            log(f"defect GAN: reusing {out.relative_to(REPO)}")
            return gan
    log(f"defect GAN: fitting on {len(crops)} training patches ({iterations} iterations)")
    gan = DefectGAN(seed=seed, iterations=iterations).fit(crops, say=log, progress=True)
    gan.save(out)
    log(f"defect GAN: fitted in {gan.fit_seconds / 60:.1f} min")
    return gan


def generate(gan, crops, cls: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n patches of class `cls` drawn into the template crops of that class's training patches (each under a
    random rot90 / flip), as a defect of that class appears in its own surroundings (a pin-hole in copper):
    (patches, templates) uint8."""
    import torch

    g = torch.Generator().manual_seed(seed)
    own = torch.nonzero(crops.labels == crops.class_names.index(cls)).flatten()
    idx = own[torch.randint(0, len(own), (n,), generator=g)]
    turns = torch.randint(0, 4, (n,), generator=g).tolist()
    flips = torch.randint(0, 2, (n,), generator=g).tolist()
    ctx = torch.stack([torch.rot90(crops.context[i], k, dims=(-2, -1)).flip(-1) if f else
                       torch.rot90(crops.context[i], k, dims=(-2, -1)) for i, k, f in zip(idx.tolist(), turns, flips)])
    out = [gan.generate(ctx[i:i + 256], torch.full((len(ctx[i:i + 256]),), gan.class_names.index(cls)), g)
           for i in range(0, n, 256)]
    to8 = lambda t: (t.clamp(0, 1) * 255).round().byte().squeeze(1).numpy()  # noqa: E731
    return to8(torch.cat(out)), to8(ctx)


def gan_set(cut: Path, out: Path, cls: str, patches: np.ndarray, temps: np.ndarray) -> None:
    """The cut set plus generated patches of `cls` (written as `gan_<i>.png` + `gan_<i>_temp.png`)."""
    from PIL import Image

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(cut / "train", out / "train")
    for i, (p, t) in enumerate(zip(patches, temps)):
        Image.fromarray(p).save(out / "train" / cls / f"gan_{i:05d}.png")
        Image.fromarray(t).save(out / "train" / cls / f"gan_{i:05d}_temp.png")
    for split in ("val", "test"):
        (out / split).symlink_to((cut / split).resolve(), target_is_directory=True)


def classifier_check(run: Path, cls: str, generated: tuple[np.ndarray, np.ndarray],
                     real_test: tuple[np.ndarray, np.ndarray], real_train: tuple[np.ndarray, np.ndarray]
                     ) -> dict[str, Any]:
    """The paper's check with the real-data classifier: accuracy on generated patches; Frechet distances."""
    import torch

    from adrcs.engine.image_tensors import image_channels
    from adrcs.image_classifier_pipeline import ImageClassifierPipeline
    from adrcs.metrics.generative import frechet_distance

    pipe = ImageClassifierPipeline.load(run)

    def outputs(pair):
        x = np.stack([image_channels(p, t, pipe.input_size, pipe.use_template) for p, t in zip(*pair)])
        return pipe.predict_outputs(torch.from_numpy(x))

    k = pipe.class_names.index(cls)
    p_gen, f_gen = outputs(generated)
    p_test, f_test = outputs(real_test)
    _, f_train = outputs(real_train)
    return {"accuracy_on_generated": round(float((p_gen.argmax(1) == k).mean()), 4),
            "mean_probability_on_generated": round(float(p_gen[:, k].mean()), 4),
            "accuracy_on_real_test": round(float((p_test.argmax(1) == k).mean()), 4),
            "frechet_generated_to_real_test": round(frechet_distance(f_gen, f_test), 2),
            "frechet_real_train_to_real_test": round(frechet_distance(f_train, f_test), 2),
            "n_generated": int(len(p_gen)), "n_real_test": int(len(p_test)), "n_real_train": int(len(f_train))}


def samples_figure(real: tuple[np.ndarray, np.ndarray], generated: tuple[np.ndarray, np.ndarray], cls: str,
                   path: Path, n: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, n, figsize=(1.4 * n, 6))
    rows = [("real template", real[1]), ("real " + cls, real[0]), ("template (context)", generated[1]),
            ("GAN " + cls, generated[0])]
    for r, (title, imgs) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            if c < len(imgs):
                ax.imshow(imgs[c], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, fontsize=8)
    fig.suptitle(f"DeepPCB {cls} patches: real vs defect GAN (fitted on the cut training split)")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def markdown(doc: dict[str, Any]) -> str:
    cls, recs = doc["cut_class"], doc["records"]
    lines = ["# Does the defect GAN help? DeepPCB patches, rarest class cut (issue 21)", "",
             f"Cut class: **{cls}**, {doc['kept']} of {doc['original_count']} training patches kept "
             f"({100 * doc['keep']:.0f} %); `gan` adds {doc['generated']} defect-GAN patches of it "
             f"({doc['gan_iterations']} GAN iterations, fitted on the cut training split only, "
             f"{doc['gan_fit_minutes']:.1f} min). ffn, {doc['epochs']} epochs, one seed; test = group92000.", "",
             f"| training split | {cls} F1 | {cls} P / R | macro-F1 | accuracy | macro ROC-AUC |", "|---|---|---|---|---|---|"]
    for name, r in recs.items():
        t = r["test"]
        pc = t["per_class"][cls]
        lines.append(f"| {name} | {pc['f1']:.4f} | {pc['precision']:.3f} / {pc['recall']:.3f} | {t['macro_f1']:.4f} | "
                     f"{t['accuracy']:.4f} | {t['roc_auc_macro']:.4f} |")
    if doc.get("full"):
        f = doc["full"]
        lines.append(f"| full (bench/results/deeppcb_patches.json) | {f['per_class'][cls]['f1']:.4f} | "
                     f"{f['per_class'][cls]['precision']:.3f} / {f['per_class'][cls]['recall']:.3f} | "
                     f"{f['macro_f1']:.4f} | {f['accuracy']:.4f} | {f['roc_auc_macro']:.4f} |")
    c = doc["check"]
    d = recs["gan"]["test"]["per_class"][cls]["f1"] - recs["cut"]["test"]["per_class"][cls]["f1"]
    lines += ["", f"Change in {cls} test F1 from the GAN patches: {d:+.4f}.", "",
              "The paper's check (the real-data `cut` classifier on generated patches): "
              f"accuracy {c['accuracy_on_generated']:.3f} on {c['n_generated']} generated {cls} patches "
              f"(mean probability {c['mean_probability_on_generated']:.3f}; {c['accuracy_on_real_test']:.3f} on the "
              f"{c['n_real_test']} real test ones). Frechet distance in its feature space to the real test {cls} "
              f"patches: generated {c['frechet_generated_to_real_test']:.1f}, kept real training patches "
              f"{c['frechet_real_train_to_real_test']:.1f}.", "",
              "Figure: `deeppcb_patches_gan_samples.png` (template | real | context | generated).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "deeppcb")
    ap.add_argument("--patches", type=Path, default=REPO / ".data" / "deeppcb_patches")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--context", type=float, default=2.0)
    ap.add_argument("--cut-class", default="auto", help="class to cut (auto: the rarest in train)")
    ap.add_argument("--keep", type=float, default=0.10, help="share of the cut class's training patches kept")
    ap.add_argument("--gan-iterations", type=int, default=1500)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 0 < args.keep < 1:
        sys.exit(f"--keep {args.keep}: must be between 0 and 1")
    bp.ensure_patches(args)
    import torch

    torch.set_num_threads(args.threads)
    counts = train_counts(args.patches)
    cls = min(counts, key=counts.get) if args.cut_class == "auto" else args.cut_class
    if cls not in counts:
        sys.exit(f"--cut-class {cls}: not a class of {args.patches / 'train'} ({sorted(counts)})")
    cut, gan_dir = WORK / "set_cut", WORK / "set_gan"
    kept = cut_set(args.patches, cut, cls, args.keep, args.seed)
    log(f"cut {cls}: {len(kept)} of {counts[cls]} training patches kept -> {cut.relative_to(REPO)}")
    crops = defect_crops(cut / "train", args.context)
    gan = fitted_gan(crops, WORK / "gan", args.gan_iterations, args.seed)
    n_gen = counts[cls] - len(kept)
    generated = generate(gan, crops, cls, n_gen, args.seed + 1)
    gan_set(cut, gan_dir, cls, *generated)
    log(f"gan set: + {n_gen} generated {cls} patches -> {gan_dir.relative_to(REPO)}")
    runs = {}
    for name, folder in (("cut", cut), ("gan", gan_dir)):
        runs[name] = argparse.Namespace(**{**vars(args), "patches": folder, "models": ["ffn"], "tag": f"_{name}",
                                           "retrain": False})
    walls = train_sets(runs, args.jobs)
    records = {name: bp.record("ffn", ns, walls[name]) for name, ns in runs.items()}
    real_test = read_pairs(args.patches / "test" / cls)[:2]
    real_train = read_pairs(cut / "train" / cls)[:2]
    check = classifier_check(bp.run_dir("ffn", runs["cut"]), cls, generated, real_test, real_train)
    samples_figure(real_test, generated, cls, RESULTS / "deeppcb_patches_gan_samples.png")
    full = None
    full_path = RESULTS / "deeppcb_patches.json"
    if full_path.is_file():
        full = next((r["test"] for r in json.loads(full_path.read_text())["records"] if r["model"] == "ffn"), None)
    doc = {"issue": 21, "protocol": __doc__.split("\n\n")[1].replace("\n", " "), "cut_class": cls, "keep": args.keep,
           "original_count": counts[cls], "kept": len(kept), "generated": n_gen, "gan_iterations": args.gan_iterations,
           "gan_fit_minutes": round(gan.fit_seconds / 60, 1), "epochs": args.epochs, "check": check,
           "records": records, "full": full, "machine": machine(), "threads": args.threads}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "deeppcb_patches_gan.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "deeppcb_patches_gan.md").write_text(markdown(doc))
    print(markdown(doc))


def train_sets(runs: dict[str, argparse.Namespace], jobs: int) -> dict[str, float | None]:
    """Train `ffn` on each set (separate processes, up to `jobs` at once); wall seconds per set."""
    import concurrent.futures as cf

    with cf.ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        walls = list(ex.map(bp.train_all, runs.values()))
    return {name: w["ffn"] for name, w in zip(runs, walls)}


if __name__ == "__main__":
    main()
