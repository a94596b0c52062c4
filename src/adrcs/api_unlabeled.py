"""Maps without labels for `adrcs train --unlabeled PATH...`: read, made honest, summarised.

Any wafer-map file, folder or fab format is read; the labels those files may carry are ignored (every map of
a named file joins the pool, so the unlabelled maps of a labelled file count too). Maps identical to a
validation map are dropped (the validation maps are never trained on, with or without labels), and so are
maps identical to a labelled training map (already learnt from with their label). What the pool is used for
is the run's ``semi_supervised`` method (`engine.fixmatch.resolve_method`); the sinogram pipeline gives the
pool to its SBAE.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from adrcs.api_pretrain import without_maps_of
from adrcs.api_reading import read_maps
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.errors import InputError

Printer = Callable[[str], None]


def read_unlabeled(paths: Sequence[str | Path], say: Printer = print, **reading: Any) -> WaferMapSet:
    """Every map of `paths` (labels dropped); one-line InputError when they hold none."""
    ds = read_maps(list(paths), say, **reading)
    if len(ds) == 0:
        raise InputError(paths[0] if paths else "--unlabeled", "holds no wafer maps")
    return ds


def honest_pool(pool: WaferMapSet, train_set: WaferMapSet, val: WaferMapSet,
                say: Printer = print) -> tuple[WaferMapSet, dict[str, Any]]:
    """`pool` without maps identical to a validation or a labelled training map; the counts for metrics.json."""
    n_read = len(pool)
    pool, n_val = without_maps_of(pool, val)
    pool, n_train = without_maps_of(pool, train_set)
    info = {"n_read": n_read, "n_maps": len(pool), "dropped_as_val": n_val, "dropped_as_train": n_train}
    if n_val or n_train:
        say(f"unlabeled: {len(pool)} of {n_read} maps kept ({n_val} identical to a validation map, "
            f"{n_train} to a labelled training map left out)")
    else:
        say(f"unlabeled: {len(pool)} maps")
    return pool, info

