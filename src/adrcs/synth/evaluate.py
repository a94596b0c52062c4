"""`adrcs synth evaluate`: how close are synthetic maps to real ones, per class?

For each class the synthesizer knows, `n` synthetic maps are compared with held-out real maps
of that class (e.g. the validation file), in the feature space of a classifier trained on real
maps:
- `fd`, `kid`: Frechet distance and kernel (KID) distance, synthetic vs held-out real;
- `fd_oversample`, `kid_oversample`: the same for the baseline of oversampling the training
  maps with random rot90/flip (what `balance: oversample` adds);
- `classifier_accuracy`: share of synthetic maps the real-data classifier assigns to the class
  (and `real_accuracy`: the same on the held-out real maps, for scale);
- `memorised_share`: share of synthetic maps that are copies (<= 1 % cells differ, under any
  rot/flip) of a training map; `nn_distance`: mean share of differing cells to the nearest one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.metrics.generative import frechet_distance, kernel_distance, memorised_share
from adrcs.pipeline import Pipeline
from adrcs.synth.balance import oversample
from adrcs.synth.base import Synthesizer
from adrcs.transforms.one_hot import one_hot_maps
from adrcs.transforms.resize import resize_stack


@torch.inference_mode()
def classifier_features(pipe: Pipeline, maps: list[np.ndarray] | np.ndarray,
                        batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, F) from the classifier's penultimate layer, probabilities (N, C))."""
    x = pipe.prepare(list(maps))
    net = pipe.net.eval()
    feats, probs = [], []
    for i in range(0, len(x), batch_size):
        xb = one_hot_maps(x[i:i + batch_size].to(pipe.device))
        f = net.forward_features(xb)
        logits = net.forward_head(f)
        feats.append(f.float().cpu())
        probs.append((torch.sigmoid(logits) if pipe.multilabel else torch.softmax(logits, 1)).float().cpu())
    if not feats:
        return np.zeros((0, 1)), np.zeros((0, len(pipe.class_names)))
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def oversampled_maps(synth: Synthesizer, class_index: int, n: int, seed: int = 0) -> np.ndarray:
    """The oversampling baseline: `n` random training maps of the class with a random rot90/flip."""
    pool = synth.train_maps[synth.train_labels == class_index]
    return np.stack(oversample(pool, n, np.random.default_rng(seed)))


MapsByClass = dict[str, np.ndarray]


def evaluate_synthesizer(synth: Synthesizer, pipe: Pipeline, real: WaferMapSet, n: int = 500,
                         classes: list[str] | None = None, seed: int = 0,
                         say: Callable[[str], None] = print) -> tuple[dict[str, Any], MapsByClass, MapsByClass]:
    """Per-class quality report; also returns (held-out real maps, synthetic maps) per class for plots."""
    real = real.labeled()
    names = classes or [c for c, k in synth.class_counts.items() if k > 0]
    per_class: dict[str, Any] = {}
    real_maps, synth_maps = {}, {}
    for name in names:
        c = synth.class_names.index(name)
        gen = synth.sample(name, n, seed=seed + c)
        over = oversampled_maps(synth, c, n, seed=seed + c)
        held = [m for m, y in zip(real.maps, real.labels) if y >= 0 and real.class_names[y] == name]
        row: dict[str, Any] = {"n_train": int((synth.train_labels == c).sum()), "n_real": len(held),
                               "n_synthetic": n}
        f_gen, p_gen = classifier_features(pipe, gen)
        f_over, p_over = classifier_features(pipe, over)
        if held:
            f_real, p_real = classifier_features(pipe, held)
            row["fd"] = frechet_distance(f_gen, f_real)
            row["fd_oversample"] = frechet_distance(f_over, f_real)
            row["kid"] = kernel_distance(f_gen, f_real, seed=seed)
            row["kid_oversample"] = kernel_distance(f_over, f_real, seed=seed)
        if name in pipe.class_names and not pipe.multilabel:
            k = pipe.class_names.index(name)
            row["classifier_accuracy"] = float((p_gen.argmax(1) == k).mean())
            row["classifier_accuracy_oversample"] = float((p_over.argmax(1) == k).mean())
            if held:
                row["real_accuracy"] = float((p_real.argmax(1) == k).mean())
        share, dist = memorised_share(gen, synth.train_maps[synth.train_labels == c])
        row["memorised_share"], row["nn_distance"] = share, dist
        per_class[name] = row
        empty = np.zeros((0, synth.size, synth.size), np.uint8)
        real_maps[name] = resize_stack(held[:12], synth.size) if held else empty
        synth_maps[name] = gen[:12]
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        say(f"{name}: {shown}")
    keys = ["fd", "fd_oversample", "kid", "kid_oversample", "classifier_accuracy", "classifier_accuracy_oversample",
            "memorised_share", "nn_distance"]
    mean = {k: float(np.nanmean([r[k] for r in per_class.values() if k in r])) for k in keys
            if any(k in r for r in per_class.values())}
    report = {"method": synth.method, "size": synth.size, "n_per_class": n, "classes": per_class, "mean": mean,
              "gan_beats_oversample_fd": [c for c, r in per_class.items()
                                          if "fd" in r and r["fd"] < r["fd_oversample"]]}
    return report, real_maps, synth_maps


def write_evaluation(report: dict[str, Any], real_maps: dict[str, np.ndarray], synth_maps: dict[str, np.ndarray],
                     out: str | Path) -> tuple[Path, Path]:
    """Write the report JSON and `<out stem>_grid.png` (held-out real vs synthetic, one row per class)."""
    import json

    from adrcs.report.synthesis import plot_real_vs_synthetic

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    grid = plot_real_vs_synthetic(real_maps, synth_maps, out.with_name(out.stem + "_grid.png"),
                                  title=f"held-out real maps (left) vs {report['method']} samples (right)")
    return out, grid
