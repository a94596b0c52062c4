"""`DefectPaster`: puts GAN-made defects into defect-free regions of a training image, with their boxes.

Per image, with probability `probability`, 1..`max_per_image` defects are added. Each one:
a class drawn uniformly (rare classes get as many as common ones), a box size drawn from that
class's real boxes, a place whose window (box grown by the GAN's margin) lies inside the image
and clear of every existing box's window, the context cut there (template, or the surroundings
for an inpainting GAN), a generated patch, and its box part written into the *test* image only:
the template stays defect-free, so the difference channel shows the new defect as it would a real one.
"""
from __future__ import annotations

import numpy as np
import torch

from adrcs.synth.defect_crops import box_mask, cut_patches, inpainting_context, paste_window, windows_for
from adrcs.synth.defect_gan import DefectGAN


class DefectPaster:
    """Callable ``(test, template | None, boxes, labels, rng) -> (test, boxes, labels)``; labels 0-based."""

    def __init__(self, gan: DefectGAN, probability: float = 0.5, max_per_image: int = 3, tries: int = 20) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"paste probability must be in [0, 1], got {probability}")
        if gan.generator is None:
            raise ValueError("the defect GAN is not fitted")
        self.gan = gan
        self.probability = float(probability)
        self.max_per_image = max(1, int(max_per_image))
        self.tries = int(tries)
        self.classes = sorted(gan.box_sizes)

    def __call__(self, test: torch.Tensor, template: torch.Tensor | None, boxes: torch.Tensor, labels: torch.Tensor,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not self.classes or rng.random() >= self.probability:
            return test, boxes, labels
        if self.gan.uses_template and template is None:
            raise ValueError("this defect GAN was fitted with templates; give the template to paste into")
        h, w = test.shape[-2:]
        m = self.gan.margin
        taken = [tuple(v) for v in windows_for(boxes, m).tolist()]
        new_boxes, new_labels, wins = [], [], []
        for _ in range(int(rng.integers(1, self.max_per_image + 1))):
            c = self.classes[int(rng.integers(len(self.classes)))]
            sizes = self.gan.box_sizes[c]
            bw, bh = (float(v) for v in sizes[int(rng.integers(len(sizes)))])
            ww, wh = int(round(bw * m)), int(round(bh * m))
            if ww >= w or wh >= h or ww < 2 or wh < 2:
                continue
            for _ in range(self.tries):
                x0, y0 = int(rng.integers(0, w - ww + 1)), int(rng.integers(0, h - wh + 1))
                win = (x0, y0, x0 + ww, y0 + wh)
                if not any(_overlap(win, t) for t in taken):
                    break
            else:
                continue
            taken.append(win)
            wins.append(win)
            bx0, by0 = x0 + (ww - bw) / 2, y0 + (wh - bh) / 2
            new_boxes.append([bx0, by0, bx0 + bw, by0 + bh])
            new_labels.append(c)
        if not wins:
            return test, boxes, labels
        win_t = torch.tensor(wins, dtype=torch.float32)
        source = template if self.gan.uses_template else test
        ctx = cut_patches(source, win_t, self.gan.patch)
        if not self.gan.uses_template:
            ctx = inpainting_context(ctx, box_mask(self.gan.patch, m))
        g = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
        patches = self.gan.generate(ctx, torch.tensor(new_labels), generator=g)
        test = test.clone()
        for patch, win in zip(patches, wins):
            paste_window(test, patch, win, m)
        boxes = torch.cat([boxes.float().reshape(-1, 4), torch.tensor(new_boxes, dtype=torch.float32)])
        labels = torch.cat([labels.long(), torch.tensor(new_labels, dtype=torch.long)])
        return test, boxes, labels


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


PASTER_KEYS = ("probability", "max_per_image", "patch", "margin", "from")


def fit_defect_paster(train, size: int | None, use_template: bool, mode: str, paste_args: dict, out_dir,
                      seed: int = 0, say=print) -> tuple[DefectPaster, dict]:
    """Fit a `DefectGAN` on the defect crops of `train` (an ImageSet, the training split only) and wrap it.

    paste_args: probability (0.5), max_per_image (3), patch (32), margin (1.5), from (folder of a
    fitted defect GAN to reuse instead of fitting), and any `DefectGAN` option (iterations, ...).
    Writes the GAN, its curves and `samples.png` into `out_dir`; returns (paster, summary for metrics.json).
    """
    from pathlib import Path

    from adrcs.errors import InputError
    from adrcs.report.synthesis import plot_defect_patches
    from adrcs.synth.defect_crops import DEFAULT_MARGIN, collect_defect_crops

    args = dict(paste_args or {})
    patch, margin = int(args.pop("patch", 32)), float(args.pop("margin", DEFAULT_MARGIN))
    probability, per_image = float(args.pop("probability", 0.5)), int(args.pop("max_per_image", 3))
    source = args.pop("from", None)
    if patch < 8 or patch % 8 or margin <= 1.0:
        raise InputError(None, f"paste_args: patch must be a multiple of 8 and margin > 1 (got {patch}, {margin})")
    crops = collect_defect_crops(train, size, use_template, mode, patch, margin)
    say(f"defect GAN: {len(crops)} defect patches of {patch}px from {len(train)} training images "
        f"(context: {'template' if use_template else 'surroundings'})")
    if source is not None:
        gan = DefectGAN.load(source)
        if gan.uses_template != use_template or gan.class_names != list(train.class_names):
            raise InputError(source, "this defect GAN was fitted for other classes or another template setting")
        say(f"defect GAN: reusing {source}")
    else:
        gan = DefectGAN(seed=seed, **args).fit(crops, say=say)
    out = Path(out_dir)
    gan.save(out)
    g = torch.Generator().manual_seed(seed)
    idx = {c: np.flatnonzero(crops.labels.numpy() == c)[:6] for c in range(len(crops.class_names))}
    real = {crops.class_names[c]: crops.test[i] for c, i in idx.items() if len(i)}
    ctx = {crops.class_names[c]: crops.context[i] for c, i in idx.items() if len(i)}
    fake = {crops.class_names[c]: gan.generate(crops.context[i], torch.full((len(i),), c), generator=g)
            for c, i in idx.items() if len(i)}
    plot_defect_patches(ctx, real, fake, out / "samples.png")
    summary = {"method": "gan", "patches": len(crops), "patch": patch, "margin": margin, "probability": probability,
               "max_per_image": per_image, "uses_template": use_template, "fit_seconds": round(gan.fit_seconds, 1),
               "iterations": int(gan.args["iterations"]), "folder": str(out)}
    return DefectPaster(gan, probability, per_image), summary
