"""Synthesizer API: fit a map synthesizer on training maps, sample maps of a class, evaluate synthetic maps
(`adrcs synth fit|sample|evaluate`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from adrcs.api import Printer, _labeled
from adrcs.config import save_config
from adrcs.data.fab import FabOptions
from adrcs.data.limits import InputLimits
from adrcs.data.loader import load_many
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.errors import InputError
from adrcs.pipeline import Pipeline


def synth_fit(scfg: dict[str, Any], train_paths: Sequence[str | Path], out: str | Path,
              say: Printer = print, progress: bool = True, *, trust_pickle: bool = False,
              limits: InputLimits | None = None, fab: FabOptions | None = None, on_error: str = "stop") -> Path:
    """Fit a synthesizer on training maps (`scfg` from `synth.fit_config.load_synth_config`); write its folder."""
    from adrcs.synth import create_synthesizer

    ds = _labeled(load_many(train_paths, trust_pickle=trust_pickle, limits=limits, fab=fab, on_error=on_error), "train", say)
    if ds.multilabel:
        raise InputError(train_paths[0], "synthesis needs single-label data (one class per map)")
    syn = create_synthesizer(scfg["method"], size=scfg["size"], seed=scfg["seed"], device=scfg["device"],
                             **scfg["args"])
    say(f"fitting a {syn.method} synthesizer ({syn.size}x{syn.size}, {syn.device}) on {len(ds)} maps: "
        + ", ".join(f"{c} {n}" for c, n in zip(ds.class_names, np.bincount(ds.labels, minlength=len(ds.class_names)))))
    syn.fit(ds, say=say, progress=progress)
    out = Path(out)
    syn.save(out)
    save_config({"method": syn.method, "size": syn.size, "seed": syn.seed, "device": scfg["device"], **syn.args,
                 "train": [str(p) for p in train_paths]}, out / "config.yaml")
    from adrcs.report.synthesis import plot_real_vs_synthetic

    present = [c for c, k in syn.class_counts.items() if k > 0]
    real = {c: syn.train_maps[syn.train_labels == syn.class_names.index(c)][:6] for c in present}
    plot_real_vs_synthetic(real, {c: syn.sample(c, 6) for c in present}, out / "samples.png",
                           title=f"training maps (left) vs {syn.method} samples (right)")
    say(f"fitted in {syn.fit_seconds:.0f}s -> {out} (synthesizer.pt, train_maps.npz, history.csv, "
        f"training_curves.png, samples.png)")
    return out


def synth_sample(model_dir: str | Path, classes: Sequence[str] | str, n: int, out: str | Path, seed: int = 0,
                 say: Printer = print) -> WaferMapSet:
    """Generate `n` maps of each class (or of every class for 'all') and write them as a pickle."""
    from adrcs.data.writer import save_wafer_maps
    from adrcs.synth import load_synthesizer
    from adrcs.synth.balance import synthetic_set

    syn = load_synthesizer(model_dir)
    classes = [classes] if isinstance(classes, str) else list(classes)
    if [c.lower() for c in classes] == ["all"]:
        classes = [c for c, k in syn.class_counts.items() if k > 0]
    if n < 1:
        raise InputError(None, f"--n must be >= 1 (got {n})")
    from adrcs.data.labels import normalize_name

    parts = []
    for c in classes:
        name = c if c in syn.class_names else normalize_name(c)
        maps = syn.sample(name, n, seed=seed + syn.class_names.index(name) if name in syn.class_names else seed)
        parts.append(synthetic_set(list(maps), syn.class_names.index(name), syn.class_names, syn.method))
    ds = WaferMapSet.concat(parts)
    save_wafer_maps(ds, out)
    say(f"{len(ds)} synthetic maps ({', '.join(classes)}; {syn.size}x{syn.size}, {syn.method}) -> {out}")
    return ds


def synth_evaluate(model_dir: str | Path, classifier_dir: str | Path, data: Sequence[str | Path] | str | Path,
                   out: str | Path, n: int = 500, seed: int = 0, say: Printer = print, *, trust_pickle: bool = False,
                   limits: InputLimits | None = None, fab: FabOptions | None = None, on_error: str = "stop") -> dict[str, Any]:
    """Per-class synthetic-map quality against held-out real maps (see `adrcs.synth.evaluate`)."""
    from adrcs.report.tables import print_synth_report
    from adrcs.synth import load_synthesizer
    from adrcs.synth.evaluate import evaluate_synthesizer, write_evaluation

    syn = load_synthesizer(model_dir)
    pipe = Pipeline.load(classifier_dir)
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    real = _labeled(load_many(paths, trust_pickle=trust_pickle, limits=limits, fab=fab, on_error=on_error), "data", say)
    if real.multilabel:
        raise InputError(paths[0], "synth evaluate needs single-label real maps")
    report, real_maps, synth_maps = evaluate_synthesizer(syn, pipe, real, n=n, seed=seed, say=lambda m: None)
    report.update(synthesizer=str(model_dir), classifier=str(classifier_dir), data=[str(p) for p in paths])
    path, grid = write_evaluation(report, real_maps, synth_maps, out)
    print_synth_report(report)
    say(f"report: {path}; grid: {grid}")
    return report
