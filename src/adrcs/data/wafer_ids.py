"""Which wafer a map is: lot and wafer ids from any format's metadata, die counts and yield per map, and
labels joined from a ``lot,wafer,label`` CSV (for fab files, which carry no pattern labels)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adrcs.data.fab.wafer_grid import map_counts, normalize_wafer_id
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.errors import InputError

LOT_COLUMNS = ("lot", "lotName", "LotID", "lot_id")
WAFER_COLUMNS = ("wafer", "waferIndex", "WaferID", "wafer_id")
MAX_LABEL_ROWS = 5_000_000


def _first(meta: pd.DataFrame, names: tuple[str, ...]) -> pd.Series | None:
    """Per map, the first of the `names` columns that has a value (files of different formats joined into one
    set fill different columns)."""
    cols = [meta[c] for c in names if c in meta.columns]
    if not cols:
        return None
    out = cols[0]
    for c in cols[1:]:
        out = out.where(out.notna(), c)
    return out


def wafer_columns(ds: WaferMapSet) -> pd.DataFrame:
    """Per map: ``lot``, ``wafer`` (normalised text, "" where the format has none), ``die_count``, ``fail_count``
    and ``yield`` (from the reader where it knows untested dies, else counted on the map)."""
    n = len(ds)
    lot, wafer = _first(ds.meta, LOT_COLUMNS), _first(ds.meta, WAFER_COLUMNS)
    out = pd.DataFrame({"lot": [normalize_wafer_id(v) for v in lot] if lot is not None else [""] * n,
                        "wafer": [normalize_wafer_id(v) for v in wafer] if wafer is not None else [""] * n})
    if all(c in ds.meta.columns for c in ("die_count", "fail_count", "yield")):
        for c in ("die_count", "fail_count", "yield"):
            out[c] = ds.meta[c].to_numpy()
        _count_missing(ds, out)
    else:
        counts = pd.DataFrame([map_counts(m) for m in ds.maps])
        for c in ("die_count", "fail_count", "yield"):
            out[c] = counts[c].to_numpy() if n else []
    out["yield"] = pd.to_numeric(out["yield"], errors="coerce").round(6)
    return out


def _count_missing(ds: WaferMapSet, out: pd.DataFrame) -> None:
    """Fill the counts of maps whose reader gave none (files of another format joined into the set) from the maps,
    in place; die / fail counts stay integers when every map has them."""
    cols = ["die_count", "fail_count", "yield"]
    missing = np.flatnonzero(out[cols[:2]].isna().any(axis=1).to_numpy())  # a NaN yield alone: no die tested
    if not len(missing):
        return
    counts = pd.DataFrame([map_counts(ds.maps[i]) for i in missing])
    for c in cols:
        col = pd.to_numeric(out[c], errors="coerce").to_numpy(float, copy=True)
        col[missing] = counts[c].to_numpy(float)
        out[c] = col.astype(np.int64) if c != "yield" and np.isfinite(col).all() else col


def read_labels_csv(path: str | Path) -> pd.DataFrame:
    """A ``lot,wafer,label`` CSV (header required; other columns ignored; ids normalised) -> DataFrame with
    those three columns; one-line InputError naming the file for anything else."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "labels file not found")
    if p.stat().st_size > 512 * 1024 * 1024:
        raise InputError(p, "labels file is larger than 512 MiB")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, nrows=MAX_LABEL_ROWS + 1)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise InputError(p, f"is not a readable CSV ({' '.join(str(e).split())[:120]})") from None
    cols = {c.strip().lower(): c for c in df.columns}
    missing = [c for c in ("lot", "wafer", "label") if c not in cols]
    if missing:
        raise InputError(p, f"needs the columns lot,wafer,label (missing {', '.join(missing)}; has "
                            f"{', '.join(map(str, df.columns[:10]))})")
    if len(df) > MAX_LABEL_ROWS:
        raise InputError(p, f"has more than {MAX_LABEL_ROWS} rows")
    out = pd.DataFrame({"lot": df[cols["lot"]].map(normalize_wafer_id), "wafer": df[cols["wafer"]].map(normalize_wafer_id),
                        "label": df[cols["label"]].str.strip()})
    dup = out.duplicated(["lot", "wafer"], keep=False) & ~out.duplicated(["lot", "wafer", "label"], keep=False)
    if dup.any():
        r = out[dup].iloc[0]
        raise InputError(p, f"gives lot {r['lot']!r} wafer {r['wafer']!r} two different labels")
    return out.drop_duplicates(["lot", "wafer"])


def apply_labels(ds: WaferMapSet, path: str | Path, class_names: list[str]) -> tuple[WaferMapSet, dict[str, int]]:
    """`ds` with single labels from the CSV at `path`, matched on (lot, wafer), in `class_names` order (a model's
    classes); maps without a row stay unlabelled. Returns the set and counts {"matched", "unmatched_rows"}.
    InputError naming the file for a label the model does not know."""
    table = read_labels_csv(path)
    ids = wafer_columns(ds)
    if (ids["wafer"] == "").all():
        raise InputError(path, "the data has no wafer ids to match (formats with lot and wafer ids: STDF, KLARF, "
                               "SINF, E142, LSWMD, adrcs npz)")
    from adrcs.data.labels import clean_label, normalize_name

    known = {normalize_name(c): i for i, c in enumerate(class_names)}
    lookup = {(r.lot, r.wafer): r.label for r in table.itertuples(index=False)}
    labels = np.full(len(ds), -1, np.int64)
    matched = set()
    for i, key in enumerate(zip(ids["lot"], ids["wafer"])):
        if key not in lookup:
            key = ("", key[1]) if ("", key[1]) in lookup else key  # a CSV without lots matches by wafer
        raw = clean_label(lookup[key]) if key in lookup else None
        if raw is not None:
            name = normalize_name(raw)
            if name not in known:
                raise InputError(path, f"label {lookup[key]!r} (lot {key[0]!r} wafer {key[1]!r}) is not a class of "
                                       f"the model ({', '.join(class_names)})")
            labels[i] = known[name]
            matched.add(key)
    out = ds.subset(np.arange(len(ds)))
    out.labels, out.class_names, out.multilabel = labels, list(class_names), False
    out.notes["unlabeled"] = int((labels < 0).sum())
    return out, {"matched": int((labels >= 0).sum()), "unmatched_rows": len(lookup) - len(matched)}
