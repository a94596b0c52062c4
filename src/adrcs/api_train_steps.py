"""Optional steps of `adrcs train` before the network trains: balancing the training split (`balance_run`),
the teachers' targets for distillation (`distill_targets_run`) and fitting the sinogram features
(`sinogram_features_run`). All see the training split (and maps without labels for the SBAE) only, never
validation maps."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.errors import InputError
from adrcs.pipeline import Pipeline

Printer = Callable[[str], None]


def balance_run(cfg: dict[str, Any], train_set: WaferMapSet, out: Path,
                say: Printer) -> tuple[WaferMapSet, dict[str, Any]]:
    """Balance the training split as `cfg['balance']` says; fits (or loads) the synthesizer.

    Writes into the run folder: `synth/` (the synthesizer used), `synthetic_maps.pkl.xz` (every
    added map, marked synthetic) and `plots/synthetic_samples.png` (real vs added maps)."""
    import time

    from adrcs.data.writer import save_wafer_maps
    from adrcs.report.synthesis import plot_real_vs_synthetic
    from adrcs.synth import create_synthesizer, load_synthesizer
    from adrcs.synth.balance import balance_training_set

    method = cfg["balance"]
    synthesizer, synth_seconds = None, 0.0
    if method in ("cae", "gan"):
        if cfg["synth_model"]:
            synthesizer = load_synthesizer(cfg["synth_model"], device=cfg["device"])
            say(f"balance: using the {synthesizer.method} synthesizer in {cfg['synth_model']}")
            if synthesizer.class_counts != {c: int(n) for c, n in zip(
                    train_set.class_names, np.bincount(train_set.labels, minlength=len(train_set.class_names)))}:
                say("balance: warning: that synthesizer was fitted on other maps than this training split")
        else:
            say(f"balance: fitting a {method} synthesizer on the {len(train_set)} training maps")
            t0 = time.time()
            synthesizer = create_synthesizer(method, seed=int(cfg["seed"]), device=cfg["device"], **cfg["synth_args"])
            synthesizer.fit(train_set, say=say, progress=bool(cfg["progress"]))
            synth_seconds = time.time() - t0
        synthesizer.save(out / "synth")
    judge = None
    if cfg["synth_filter"] and method in ("cae", "gan"):
        judge = Pipeline.load(cfg["synth_filter"])
        say(f"balance: keeping synthetic maps that {cfg['synth_filter']} assigns to their class "
            f"(p >= {cfg['synth_filter_threshold']})")
    t0 = time.time()
    balanced, info = balance_training_set(train_set, method, int(cfg["balance_target"]), synthesizer, int(cfg["seed"]),
                                          judge=judge, threshold=float(cfg["synth_filter_threshold"]))
    info["synth_filter"] = str(cfg["synth_filter"])
    info["synth_fit_seconds"] = round(synth_seconds, 1)
    info["sample_seconds"] = round(time.time() - t0, 1)
    info["synth_model"] = str(cfg["synth_model"] or (out / "synth" if synthesizer else ""))
    added = balanced.subset(balanced.meta["synthetic"].to_numpy(bool))
    if len(added):
        save_wafer_maps(added, out / "synthetic_maps.pkl.xz")
        real = {c: [m for m, y in zip(train_set.maps, train_set.labels) if y == i][:6]
                for i, c in enumerate(train_set.class_names)}
        new = {c: [m for m, y in zip(added.maps, added.labels) if y == i][:6]
               for i, c in enumerate(train_set.class_names) if info["added"][c]}
        plot_real_vs_synthetic(real, new, out / "plots" / "synthetic_samples.png",
                               title=f"training maps (left) vs maps added by {method} (right)")
    say(f"balance={method}: target {info['target']} maps per class, added "
        + (", ".join(f"{c} +{n}" for c, n in info["added"].items() if n) or "nothing"))
    return balanced, info


def sinogram_features_run(cfg: dict[str, Any], train_set: WaferMapSet, out: Path, say: Printer,
                          unlabeled: WaferMapSet | None = None):
    """Fit (or take from the cache) the SBAE -> Radon -> selection step on the training maps; the SBAE also
    learns from the `unlabeled` maps (the selection needs labels: training maps only).

    Writes `features/sbae_history.csv`, `features/selection.json` and `plots/selection_convergence.png`."""
    from adrcs.features.cache import FeatureCache, fit_with_cache
    from adrcs.features.sinogram import SinogramFeatures
    from adrcs.transforms.resize import resize_stack

    feats = SinogramFeatures(encoder=cfg["encoder"], sbae_args=cfg["sbae_args"], radon_angles=int(cfg["radon_angles"]),
                             selector=cfg["selector"], selector_args=cfg["selector_args"],
                             select_samples=int(cfg["select_samples"]), seed=int(cfg["seed"]),
                             device="cuda" if cfg["device"] in ("gpu", "cuda", "auto") and _cuda() else "cpu")
    maps = resize_stack(train_set.maps, int(cfg["input_size"]), cfg["resize"])
    try:
        extra = None if unlabeled is None else resize_stack(unlabeled.maps, int(cfg["input_size"]), cfg["resize"])
        hits = fit_with_cache(feats, maps, train_set.labels, FeatureCache.from_setting(cfg["feature_cache"]), say=say,
                              progress=bool(cfg["progress"]), encoder_maps=extra)
    except ValueError as e:  # e.g. an option the encoder or selector does not know
        raise InputError(None, f"sinogram features: {e}")
    except TypeError as e:
        raise InputError(None, f"sinogram features: bad sbae_args/selector_args ({e})")
    info = {**feats.summary(), "cache_hits": hits}
    fdir = out / "features"
    fdir.mkdir(parents=True, exist_ok=True)
    if feats.sbae_ is not None and feats.sbae_.history_:
        pd.DataFrame(feats.sbae_.history_).to_csv(fdir / "sbae_history.csv", index=False)
    selected = np.flatnonzero(feats.support_).tolist()
    (fdir / "selection.json").write_text(json.dumps({**info, "history": feats.history_, "selected_index": selected},
                                                    indent=2))
    if feats.history_:
        from adrcs.report.selection import plot_convergence

        plot_convergence({feats.selector: feats.history_}, out / "plots" / "selection_convergence.png",
                         title=f"{feats.selector} feature search (best fitness per iteration)")
    say(f"features: {feats.encoder} -> Radon -> {feats.selector}: kept {feats.n_features_out} of {feats.n_pool_} "
        f"sinogram features ({100 * feats.n_features_out / feats.n_pool_:.1f} %)")
    return feats, info


def distill_targets_run(cfg: dict[str, Any], train_set: WaferMapSet, say: Printer,
                        unlabeled: WaferMapSet | None = None) -> tuple[WaferMapSet, np.ndarray, dict[str, Any]]:
    """The teachers' (``cfg['distill_from']``) mean 8-view probabilities of every training map, and what the
    run records of them (`engine.distill`). With `unlabeled` maps (``semi_supervised: distill``) those join the
    training set with label -1 and the teachers' targets. Returns (training set, targets, record)."""
    import time

    from adrcs.engine.distill import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
    from adrcs.inference.teachers import teacher_targets

    t = time.perf_counter()
    names, multi = train_set.class_names, train_set.multilabel
    soft = teacher_targets(cfg["distill_from"], train_set.maps, names, multi, say)
    args = dict(cfg.get("distill_args") or {})
    info: dict[str, Any] = {"teachers": [str(p) for p in cfg["distill_from"]],
                            "alpha": float(args.get("alpha", DEFAULT_ALPHA)),
                            "temperature": float(args.get("temperature", DEFAULT_TEMPERATURE))}
    if not multi:  # how often the teachers' ensemble agrees with the labels it learns beside
        info["teacher_train_agreement"] = round(float((soft.argmax(axis=1) == train_set.labels).mean()), 4)
    if unlabeled is not None and len(unlabeled):
        if multi:
            raise InputError(None, "semi_supervised: distill is for single-label maps (use `adrcs pretrain` + "
                                   "--init for multi-label data)")
        if cfg["imbalance"] == "sampler":
            raise InputError(None, "semi_supervised: distill cannot be combined with imbalance: sampler (maps "
                                   "without labels have no class to sample by); use power or sqrt_weights")
        soft_u = teacher_targets(cfg["distill_from"], unlabeled.maps, names, multi, say)
        pool = WaferMapSet(list(unlabeled.maps), np.full(len(unlabeled), -1, np.int64), list(names),
                           unlabeled.meta.reset_index(drop=True))
        train_set = WaferMapSet.concat([train_set, pool])
        soft = np.concatenate([soft, soft_u])
        mix = np.bincount(soft_u.argmax(axis=1), minlength=len(names))
        info["unlabeled_maps"] = len(unlabeled)
        info["unlabeled_teacher_classes"] = {n: int(c) for n, c in zip(names, mix)}
        say(f"distillation: {len(unlabeled)} maps without labels join the training set with the teachers' "
            f"targets (their answers: {', '.join(f'{n} {c}' for n, c in zip(names, mix) if c)})")
    info["teacher_seconds"] = round(time.perf_counter() - t, 1)
    say(f"distillation: {len(info['teachers'])} teacher(s), alpha {info['alpha']}, temperature "
        f"{info['temperature']} ({info['teacher_seconds']:.0f}s)")
    return train_set, soft, info


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
