"""Python API of `adrcs suggest`: which unlabelled maps (or images) to label next so that the next training helps
the model most (active learning; the strategies are in `adrcs.inference.suggest`).

A trained run scores a pool of maps (calibrated probabilities and the network's features, as `predict` computes
them); a strategy picks ``n`` of them; the CSV lists them in rank order for a labeller. Maps that already carry
labels stay in the pool unless ``unlabeled_only``; then they are left out, and `coreset` counts them as covered.
Wafer-map models read any wafer-map format (`read_maps`); image classifiers read one image path (list file,
class folders, a folder of images); detectors are refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from adrcs.errors import InputError

Printer = Callable[[str], None]
COLUMNS = ["rank", "source", "source_index", "lot", "wafer", "predicted", "confidence", "score", "method"]
CHUNK = 2048             # maps per forward pass (progress step)
PROJECT_ABOVE = 1024     # BADGE: features wider than this are randomly projected ...
PROJECT_DIMS = 512       # ... to this many dimensions


@dataclass
class ScoredPool:
    """What a run says about every map it was given: ids, calibrated probabilities, features, labelled or not."""

    ids: pd.DataFrame          # source, source_index, lot, wafer
    probs: np.ndarray          # (N, K); rows of maps not scored are NaN
    feats: np.ndarray          # (N, F); rows of maps not scored are 0
    labelled: np.ndarray       # (N,) bool
    class_names: list[str]
    multilabel: bool


def check_request(n: Any, method: str, out: str | Path) -> int:
    """One-line InputErrors for a bad --n (a whole number >= 1, also as text), --method or --out; returns n."""
    from adrcs.inference.suggest import METHODS

    text = str(n).strip()
    if isinstance(n, bool) or not re.fullmatch(r"[+-]?\d+", text):
        raise InputError(None, f"--n must be a whole number of maps (got {n!r})")
    n_int = int(text)
    if n_int < 1:
        raise InputError(None, f"--n must be at least 1 (got {n_int})")
    if method not in METHODS:
        raise InputError(None, f"--method must be one of {', '.join(METHODS)} (got {method!r})")
    if Path(out).is_dir():
        raise InputError(out, "--out must be a CSV file to write (it is a folder)")
    return n_int


def _score(total: int, need: np.ndarray, run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], k: int,
           what: str, say: Printer) -> tuple[np.ndarray, np.ndarray]:
    """`run(index)` -> (probs, feats) over the rows `need`, CHUNK at a time with progress; full-size arrays."""
    from adrcs.engine.progress import progress_steps

    probs = np.full((total, k), np.nan, np.float32)
    feats: np.ndarray | None = None
    steps = (len(need) + CHUNK - 1) // CHUNK
    with progress_steps(steps, f"scoring {len(need)} {what}", say, lines=5) as step:
        for s in range(0, len(need), CHUNK):
            idx = need[s:s + CHUNK]
            p, f = run(idx)
            if feats is None:
                feats = np.zeros((total, f.shape[1]), np.float32)
            probs[idx], feats[idx] = p, f
            step(f"{min(s + CHUNK, len(need))} {what}")
    return probs, feats if feats is not None else np.zeros((total, 0), np.float32)


def _wafer_pool(model_dir: str | Path, paths: list, reading: dict[str, Any], want: Callable[[np.ndarray], np.ndarray],
                tta: bool | None, say: Printer) -> ScoredPool:
    from adrcs.api_reading import read_maps
    from adrcs.data.wafer_ids import wafer_columns
    from adrcs.pipeline import Pipeline

    pipe = Pipeline.load(model_dir)
    ds = read_maps(paths, say, **reading)
    if len(ds) == 0:
        raise InputError(paths[0], "holds no wafer maps")
    labelled = ds.labeled_mask
    ids = pd.concat([pd.DataFrame({"source": ds.meta["source"].astype(str).to_numpy(),
                                   "source_index": ds.meta["index"].to_numpy()}),
                     wafer_columns(ds)[["lot", "wafer"]]], axis=1)

    def run(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pipe.predict_outputs(pipe.prepare([ds.maps[i] for i in idx]), tta=tta)

    probs, feats = _score(len(ds), want(labelled), run, len(pipe.class_names), "maps", say)
    return ScoredPool(ids, probs, feats, labelled, list(pipe.class_names), pipe.multilabel)


def _image_pool(model_dir: str | Path, paths: list, reading: dict[str, Any],
                want: Callable[[np.ndarray], np.ndarray], say: Printer) -> ScoredPool:
    from adrcs.api_image_classify import load_image_data
    from adrcs.api_reading import report_skipped
    from adrcs.data.image_check import drop_unreadable
    from adrcs.engine.progress import progress_steps
    from adrcs.image_classifier_pipeline import ImageClassifierPipeline

    if len(paths) > 1:
        raise InputError(paths[1], "image classifiers take one --data path (a list file, a folder or an image)")
    pipe = ImageClassifierPipeline.load(model_dir)
    ds = load_image_data(paths[0], require_labels=False)
    skipped: list[dict[str, str]] = []
    if reading.get("on_error", "stop") == "skip":
        with progress_steps(len(ds), f"checking {len(ds)} images", say) as step:
            ds, skipped = drop_unreadable(ds, step, templates=pipe.use_template)
    if len(ds) == 0:
        raise InputError(paths[0], "holds no images")
    labelled = np.asarray(ds.labels) >= 0
    ids = pd.DataFrame({"source": [str(p) for p in ds.paths], "source_index": np.arange(len(ds)),
                        "lot": "", "wafer": ""})

    def run(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pipe.predict_outputs(pipe.read_tensor(ds.subset(idx)))

    probs, feats = _score(len(ds), want(labelled), run, len(pipe.class_names), "images", say)
    report_skipped(skipped, say)
    return ScoredPool(ids, probs, feats, labelled, list(pipe.class_names), False)


def score_pool(model_dir: str | Path, data: Sequence[str | Path] | str | Path, method: str = "badge",
               unlabeled_only: bool = False, tta: bool | None = None, say: Printer = print,
               **reading: Any) -> ScoredPool:
    """Read `data` as the run's task does and score the maps a strategy needs: all of them, or with
    `unlabeled_only` the unlabelled ones (plus the labelled ones for `coreset`, which counts them as covered)."""
    from adrcs.tasks import task_of

    paths = [data] if isinstance(data, (str, Path)) else list(data)
    if not paths:
        raise InputError(None, "no data: give --data PATH...")
    task = task_of(model_dir)

    def want(labelled: np.ndarray) -> np.ndarray:
        keep = ~labelled if unlabeled_only and method != "coreset" else np.ones(len(labelled), bool)
        return np.flatnonzero(keep)

    if task.name == "wafer":
        return _wafer_pool(model_dir, paths, reading, want, tta, say)
    if task.name == "image_classify":
        return _image_pool(model_dir, paths, reading, want, say)
    raise InputError(model_dir, f"suggest supports wafer-map models and image classifiers (this is a {task.name} run)")


def _predicted(probs: np.ndarray, names: list[str], multilabel: bool) -> tuple[list[str], np.ndarray]:
    from adrcs.inference.decisions import confidence, decide

    d = decide(probs, multilabel)
    shown = ([";".join(c for c, h in zip(names, r) if h) or "none" for r in d] if multilabel
             else [names[int(i)] for i in d])
    return shown, confidence(probs, multilabel)


def suggest(model_dir: str | Path, data: Sequence[str | Path] | str | Path, out: str | Path, n: int = 100,
            method: str = "badge", seed: int = 0, say: Printer = print, *, unlabeled_only: bool = False,
            tta: bool | None = None, **reading: Any) -> pd.DataFrame:
    """Pick the `n` maps of `data` whose labels should help the run at `model_dir` most and write them to the CSV
    `out` in rank order: rank, source, source_index, lot, wafer, predicted, confidence, score (the strategy's: see
    `inference.suggest`; empty for random), method. method: badge | coreset | uncertainty | random; seed: the
    draws of badge / random (and coreset's first pick); unlabeled_only: leave out maps that carry labels.
    reading: trust_pickle, limits, fab, on_error. Returns the table written."""
    from adrcs.inference.suggest import select

    n = check_request(n, method, out)
    pool = score_pool(model_dir, data, method, unlabeled_only, tta, say, **reading)
    cand = np.flatnonzero(~pool.labelled) if unlabeled_only else np.arange(len(pool.labelled))
    if len(cand) == 0:
        raise InputError(None, f"every one of the {len(pool.labelled)} maps given carries a label already "
                               "(--unlabeled-only): nothing to suggest")
    if unlabeled_only and pool.labelled.any():
        say(f"--unlabeled-only: leaving out {int(pool.labelled.sum())} labelled maps"
            + (" (counted as covered by coreset)" if method == "coreset" else ""))
    if n > len(cand):
        say(f"only {len(cand)} maps in the pool: suggesting all of them")
    lab_feats = pool.feats[pool.labelled] if unlabeled_only and method == "coreset" else None
    project = None
    if method == "badge" and pool.feats.shape[1] > PROJECT_ABOVE:
        project = PROJECT_DIMS
        say(f"badge: features projected from {pool.feats.shape[1]} to {PROJECT_DIMS} dimensions (seeded Gaussian "
            "random projection)")
    idx, score = select(method, pool.probs[cand], pool.feats[cand], n, seed, pool.multilabel, lab_feats, project)
    rows_at = cand[idx]
    shown, conf = _predicted(pool.probs[rows_at], pool.class_names, pool.multilabel)
    table = pool.ids.iloc[rows_at].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(rows_at) + 1))
    table["predicted"], table["confidence"] = shown, np.round(conf, 6)
    table["score"], table["method"] = np.round(score, 6), method
    table = table[COLUMNS]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    mix = table["predicted"].value_counts()
    say(f"{len(table)} of {len(cand)} maps suggested for labelling ({method}, seed {seed}) -> {out}; predicted: "
        + ", ".join(f"{k} {v}" for k, v in mix.items()))
    return table
