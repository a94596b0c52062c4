"""`gan`: class-conditional DCGAN trained as a WGAN-GP with a feature-matching term (ADRCS paper).

Generator: (noise z, class embedding) -> Linear -> 4w x S/8 x S/8, then transposed convs
(4x4, stride 2) with BatchNorm + ReLU up to S x S, and a last transposed conv to 3 channels
whose softmax is a soft one-hot map (off-wafer / good / failing).

Critic: convs (4x4, stride 2) + LeakyReLU(0.2) and no BatchNorm (the WGAN-GP gradient penalty
is taken per sample, which batch statistics would break), giving a feature vector f(x); the score is
`Linear(f) + <embed(class), f>` (projection conditioning).

Losses, per generator step after `critic_steps` critic steps:
- critic: E[D(fake)] - E[D(real)] + `gp_weight` * E[(|grad D(x_hat)| - 1)^2] (WGAN-GP);
- generator: -E[D(fake)] + `fm_weight` * mean((E f(real) - E f(fake))^2) (feature matching).
Adam, lr 2e-4, betas (0.5, 0.9). Real batches draw classes with probability ~ count ** 0.5 and
every real map gets a random rot90/flip, so classes with tens of maps still train stably.
Options: `ema` > 0 samples from an exponential moving average of the generator's weights;
`truncation` < 1 scales the sampling noise z (fewer odd maps, less variety).
`history.csv` logs the Wasserstein estimate E[D(real)] - E[D(fake)] over training.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn

from adrcs.engine.progress import progress_steps
from adrcs.synth.base import Printer, Synthesizer, register_synthesizer
from adrcs.transforms.dihedral import random_dihedral
from adrcs.transforms.one_hot import one_hot_maps


class Generator(nn.Module):
    """Conditional DCGAN generator: (z, class) -> logits (N, 3, S, S)."""

    def __init__(self, num_classes: int, size: int, z_dim: int = 64, width: int = 64) -> None:
        super().__init__()
        self.z_dim, self.s0, self.w = z_dim, size // 8, width
        self.embed = nn.Embedding(num_classes, z_dim)
        self.fc = nn.Sequential(nn.Linear(2 * z_dim, 4 * width * self.s0 ** 2, bias=False),
                                nn.BatchNorm1d(4 * width * self.s0 ** 2), nn.ReLU(inplace=True))

        def up(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                                 nn.ReLU(inplace=True))

        self.body = nn.Sequential(up(4 * width, 2 * width), up(2 * width, width),
                                  nn.ConvTranspose2d(width, 3, 4, 2, 1))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(y)], dim=1)).view(-1, 4 * self.w, self.s0, self.s0)
        return self.body(h)


class Critic(nn.Module):
    """Conditional WGAN critic with projection: returns (score (N,), features (N, F))."""

    def __init__(self, num_classes: int, size: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        n_feat = 4 * width * (size // 8) ** 2
        self.out = nn.Linear(n_feat, 1)
        self.embed = nn.Embedding(num_classes, n_feat)
        nn.init.normal_(self.embed.weight, std=0.01)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)
        return self.out(f).squeeze(1) + (self.embed(y) * f).sum(dim=1), f


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: E[(|grad_x D(x_hat)|_2 - 1)^2] on random interpolates of real and fake."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    score, _ = critic(x_hat, y)
    (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def feature_matching(f_real: torch.Tensor, f_fake: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between the batch-mean critic features of real and generated maps."""
    return (f_real.detach().mean(dim=0) - f_fake.mean(dim=0)).pow(2).mean()


def critic_update(critic: nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor,
                  y: torch.Tensor, gp_weight: float) -> dict[str, torch.Tensor]:
    """One WGAN-GP critic step on a real and a (detached) generated batch; returns the logged terms."""
    d_real, _ = critic(real, y)
    d_fake, _ = critic(fake, y)
    gp = gradient_penalty(critic, real, fake, y)
    wasserstein = d_real.mean() - d_fake.mean()
    loss = -wasserstein + gp_weight * gp
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"wasserstein": wasserstein.detach(), "gradient_penalty": gp.detach(), "critic_loss": loss.detach()}


def generator_update(critic: nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor,
                     y: torch.Tensor, fm_weight: float) -> dict[str, torch.Tensor]:
    """One generator step: -E[D(fake)] + `fm_weight` * feature matching against the real batch."""
    d_fake, f_fake = critic(fake, y)
    with torch.no_grad():
        _, f_real = critic(real, y)
    fm = feature_matching(f_real, f_fake)
    loss = -d_fake.mean() + fm_weight * fm
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"generator_loss": loss.detach(), "feature_matching": fm.detach()}


@register_synthesizer
class GANSynthesizer(Synthesizer):
    """Class-conditional WGAN-GP + feature matching; generator and critic as in the module docstring."""

    method = "gan"
    default_size = 32  # 2.3x cheaper than 48 on CPU; the classifier resizes maps anyway
    defaults = {"iterations": 1500, "critic_steps": 2, "batch_size": 64, "lr": 2.0e-4, "betas": [0.5, 0.9],
                "gp_weight": 10.0, "fm_weight": 1.0, "z_dim": 64, "g_width": 48, "d_width": 32,
                "class_power": 0.5, "ema": 0.999, "truncation": 1.0}

    def _build(self) -> dict[str, nn.Module]:
        a, k = self.args, len(self.class_names)
        nets: dict[str, nn.Module] = {"generator": Generator(k, self.size, int(a["z_dim"]), int(a["g_width"])),
                                      "critic": Critic(k, self.size, int(a["d_width"]))}
        if float(a["ema"]) > 0:  # exponential moving average of the generator, used for sampling
            nets["generator_ema"] = copy.deepcopy(nets["generator"]).requires_grad_(False)
        return nets

    @torch.no_grad()
    def _recalibrate_batch_norm(self, net: nn.Module, probs: torch.Tensor, g: torch.Generator,
                                batches: int = 100) -> None:
        """Re-estimate BatchNorm statistics for (EMA) weights on mixed-class noise batches."""
        bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
        net.train()
        bs = int(self.args["batch_size"])
        for _ in range(batches):
            y = torch.multinomial(probs, bs, replacement=True, generator=g).to(self.device)
            net(torch.randn(bs, net.z_dim, generator=g).to(self.device), y)
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        net.eval()

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = float(self.args["ema"])
        G, E = self.nets["generator"], self.nets["generator_ema"]
        for pe, pg in zip(E.parameters(), G.parameters()):
            pe.lerp_(pg, 1.0 - decay)
        for be, bg in zip(E.buffers(), G.buffers()):
            be.copy_(bg)

    def _class_probs(self) -> np.ndarray:
        counts = np.bincount(self.train_labels, minlength=len(self.class_names)).astype(np.float64)
        p = np.where(counts > 0, counts ** float(self.args["class_power"]), 0.0)
        return p / p.sum()

    def _fit(self, say: Printer, progress: bool) -> None:
        G, D, dev, a = self.nets["generator"], self.nets["critic"], self.device, self.args
        betas = tuple(float(b) for b in a["betas"])
        opt_g = torch.optim.Adam(G.parameters(), lr=float(a["lr"]), betas=betas)
        opt_d = torch.optim.Adam(D.parameters(), lr=float(a["lr"]), betas=betas)
        g = torch.Generator().manual_seed(self.seed)
        maps = torch.from_numpy(self.train_maps)
        order = torch.from_numpy(np.argsort(self.train_labels, kind="stable"))
        counts = torch.from_numpy(np.bincount(self.train_labels, minlength=len(self.class_names)))
        starts = torch.cumsum(counts, 0) - counts
        probs = torch.from_numpy(self._class_probs())
        bs, n_critic = int(a["batch_size"]), int(a["critic_steps"])

        def real_batch() -> tuple[torch.Tensor, torch.Tensor]:
            y = torch.multinomial(probs, bs, replacement=True, generator=g)
            idx = order[starts[y] + (torch.rand(bs, generator=g) * counts[y]).long()]
            return one_hot_maps(random_dihedral(maps[idx], g).to(dev)), y.to(dev)

        def fake_batch(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = torch.randn(len(y), G.z_dim, generator=g).to(dev)
            return torch.softmax(G(z, y), dim=1), y

        G.train(), D.train()
        iterations = int(a["iterations"])
        w_avg = None
        with progress_steps(iterations, "gan: training generator/critic", say, progress) as step:
            for it in range(iterations):
                for _ in range(n_critic):
                    real, y = real_batch()
                    with torch.no_grad():
                        fake, _ = fake_batch(y)
                    logged = critic_update(D, opt_d, real, fake, y, float(a["gp_weight"]))
                real, y = real_batch()
                fake, _ = fake_batch(y)
                logged.update(generator_update(D, opt_g, real, fake, y, float(a["fm_weight"])))
                if "generator_ema" in self.nets:
                    self._update_ema()
                w = float(logged["wasserstein"])
                w_avg = w if w_avg is None else 0.95 * w_avg + 0.05 * w
                if it % 10 == 0 or it == iterations - 1:
                    self.history.append({"step": it + 1, **{k: float(v) for k, v in logged.items()}})
                step(f"W {w_avg:.3f}  fm {float(logged['feature_matching']):.4f}")
        if "generator_ema" in self.nets:  # its BN statistics were tracked for other weights
            self._recalibrate_batch_norm(self.nets["generator_ema"], probs, g)

    def _sample(self, class_index: int, n: int, generator: torch.Generator) -> np.ndarray:
        G = self.nets.get("generator_ema", self.nets["generator"]).eval()
        out = []
        for i in range(0, n, 512):
            m = min(512, n - i)
            z = float(self.args["truncation"]) * torch.randn(m, G.z_dim, generator=generator).to(self.device)
            y = torch.full((m,), class_index, dtype=torch.long, device=self.device)
            out.append(G(z, y).argmax(dim=1).to(torch.uint8).cpu())
        return torch.cat(out).numpy()
