"""`DefectGAN`: the synthesis module's conditional WGAN-GP + feature-matching GAN, for defect patches.

It learns p(defect patch | class, context) from `DefectCrops`: the generator gets noise z, the
class embedding and the context patch (the template there, or the surroundings with the box
blanked), encodes the context with strided convs, decodes with skip connections (a small U-Net)
and writes only the box area; the margin stays the context's. So a synthetic defect fits the
board it is pasted on, and outside its box the test image still equals the template.

Critic: (patch, context) stacked on channels -> strided convs + LeakyReLU, no BatchNorm (the
gradient penalty is per sample) -> features f; score = Linear(f) + <embed(class), f>.
Losses as in `adrcs.synth.gan`: WGAN-GP for the critic; -E[D(fake)] + `fm_weight` * feature
matching for the generator. Real batches draw classes with probability ~ count ** 0.5 and get a
random flip / rot90 (patch and context alike).

Saved as `defect_gan.pt` (format "adrcs-defect-gan/1") with the box sizes seen per class, so a
`DefectPaster` needs nothing else; `history.csv`, `training_curves.png` and `samples.png`
(context | real | synthetic per class) sit beside it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from adrcs.engine.progress import progress_steps
from adrcs.errors import InputError
from adrcs.synth.defect_crops import DefectCrops, box_mask
from adrcs.synth.gan import critic_update, generator_update

FORMAT = "adrcs-defect-gan/1"
CHECKPOINT_NAME = "defect_gan.pt"
DEFAULTS: dict[str, Any] = {"iterations": 1500, "critic_steps": 2, "batch_size": 64, "lr": 2.0e-4,
                            "betas": [0.5, 0.9], "gp_weight": 10.0, "fm_weight": 1.0, "z_dim": 32, "g_width": 32,
                            "d_width": 32, "class_power": 0.5}


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True))


class PatchGenerator(nn.Module):
    """(z, class, context, box mask) -> patch in [0, 1]; equals the context outside the mask."""

    def __init__(self, num_classes: int, channels: int, patch: int, z_dim: int = 32, width: int = 32) -> None:
        super().__init__()
        if patch % 8:
            raise ValueError(f"patch must be a multiple of 8, got {patch}")
        self.z_dim, self.s0, self.w = z_dim, patch // 8, width
        self.embed = nn.Embedding(num_classes, z_dim)
        self.fc = nn.Sequential(nn.Linear(2 * z_dim, 4 * width * self.s0 ** 2), nn.ReLU(True))
        self.enc1, self.enc2, self.enc3 = _down(channels, width), _down(width, 2 * width), _down(2 * width, 4 * width)
        self.dec3 = _up(8 * width, 2 * width)
        self.dec2 = _up(4 * width, width)
        self.dec1 = nn.ConvTranspose2d(2 * width, channels, 4, 2, 1)

    def forward(self, z: torch.Tensor, y: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(context * 2 - 1)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        h = self.fc(torch.cat([z, self.embed(y)], dim=1)).view(-1, 4 * self.w, self.s0, self.s0)
        h = self.dec3(torch.cat([h, e3], dim=1))
        h = self.dec2(torch.cat([h, e2], dim=1))
        out = torch.sigmoid(self.dec1(torch.cat([h, e1], dim=1)))
        return context * (1 - mask) + out * mask


class PatchCritic(nn.Module):
    """Projection critic on (patch, context) stacked: returns (score (N,), features (N, F))."""

    def __init__(self, num_classes: int, channels: int, patch: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(2 * channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2, True), nn.Flatten())
        n_feat = 4 * width * (patch // 8) ** 2
        self.out = nn.Linear(n_feat, 1)
        self.embed = nn.Embedding(num_classes, n_feat)
        nn.init.normal_(self.embed.weight, std=0.01)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x * 2 - 1)
        return self.out(f).squeeze(1) + (self.embed(y) * f).sum(dim=1), f


def _dihedral_pair(a: torch.Tensor, b: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random rot90 / flip for each (a[i], b[i]) pair (the box mask is square and centred)."""
    k = int(torch.randint(4, (1,), generator=g))
    flip = bool(torch.randint(2, (1,), generator=g))
    a, b = torch.rot90(a, k, (-2, -1)), torch.rot90(b, k, (-2, -1))
    return (a.flip(-1), b.flip(-1)) if flip else (a, b)


class DefectGAN:
    """Fit on `DefectCrops`, then `generate(context, classes)`; `save(dir)` / `DefectGAN.load(dir)`."""

    def __init__(self, seed: int = 0, **args: Any) -> None:
        unknown = sorted(set(args) - set(DEFAULTS))
        if unknown:
            raise InputError(None, f"unknown defect GAN options {unknown}; known: {sorted(DEFAULTS)}")
        self.args = {**DEFAULTS, **args}
        self.seed = int(seed)
        self.class_names: list[str] = []
        self.channels = 1
        self.patch = 32
        self.margin = 1.5
        self.uses_template = False
        self.box_sizes: dict[int, np.ndarray] = {}
        self.history: list[dict[str, float]] = []
        self.fit_seconds = 0.0
        self.generator: PatchGenerator | None = None
        self.critic: PatchCritic | None = None

    def _build(self) -> None:
        a, k = self.args, len(self.class_names)
        self.generator = PatchGenerator(k, self.channels, self.patch, int(a["z_dim"]), int(a["g_width"]))
        self.critic = PatchCritic(k, self.channels, self.patch, int(a["d_width"]))

    def fit(self, crops: DefectCrops, say: Callable[[str], None] = print, progress: bool = True) -> "DefectGAN":
        """Train generator and critic on the patches of the training split."""
        if len(crops) == 0:
            raise InputError(None, "no defect boxes to fit the defect GAN on")
        self.class_names = list(crops.class_names)
        self.channels, self.patch = int(crops.test.shape[1]), int(crops.test.shape[-1])
        self.margin, self.uses_template = float(crops.margin), bool(crops.uses_template)
        labels = crops.labels.numpy()
        self.box_sizes = {int(c): crops.sizes[labels == c] for c in np.unique(labels)}
        torch.manual_seed(self.seed)
        self._build()
        G, D, a = self.generator, self.critic, self.args
        betas = tuple(float(b) for b in a["betas"])
        opt_g = torch.optim.Adam(G.parameters(), lr=float(a["lr"]), betas=betas)
        opt_d = torch.optim.Adam(D.parameters(), lr=float(a["lr"]), betas=betas)
        g = torch.Generator().manual_seed(self.seed)
        counts = torch.from_numpy(np.bincount(labels, minlength=len(self.class_names))).double()
        probs = torch.where(counts > 0, counts ** float(a["class_power"]), torch.zeros_like(counts))
        probs = probs / probs.sum()
        order = torch.from_numpy(np.argsort(labels, kind="stable"))  # patch indices grouped by class
        starts = torch.cumsum(counts.long(), 0) - counts.long()
        mask = box_mask(self.patch, self.margin)
        bs, n_critic = int(a["batch_size"]), int(a["critic_steps"])

        def real_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            y = torch.multinomial(probs, bs, replacement=True, generator=g)
            idx = order[starts[y] + (torch.rand(bs, generator=g) * counts[y]).long()]
            t, c = _dihedral_pair(crops.test[idx], crops.context[idx], g)
            return t, c, y

        def fake(y: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
            return G(torch.randn(len(y), G.z_dim, generator=g), y, ctx, mask)

        t0 = time.time()
        G.train(), D.train()
        iterations = int(a["iterations"])
        w_avg = None
        with progress_steps(iterations, "defect GAN: training generator/critic", say, progress) as step:
            for it in range(iterations):
                for _ in range(n_critic):  # the critic sees (patch, context) pairs
                    real, ctx, y = real_batch()
                    with torch.no_grad():
                        gen = fake(y, ctx)
                    logged = critic_update(D, opt_d, torch.cat([real, ctx], 1), torch.cat([gen, ctx], 1), y,
                                           float(a["gp_weight"]))
                real, ctx, y = real_batch()
                logged.update(generator_update(D, opt_g, torch.cat([real, ctx], 1), torch.cat([fake(y, ctx), ctx], 1),
                                               y, float(a["fm_weight"])))
                w = float(logged["wasserstein"])
                w_avg = w if w_avg is None else 0.95 * w_avg + 0.05 * w
                if it % 10 == 0 or it == iterations - 1:
                    self.history.append({"step": it + 1, **{k: float(v) for k, v in logged.items()}})
                step(f"W {w_avg:.3f}  fm {float(logged['feature_matching']):.4f}")
        G.eval(), D.eval()
        self.fit_seconds = time.time() - t0
        return self

    @torch.no_grad()
    def generate(self, context: torch.Tensor, classes: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Patches (N, C, P, P) in [0, 1] with a defect of `classes[i]` drawn into `context[i]`."""
        if self.generator is None:
            raise RuntimeError("defect GAN is not fitted")
        G = self.generator.eval()
        z = torch.randn(len(classes), G.z_dim, generator=generator)
        return G(z, classes.long(), context.float(), box_mask(self.patch, self.margin))

    # ------------------------------------------------------------ files

    def save(self, out_dir: str | Path) -> Path:
        """Write `defect_gan.pt`, `history.csv` and `training_curves.png` into `out_dir`."""
        import pandas as pd

        from adrcs.report.synthesis import plot_synth_history

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / CHECKPOINT_NAME
        torch.save({"format": FORMAT, "args": self.args, "seed": self.seed, "class_names": self.class_names,
                    "channels": self.channels, "patch": self.patch, "margin": self.margin,
                    "uses_template": self.uses_template, "fit_seconds": self.fit_seconds, "history": self.history,
                    "box_sizes": {int(k): v.tolist() for k, v in self.box_sizes.items()},
                    "generator": self.generator.state_dict(), "critic": self.critic.state_dict()}, path)
        if self.history:
            hist = pd.DataFrame(self.history)
            hist.to_csv(out / "history.csv", index=False)
            plot_synth_history(hist, out / "training_curves.png", title="defect GAN training")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DefectGAN":
        """Load a folder (or file) written by `save`."""
        p = Path(path)
        p = p / CHECKPOINT_NAME if p.is_dir() else p
        try:
            ck = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:
            raise InputError(p, f"cannot read the defect GAN ({type(e).__name__})")
        if not isinstance(ck, dict) or ck.get("format") != FORMAT:
            raise InputError(p, f"not an ADRCS defect GAN (expected format {FORMAT})")
        gan = cls(seed=ck["seed"], **ck["args"])
        gan.class_names, gan.channels, gan.patch = list(ck["class_names"]), int(ck["channels"]), int(ck["patch"])
        gan.margin, gan.uses_template = float(ck["margin"]), bool(ck["uses_template"])
        gan.fit_seconds, gan.history = float(ck["fit_seconds"]), list(ck["history"])
        gan.box_sizes = {int(k): np.asarray(v, np.float32).reshape(-1, 2) for k, v in ck["box_sizes"].items()}
        gan._build()
        gan.generator.load_state_dict(ck["generator"])
        gan.critic.load_state_dict(ck["critic"])
        gan.generator.eval(), gan.critic.eval()
        return gan
