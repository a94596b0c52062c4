"""Lots and their pictures: `write_maps` (`adrcs maps`: one PNG per wafer, a stacked map per lot, index.csv) and
`write_report` (`adrcs report`: classify every wafer with a wafer-map model, then the self-contained HTML lot
report and its JSON). Both read data through `read_maps` (files, folders, globs); all pictures come from the one
renderer, `adrcs.report.wafer_render`."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from adrcs.api_reading import read_maps
from adrcs.data.wafer_ids import wafer_columns
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.engine.progress import progress_steps
from adrcs.errors import InputError

Printer = Callable[[str], None]
NO_LOT = "_no_lot"
RESERVED = {"stacked", "index", NO_LOT, "con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
            *(f"lpt{i}" for i in range(10))}
MAX_NAME = 80
PROGRESS_FROM = 50    # show progress when drawing at least this many maps
MAX_SCALE = 64
EXPLAINED_MAX = 100   # adrcs report: class activation overlays for at most this many doubtful wafers


def safe_name(text: str) -> str:
    """`text` as one file-name part: letters, digits, ``.``, ``_`` and ``-`` kept, anything else (path
    separators, ``..``, spaces, control characters) as one ``_``; no leading or trailing dots, dashes or
    underscores; at most 80 characters; "" when nothing is left."""
    name = re.sub(r"(?:[^A-Za-z0-9._-]|\.{2,})+", "_", str(text))
    return re.sub(r"_+", "_", name).strip("._-")[:MAX_NAME].rstrip("._-")


class _Names:
    """Unique file names within one folder (compared case-insensitively, reserved names avoided)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def take(self, wanted: str, fallback: str) -> str:
        base = wanted or fallback
        name, k = base, 1
        while name.lower() in self.taken or name.lower() in RESERVED:
            name = f"{base}-{fallback}" if k == 1 and wanted else f"{base}-{k}"
            k += 1
        self.taken.add(name.lower())
        return name


def wafer_table(ds: WaferMapSet) -> pd.DataFrame:
    """Per map: ``map`` (index in `ds`), ``source``, ``source_index``, ``lot`` ("" = none), ``wafer`` (the id;
    "" = none), ``shown`` (the id, else ``<file name>:<row>``), ``die_count``, ``fail_count``, ``yield``."""
    ids = wafer_columns(ds)
    meta = ds.meta
    src = meta["source"].astype(str).map(lambda s: Path(s).name) if "source" in meta else pd.Series([""] * len(ds))
    row = meta["index"].astype(str) if "index" in meta else pd.Series(np.arange(len(ds)).astype(str))
    out = pd.DataFrame({"map": np.arange(len(ds)), "source": src.to_numpy(), "source_index": row.to_numpy()})
    out = pd.concat([out, ids.reset_index(drop=True)], axis=1)
    shown = out["source"] + ":" + out["source_index"]
    out["shown"] = out["wafer"].where(out["wafer"] != "", shown)
    return out


def file_names(table: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """(per map ``<lot dir>/<wafer>.png``, {lot id: lot dir}): sanitised (`safe_name`), maps without a lot under
    ``_no_lot/``, unique within each lot (the map index is the fallback for a missing or repeated id)."""
    dirs: dict[str, str] = {}
    lot_names = _Names()
    per_lot: dict[str, _Names] = {}
    files = []
    for lot, wafer, i in zip(table["lot"], table["wafer"], table["map"]):
        if lot not in dirs:
            dirs[lot] = NO_LOT if lot == "" else lot_names.take(safe_name(lot), f"lot{len(dirs)}")
        names = per_lot.setdefault(lot, _Names())
        files.append(f"{dirs[lot]}/{names.take(safe_name(wafer), f'map{i}')}.png")
    return files, dirs


def _check_scale(scale: int | None) -> None:
    if scale is not None and not 1 <= scale <= MAX_SCALE:
        raise InputError(None, f"--scale must be 1..{MAX_SCALE} px per die (got {scale})")


def write_maps(data: Sequence[str | Path] | str | Path, out: str | Path, by: str = "code", scale: int | None = None,
               stacked: bool = True, say: Printer = print, **reading: Any) -> dict[str, Any]:
    """`adrcs maps`: one PNG per wafer (by die code, or by bin), a stacked failure-rate map per lot with >= 2
    wafers (``<lot>/stacked.png``; maps without a lot id are not stacked) and ``index.csv`` (map, source,
    source_index, lot, wafer, file) under `out`. `reading`: trust_pickle, limits, fab, on_error. Returns counts
    and the output folder."""
    from adrcs.report.wafer_render import map_png, stacked_png

    if by not in ("code", "bin"):
        raise InputError(None, f"--by must be code or bin (got {by!r})")
    _check_scale(scale)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "--out must be a folder (it is a file)")
    ds = read_maps(data, say, **reading)
    bins = ds.bins if by == "bin" else None
    if by == "bin" and (bins is None or all(b is None for b in bins)):
        raise InputError(None, "--by bin needs bin data (fab files with bins: STDF, SINF, E142, ...); this data "
                               "has none: use --by code")
    if bins is not None and any(b is None for b in bins):
        say(f"{sum(b is None for b in bins)} map(s) have no bins: drawn by die code")
    table = wafer_table(ds)
    files, dirs = file_names(table)
    for d in dirs.values():
        (out / d).mkdir(parents=True, exist_ok=True)
    n = len(ds)
    with progress_steps(n, f"drawing {n} maps", say, enabled=n >= PROGRESS_FROM) as step:
        for i, f in enumerate(files):
            (out / f).write_bytes(map_png(ds.maps[i], scale, bins[i] if bins is not None else None))
            if n >= PROGRESS_FROM:
                step(f)
    stacks = 0
    if stacked:
        for lot, idx in table.groupby("lot", sort=False)["map"]:
            if lot != "" and len(idx) >= 2:
                (out / dirs[lot] / "stacked.png").write_bytes(stacked_png([ds.maps[j] for j in idx], scale))
                stacks += 1
    index = table[["map", "source", "source_index", "lot", "wafer"]].assign(file=files)
    index.to_csv(out / "index.csv", index=False)
    say(f"{n} wafer maps in {len(dirs)} lot folder(s), {stacks} stacked map(s) -> {out}")
    return {"maps": n, "lots": len(dirs), "stacked": stacks, "out": str(out), "index": str(out / "index.csv")}


def _wafer_model(model_dir: str | Path) -> Any:
    """The wafer-map model of a run folder; one-line InputError for an image model or anything else."""
    from adrcs.tasks import task_of

    task = task_of(model_dir)
    if task.image:
        raise InputError(model_dir, f"is an image model ({task.what}); adrcs report needs a wafer-map model")
    from adrcs.pipeline import Pipeline

    return Pipeline.load(model_dir)


def classify(pipe: Any, ds: WaferMapSet, tta: bool | None = None, threshold: float = 0.5) -> pd.DataFrame:
    """`predicted` (name; multi-label: names joined with ";" or "none"), `confidence`, `decision`, `set` and
    `unknown_score` per map, decided as the predictions CSV decides them (`inference.decisions`, `api_trust`)."""
    from adrcs.api_trust import answer_columns
    from adrcs.inference.decisions import confidence, decide

    probs, feats = pipe.predict_outputs(pipe.prepare(ds.maps), tta=tta)
    names = pipe.class_names
    decided = decide(probs, pipe.multilabel, threshold)
    if pipe.multilabel:
        predicted = [";".join(n for n, h in zip(names, r) if h) or "none" for r in decided]
    else:
        predicted = [names[i] for i in decided]
    return pd.DataFrame({"predicted": predicted, "confidence": confidence(probs, pipe.multilabel, threshold),
                         **answer_columns(pipe, probs, feats)})


def explain_doubtful(pipe: Any, ds: WaferMapSet, wafers: pd.DataFrame, low_confidence: float,
                     limit: int = EXPLAINED_MAX) -> dict[int, bytes]:
    """Class activation overlays (PNG thumbnails) of the doubtful wafers (decision review / unknown, or confidence
    below `low_confidence`), least confident first, at most `limit`; {} for models explain does not support."""
    from adrcs.inference.explain import explain_maps
    from adrcs.report.cam_overlay import wafer_cam_png
    from adrcs.report.lot_report import THUMB_PX

    doubt = wafers["decision"].isin(["review", "unknown"]) | (wafers["confidence"] < low_confidence)
    rows = wafers[doubt].sort_values("confidence").index[:limit].to_numpy()
    if len(rows) == 0:
        return {}
    try:
        cams = explain_maps(pipe, [ds.maps[i] for i in rows])
    except InputError:  # a sinogram-feature model: no die grid to explain on
        return {}
    return {int(i): wafer_cam_png(ds.maps[i], cams[k], max_px=THUMB_PX) for k, i in enumerate(rows)}


def write_report(model_dir: str | Path, data: Sequence[str | Path] | str | Path, out: str | Path,
                 low_confidence: float = 0.7, tta: bool | None = None, title: str | None = None,
                 say: Printer = print, **reading: Any) -> dict[str, Any]:
    """`adrcs report`: classify every map with the wafer-map model in `model_dir`, then write the lot report
    (`out`, one self-contained HTML file) and its numbers (the ``.json`` next to it). Returns the report dict
    (per lot numbers, flagged wafers, Pareto) with the paths and the HTML size."""
    from adrcs.report.lot_report import write_lot_report

    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(out, "the report must be an .html file (--out report.html)")
    if not 0.0 <= low_confidence <= 1.0:
        raise InputError(None, f"--low-confidence must be between 0 and 1 (got {low_confidence})")
    pipe = _wafer_model(model_dir)
    ds = read_maps(data, say, **reading)
    if len(ds) == 0:
        raise InputError(None, "no wafer maps to report on")
    table = wafer_table(ds)
    wafers = pd.concat([table, classify(pipe, ds, tta)], axis=1)
    wafers["wafer"] = wafers["shown"]
    from adrcs.api import true_labels

    true = true_labels(ds)
    if true is not None:
        wafers["true"] = true
    n = len(ds)
    explanations = explain_doubtful(pipe, ds, wafers, low_confidence)
    with progress_steps(n, f"drawing {n} thumbnails", say, enabled=n >= PROGRESS_FROM, lines=5) as step:
        result = write_lot_report(out, wafers, ds.maps, low_confidence=low_confidence,
                                  title=title or f"Lot report: {n} wafers", model=Path(model_dir).name,
                                  class_names=pipe.class_names, step=step if n >= PROGRESS_FROM else None,
                                  explanations=explanations)
    say(f"{n} wafers in {len(result['lots'])} lot(s), {result['flagged']} flagged -> {out} "
        f"({result['html_bytes'] / 1e6:.1f} MB) and {result['json']}")
    return result
