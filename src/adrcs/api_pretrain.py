"""Self-supervised pretraining API (`adrcs pretrain`): train a wafer-map encoder on maps without labels, and
read the encoder back (`adrcs train --init DIR` starts from it, see `engine.pretrain.init_from_encoder`).

The output folder holds ``encoder.pt`` (format ``adrcs-encoder/1``), ``config.yaml`` (the run config with its
``pretrain:`` options and the data paths; `load_pretrain_config` reads it back), ``history.csv`` (loss per
epoch), ``plots/pretrain_loss.png`` and ``plots/features_tsne.png``: a t-SNE of the pretrained features of up
to 2,000 held-back maps, coloured by their labels. Labels are only ever used for that plot and for the kNN
score printed with it (5-fold macro-F1 of a 10-nearest-neighbour vote on the features, next to the same score
of an untrained network): from the ``--val`` maps when given, else from the unlabelled files' own labels.
Maps identical to a ``--val`` map are dropped from the pretraining maps, so no validation map is trained on.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from adrcs.api_reading import read_maps
from adrcs.config import DEFAULTS, load_config, read_yaml_mapping, save_config
from adrcs.data.fab import FabOptions
from adrcs.data.limits import InputLimits
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.engine.pretrain import (ENCODER_NAME, OPTIONS, check_pretrainable, encoder_features, pretrain_encoder,
                                   pretrain_options, read_encoder, save_encoder)
from adrcs.errors import InputError
from adrcs.transforms.resize import resize_stack

Printer = Callable[[str], None]
PLOT_MAPS = 2000
RECORD_KEYS = ("unlabeled", "val", "train")  # written into config.yaml for the record, not options


def load_pretrain_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run config (defaults < YAML < `overrides`, as `config.load_config`) plus ``cfg['pretrain']``: the
    pretraining options (`engine.pretrain.OPTIONS`) from the YAML's ``pretrain:`` mapping and the overrides
    named like them (``method``, ``temperature``, ...). Reads a pretraining folder's own config.yaml too."""
    data = read_yaml_mapping(path) if path is not None else {}
    given = data.pop("pretrain", None) or {}
    if not isinstance(given, dict):
        raise InputError(path, "pretrain: must be a mapping of pretraining options")
    for key in RECORD_KEYS:
        data.pop(key, None)
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise InputError(path, f"unknown config keys {unknown}; known keys: {sorted(DEFAULTS)}")
    rest = dict(data)
    for key, value in (overrides or {}).items():
        if value is not None:
            (given if key in OPTIONS else rest)[key] = value
    cfg = load_config(None, rest)
    check_pretrainable(cfg)
    cfg["pretrain"] = pretrain_options(given)
    return cfg


def load_encoder(where: str | Path) -> dict[str, Any]:
    """The encoder a pretraining folder holds: format, model, model_args, input_size, resize, state_dict
    (no head), pretrain (summary); one-line InputError when `where` holds none."""
    return read_encoder(where)


def _map_keys(ds: WaferMapSet) -> list[bytes]:
    return [hashlib.blake2b(np.ascontiguousarray(m, np.uint8).tobytes() + repr(np.shape(m)).encode(),
                            digest_size=16).digest() for m in ds.maps]


def without_maps_of(ds: WaferMapSet, other: WaferMapSet) -> tuple[WaferMapSet, int]:
    """`ds` without the maps identical (codes and shape) to a map of `other`, and how many were dropped."""
    seen = set(_map_keys(other))
    keep = np.array([k not in seen for k in _map_keys(ds)], bool)
    return ds.subset(keep), int((~keep).sum())


def _label_names(ds: WaferMapSet) -> np.ndarray:
    """A class name per labelled map (multi-label: the labels joined by '+', 'none' for none)."""
    if not ds.multilabel:
        return np.array([ds.class_names[k] for k in ds.labels], dtype=object)
    return np.array(["+".join(c for c, on in zip(ds.class_names, row) if on) or "none" for row in ds.labels],
                    dtype=object)


def plot_sample(labels: np.ndarray, n_max: int, seed: int) -> np.ndarray:
    """Indices of at most `n_max` maps, classes as even as their counts allow (rare classes all kept)."""
    rng = np.random.default_rng(seed)
    groups = {c: rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)}
    quota, left = {c: 0 for c in groups}, min(n_max, len(labels))
    while left > 0:  # water filling: one more map for every class that still has some
        open_ = [c for c in groups if quota[c] < len(groups[c])]
        for c in open_[:left]:
            quota[c] += 1
        left -= min(len(open_), left)
    return np.sort(np.concatenate([groups[c][:quota[c]] for c in groups] or [np.zeros(0, int)]))


def knn_macro_f1(feats: np.ndarray, labels: np.ndarray, seed: int = 0) -> float | None:
    """5-fold macro-F1 of a 10-nearest-neighbour vote (cosine) on `feats`; None with fewer than 2 classes of
    at least 2 maps."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    names, counts = np.unique(labels, return_counts=True)
    keep = np.isin(labels, names[counts >= 2])
    if len(names[counts >= 2]) < 2 or keep.sum() < 10:
        return None
    x = feats[keep] / np.maximum(np.linalg.norm(feats[keep], axis=1, keepdims=True), 1e-12)
    y = labels[keep].astype(str)
    folds = StratifiedKFold(n_splits=min(5, int(np.unique(y, return_counts=True)[1].min())), shuffle=True,
                            random_state=seed)
    pred = cross_val_predict(KNeighborsClassifier(n_neighbors=min(10, len(y) // 2)), x, y, cv=folds)
    return float(f1_score(y, pred, average="macro"))


def plot_tsne(feats: np.ndarray, labels: np.ndarray | None, path: Path, title: str, seed: int = 0) -> Path:
    """t-SNE (after PCA to 50 dimensions) of `feats`, one colour per label (grey without labels)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    from adrcs.report.plots import _placeholder, plt, save_figure

    if len(feats) < 5:
        return _placeholder(path, f"only {len(feats)} maps: too few for a t-SNE", title)
    x = feats.astype(np.float64)
    x = PCA(n_components=min(50, x.shape[1], len(x)), random_state=seed).fit_transform(x)
    xy = TSNE(n_components=2, perplexity=float(min(30.0, max(2.0, (len(x) - 1) / 3))), init="pca",
              random_state=seed).fit_transform(x)
    fig, ax = plt.subplots(figsize=(8, 6.5))
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=5, c="0.4", alpha=0.7, label=f"unlabelled ({len(xy)})")
    else:
        cmap = plt.get_cmap("tab10" if len(np.unique(labels)) <= 10 else "tab20")
        for i, name in enumerate(np.unique(labels)):
            on = labels == name
            ax.scatter(xy[on, 0], xy[on, 1], s=5, color=cmap(i % cmap.N), alpha=0.75, label=f"{name} ({on.sum()})")
    ax.legend(fontsize=7, markerscale=3, loc="best")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return save_figure(fig, path)


def _feature_view(cfg: dict[str, Any], net: torch.nn.Module, unlabeled: WaferMapSet, val: WaferMapSet | None,
                  out: Path, say: Printer) -> dict[str, Any]:
    """plots/features_tsne.png and the kNN scores of the pretrained and of an untrained encoder."""
    from adrcs.engine.pretrain import torch_device
    from adrcs.models import create_model

    source = val if val is not None else unlabeled
    what = "--val" if val is not None else "unlabelled"
    labelled = source.subset(source.labeled_mask)
    seed = int(cfg["seed"])
    if len(labelled):
        names = _label_names(labelled)
        idx = plot_sample(names, PLOT_MAPS, seed)
        maps, labels = [labelled.maps[i] for i in idx], names[idx]
    else:
        say(f"features plot: the {what} maps carry no labels; the t-SNE is not coloured")
        idx = np.sort(np.random.default_rng(seed).permutation(len(source))[:PLOT_MAPS])
        maps, labels = [source.maps[i] for i in idx], None
    x = torch.from_numpy(resize_stack(maps, int(cfg["input_size"]), cfg["resize"]))
    device = str(torch_device(str(cfg["device"])))
    feats = encoder_features(net, x, int(cfg["eval_batch_size"]), device)
    info: dict[str, Any] = {"tsne_maps": len(maps), "tsne_source": what, "knn_macro_f1": None,
                            "knn_macro_f1_untrained": None}
    if labels is not None:
        torch.manual_seed(seed)
        untrained = create_model(cfg["model"], num_classes=2, **dict(cfg["model_args"] or {}))
        info["knn_macro_f1"] = knn_macro_f1(feats, labels, seed)
        info["knn_macro_f1_untrained"] = knn_macro_f1(encoder_features(untrained, x, int(cfg["eval_batch_size"]),
                                                                       device), labels, seed)
    score = ("" if info["knn_macro_f1"] is None else f"; kNN macro-F1 {info['knn_macro_f1']:.3f} "
             f"(untrained {info['knn_macro_f1_untrained']:.3f})")
    say(f"features plot: t-SNE of {len(maps)} {what} maps (labels for colour only){score}")
    plot_tsne(feats, labels, out / "plots" / "features_tsne.png",
              f"t-SNE of pretrained {cfg['model']} features, {len(maps)} {what} maps{score}", seed)
    return info


def pretrain(cfg: dict[str, Any], unlabeled_paths: Sequence[str | Path], out: str | Path, say: Printer = print,
             val_paths: Sequence[str | Path] | None = None, *, trust_pickle: bool = False,
             limits: InputLimits | None = None, fab: FabOptions | None = None, on_error: str = "stop") -> dict[str, Any]:
    """Pretrain `cfg['model']`'s encoder on every map of `unlabeled_paths` (labels ignored), with the options
    of ``cfg['pretrain']`` (`load_pretrain_config`); `val_paths` only colour the features plot. Writes `out`
    (see the module docstring) and returns the summary stored in encoder.pt (method, epochs, n_maps, losses,
    seconds, kNN scores)."""
    check_pretrainable(cfg)
    opts = pretrain_options(cfg.get("pretrain"))
    if not unlabeled_paths:
        raise InputError(None, "no maps to pretrain on: give --unlabeled FILE...")
    reading = dict(trust_pickle=trust_pickle, limits=limits, fab=fab, on_error=on_error)
    maps_set = read_maps(list(unlabeled_paths), say, **reading)
    val = read_maps(list(val_paths), say, **reading) if val_paths else None
    if val is not None:
        maps_set, dropped = without_maps_of(maps_set, val)
        if dropped:
            say(f"left out {dropped} unlabelled maps identical to a --val map (never trained on)")
    if len(maps_set) < 2:
        raise InputError(unlabeled_paths[0], f"{len(maps_set)} maps to pretrain on; at least 2 are needed")
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    save_config(dict(cfg, pretrain=opts, unlabeled=[str(p) for p in unlabeled_paths],
                     val=[str(p) for p in (val_paths or [])]), out / "config.yaml")
    x = torch.from_numpy(resize_stack(maps_set.maps, int(cfg["input_size"]), cfg["resize"]))
    run = pretrain_encoder(cfg, opts, x, say)

    import pandas as pd

    from adrcs.report.plots import plot_training_curves

    history = pd.DataFrame(run.history)
    history.to_csv(out / "history.csv", index=False)
    plot_training_curves(history[["epoch", "loss"]], out / "plots" / "pretrain_loss.png")
    summary: dict[str, Any] = {"method": opts["method"], "options": opts, "epochs": int(cfg["epochs"]),
                               "n_maps": len(maps_set), "seconds": round(run.seconds, 1),
                               "first_loss": run.history[0]["loss"], "final_loss": run.history[-1]["loss"],
                               "unlabeled": [str(p) for p in unlabeled_paths]}
    save_encoder(out, run.net, cfg, summary)  # written before the plot: a failed plot loses no training
    summary.update(_feature_view(cfg, run.net, maps_set, val, out, say))
    save_encoder(out, run.net, cfg, summary)
    say(f"pretrained in {run.seconds:.0f}s -> {out} ({ENCODER_NAME}, config.yaml, history.csv, "
        "plots/pretrain_loss.png, plots/features_tsne.png); fine-tune with `adrcs train --init "
        f"{out}`")
    return summary
