"""FixMatch for wafer maps (`semi_supervised: fixmatch`): labelled batches plus maps nobody labelled.

Sohn et al., "FixMatch: Simplifying semi-supervised learning with consistency and confidence" (NeurIPS
2020), with the distribution alignment of ReMixMatch (Berthelot et al., ICLR 2020) for the long tail:

- each step takes a labelled batch (B maps, the usual weighted cross entropy) and ``mu * B`` unlabelled maps;
- the *weak* view of an unlabelled map (a random dihedral symmetry) is classified without gradient;
- long tail: the labelled batches may be balanced (``balance: oversample``), so the network's outputs follow the
  training mix ``pi_train``, while the unlabelled maps come in the real mix ``pi`` (the labelled maps' before
  balancing). Logit adjustment (Menon et al., ICLR 2021) bridges the two: the weak view's probabilities are
  taken at ``logits + log(pi / pi_train)`` (the posterior in the real mix, right for the pool), and the strong
  view is trained with the same offset added, so the network itself keeps answering in the training mix and the
  common classes do not swallow the rare ones. Without balancing the offset is zero: plain FixMatch;
- the probabilities are then aligned, ``p <- normalise(p * pi / running_mean(p))`` (running mean: the model's
  mean prediction on unlabelled maps, an EMA), which keeps the pseudo-labels in the real class mix;
- where the aligned top probability reaches ``threshold`` its argmax becomes the pseudo-label of the *strong*
  view (die noise + cutout + symmetry, `transforms.map_augment.strong_view`), trained with cross entropy
  weighted by ``lambda_u``; below the threshold the map adds nothing this step.
- ``flex: true``: FlexMatch's class-wise thresholds (Zhang et al., NeurIPS 2021): each pool map's latest
  confident prediction is remembered; a class that few maps are confidently assigned to yet gets a lower
  threshold, ``threshold * b / (2 - b)`` with ``b`` its count over the largest count (or over the maps not yet
  assigned, while those are more: the warm-up), so the rare classes take part before they reach 0.95.

The logged ``mask_rate`` (share of unlabelled maps above the threshold) and ``unsup_loss`` show whether the
unlabelled maps take part. Options (config ``semi_args``) are checked by `semi_options`.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from adrcs.engine.classifier_module import ClassifierModule
from adrcs.errors import InputError
from adrcs.transforms.dihedral import random_dihedral
from adrcs.transforms.map_augment import strong_view

METHODS = ("auto", "none", "fixmatch", "distill")
# `semi_args` of the config: defaults of the paper (threshold, mu, lambda_u) and of the strong view.
OPTIONS: dict[str, Any] = {"threshold": 0.95, "mu": 7, "lambda_u": 1.0, "dist_align": True, "ema": 0.999,
                           "p_fail": 0.02, "p_drop": 0.1, "cutout": 0.25, "flex": False}


def semi_options(given: dict[str, Any] | None) -> dict[str, Any]:
    """`OPTIONS` updated by `given` (config ``semi_args``); one-line InputError naming a bad option."""
    opts = dict(OPTIONS)
    for key, value in (given or {}).items():
        if key not in OPTIONS:
            raise InputError(None, f"semi_args: unknown option {key!r}; known: {sorted(OPTIONS)}")
        want = type(OPTIONS[key])
        if want is bool:
            if not isinstance(value, bool):
                raise InputError(None, f"semi_args.{key}: {value!r} is not true or false")
            opts[key] = value
            continue
        try:
            opts[key] = want(value)
        except (TypeError, ValueError):
            raise InputError(None, f"semi_args.{key}: cannot read {value!r} as a number")
    checks = {"threshold": 0 < opts["threshold"] <= 1, "mu": opts["mu"] >= 1, "lambda_u": opts["lambda_u"] >= 0,
              "ema": 0 <= opts["ema"] < 1, "p_fail": 0 <= opts["p_fail"] <= 1, "p_drop": 0 <= opts["p_drop"] <= 1,
              "cutout": 0 <= opts["cutout"] <= 1}
    for key, ok in checks.items():
        if not ok:
            raise InputError(None, f"semi_args.{key}: {opts[key]!r} is out of range")
    return opts


# What ``semi_supervised: auto`` applies to a wafer-map network: the best method of bench/labels.py. There, with
# 1 % labels (623 maps, + 33,065 unlabelled), supervised training with oversampling scored val macro-F1 0.753
# (3 seeds) and FixMatch 0.696 (0.690 without logit adjustment, FlexMatch 0.647; seed 0): the unlabelled maps taught
# the common classes and drowned Scratch and Loc; at 10 % labels 0.842 against 0.889 (Near-full 0.98 -> 0.69).
# So auto trains on the labelled maps only and says so. Letting teachers (--teacher) label the unlabelled maps
# (distill, a noisy student, as many steps as a teacher) helped at 10 % labels (0.895 / 0.895 val / confirm, seed 0,
# against 0.885 / 0.891 for its two supervised teachers) but hurt at 1 % (0.694 / 0.699 against 0.752 / 0.749: 3 %
# of each batch labelled, teachers at 0.75), so auto does not pick it either (teachers still teach on the labelled
# maps); --semi-supervised distill asks for it.
AUTO_METHOD = "none"
AUTO_WITH_TEACHERS = "none"
AUTO_NOTE = ("unlabeled: bench/labels.py found no gain from FixMatch over supervised training at these label "
             "counts, so the network trains on the labelled maps (--semi-supervised fixmatch to use them anyway)")


def resolve_method(cfg: dict[str, Any], n_unlabeled: int, say: Callable[[str], None] | None = None) -> str:
    """The semi-supervised method a run uses: ``auto`` is `AUTO_METHOD` for a wafer-map network given unlabelled
    maps (`AUTO_WITH_TEACHERS` when it also has teachers; the sinogram pipeline gives them to its SBAE instead),
    else none. `say` gets `AUTO_NOTE` when auto
    leaves given maps out of the network's training."""
    method = str(cfg.get("semi_supervised", "auto")).lower()
    if method not in METHODS:
        raise InputError(None, f"semi_supervised must be one of {', '.join(METHODS)} (got {method!r})")
    if method == "auto":
        for_network = bool(n_unlabeled) and cfg.get("features", "none") == "none"
        method = (AUTO_WITH_TEACHERS if cfg.get("distill_from") else AUTO_METHOD) if for_network else "none"
        if for_network and method == "none" and say is not None:
            say(AUTO_NOTE)
    if method == "fixmatch":
        if cfg.get("features", "none") != "none":
            raise InputError(None, "semi_supervised: fixmatch is for wafer-map networks (features: none)")
        if not n_unlabeled:
            raise InputError("--unlabeled", "semi_supervised: fixmatch needs maps without labels (--unlabeled)")
    if method == "distill":  # the teachers label the unlabelled maps (`engine.distill`)
        if not cfg.get("distill_from"):
            raise InputError("--teacher", "semi_supervised: distill needs teachers (--teacher RUN or distill_from)")
        if not n_unlabeled:
            raise InputError("--unlabeled", "semi_supervised: distill needs maps without labels (--unlabeled)")
        if cfg.get("features", "none") != "none":
            raise InputError(None, "semi_supervised: distill is for wafer-map networks (features: none)")
    return method


class FixMatchModule(ClassifierModule):
    """`ClassifierModule` whose training batches are ``{"labeled": (maps, y), "unlabeled": (maps, _)}``."""

    def __init__(self, *args: Any, semi_args: dict[str, Any] | None = None,
                 class_prior: list[float] | None = None, train_prior: list[float] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.hparams.multilabel or self.hparams.inputs != "map":
            raise InputError(None, "semi_supervised: fixmatch needs single-label wafer maps")
        self.semi = semi_options(semi_args)
        k = int(self.hparams.num_classes)
        prior = torch.full((k,), 1.0 / k) if class_prior is None else torch.tensor(class_prior, dtype=torch.float32)
        prior = prior.clamp(min=1e-6)
        self.register_buffer("prior", prior / prior.sum(), persistent=False)
        self.register_buffer("p_model", self.prior.clone(), persistent=False)
        self.register_buffer("memory", torch.zeros(0, dtype=torch.long), persistent=False)  # flex: pool map -> class
        mix = self.prior if train_prior is None else torch.tensor(train_prior, dtype=torch.float32).clamp(min=1e-6)
        self.register_buffer("adjust", (self.prior / (mix / mix.sum())).log(), persistent=False)

    def pseudo_labels(self, weak_logits: torch.Tensor,
                      index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(pseudo-label, mask) of unlabelled maps from their weak views' logits (distribution-aligned)."""
        p = (weak_logits.float() + self.adjust).softmax(dim=1)
        if self.semi["dist_align"]:
            m = self.semi["ema"]
            self.p_model.mul_(m).add_((1 - m) * p.mean(dim=0))
            p = p * (self.prior / self.p_model.clamp(min=1e-6))
            p = p / p.sum(dim=1, keepdim=True)
        conf, label = p.max(dim=1)
        if not self.semi["flex"] or index is None:
            return label, (conf >= self.semi["threshold"]).float()
        return label, self.flex_mask(conf, label, index)

    def flex_mask(self, conf: torch.Tensor, label: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """FlexMatch: class-wise thresholds from the remembered confident predictions of the pool maps."""
        k = int(self.hparams.num_classes)
        if len(self.memory) <= int(index.max()):
            grown = torch.full((int(index.max()) + 1,), -1, dtype=torch.long, device=conf.device)
            grown[:len(self.memory)] = self.memory
            self.memory = grown
        assigned = self.memory[self.memory >= 0]
        sigma = torch.bincount(assigned, minlength=k).float()
        unused = float((self.memory < 0).sum())
        beta = sigma / max(float(sigma.max()), unused, 1.0)
        tau = self.semi["threshold"] * beta / (2 - beta)
        confident = conf >= self.semi["threshold"]
        self.memory[index[confident]] = label[confident]
        return (conf >= tau[label]).float()

    def training_step(self, batch, batch_idx):
        maps, y = batch["labeled"]
        umaps, index = batch["unlabeled"]  # the pool rows (MapTensors' labels are row numbers)
        if self.hparams.augment == "dihedral":
            maps = random_dihedral(maps)
        sup = self.loss(self(maps), y)
        with torch.no_grad():
            label, mask = self.pseudo_labels(self(random_dihedral(umaps)), index)
        s = self.semi
        strong = strong_view(umaps, s["p_fail"], s["p_drop"], s["cutout"])
        unsup = (F.cross_entropy(self(strong) + self.adjust, label, reduction="none") * mask).mean()
        loss = sup + s["lambda_u"] * unsup
        n = len(y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.log("sup_loss", sup, on_step=False, on_epoch=True, batch_size=n)
        self.log("unsup_loss", unsup, on_step=False, on_epoch=True, batch_size=n)
        self.log("mask_rate", mask.mean(), on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        return loss
