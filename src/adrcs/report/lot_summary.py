"""Per-lot numbers of a lot report as pandas computations: which wafers are flagged (low confidence, or a
pattern rare in its lot), yield and pattern mix per lot, and the Pareto of patterns across lots.

Every function takes the report's wafer table: one row per wafer with at least ``lot`` ("" = no lot),
``predicted`` (pattern name), ``confidence`` (0..1) and, for the lot numbers, ``yield``, ``die_count`` and
``fail_count``."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

RARE_SHARE = 0.10          # a pattern on under 10 % of its lot's wafers is flagged
NO_PATTERN = ("none",)     # predictions that mean "no defect pattern": never flagged as rare, left out of the Pareto


def is_no_pattern(names: pd.Series, no_pattern: Sequence[str] = NO_PATTERN) -> pd.Series:
    """True where a predicted name means no defect pattern (compared case-insensitively; "" counts too)."""
    low = {n.lower() for n in no_pattern} | {""}
    return names.astype(str).str.strip().str.lower().isin(low)


def flag_wafers(wafers: pd.DataFrame, low_confidence: float, rare_share: float = RARE_SHARE,
                no_pattern: Sequence[str] = NO_PATTERN) -> pd.DataFrame:
    """A copy of `wafers` with ``pattern_share`` (share of the lot's wafers with the same prediction),
    ``low_confidence`` (confidence below the threshold), ``rare_pattern`` (a defect pattern on under `rare_share`
    of the lot's wafers; maps without a lot id are in no lot, so never rare) and ``flag`` (the reasons as text,
    "" when not flagged; a ``decision`` column of ``review`` / ``unknown`` flags the wafer too)."""
    out = wafers.copy()
    if out.empty:
        for c, v in (("pattern_share", 0.0), ("low_confidence", False), ("rare_pattern", False), ("flag", "")):
            out[c] = pd.Series(dtype=type(v))
        return out
    same = out.groupby(["lot", "predicted"], sort=False)["predicted"].transform("size")
    size = out.groupby("lot", sort=False)["lot"].transform("size")
    out["pattern_share"] = (same / size).astype(float)
    out["low_confidence"] = pd.to_numeric(out["confidence"], errors="coerce").fillna(0.0) < low_confidence
    out["rare_pattern"] = ((out["pattern_share"] < rare_share) & ~is_no_pattern(out["predicted"], no_pattern)
                           & (out["lot"].astype(str) != ""))
    reasons = np.where(out["low_confidence"], "low confidence", "")
    rare = np.where(out["rare_pattern"], "rare in lot", "")
    decision = out["decision"].astype(str) if "decision" in out.columns else pd.Series("", index=out.index)
    sent = np.where(decision == "unknown", "unknown pattern", np.where(decision == "review", "review", ""))
    out["flag"] = [", ".join(r for r in parts if r) for parts in zip(sent, reasons, rare)]
    return out


def lot_order(lots: pd.Series) -> list[str]:
    """Lot ids in report order: sorted (numbers by value, then text), the maps without a lot ("") last."""
    ids = list(dict.fromkeys(lots.astype(str)))

    def key(x: str) -> tuple:
        return (x == "", 0 if x.isdigit() else 1, int(x) if x.isdigit() else 0, x)

    return sorted(ids, key=key)


def pattern_mix(wafers: pd.DataFrame) -> pd.DataFrame:
    """Wafers per (lot, pattern): rows lots in `lot_order`, columns patterns by overall count (most first)."""
    if wafers.empty:
        return pd.DataFrame()
    mix = pd.crosstab(wafers["lot"].astype(str), wafers["predicted"].astype(str))
    cols = wafers["predicted"].astype(str).value_counts().index
    return mix.reindex(index=lot_order(wafers["lot"]), columns=cols, fill_value=0)


def lot_summary(flagged: pd.DataFrame) -> pd.DataFrame:
    """One row per lot (in `lot_order`) from `flag_wafers`' output: ``lot``, ``wafers``, ``yield_mean``,
    ``yield_min``, ``die_count``, ``fail_count``, ``flagged``, ``top_pattern``, ``top_share``, ``patterns``
    (text, most common first)."""
    cols = ["lot", "wafers", "yield_mean", "yield_min", "die_count", "fail_count", "flagged", "top_pattern",
            "top_share", "patterns"]
    if flagged.empty:
        return pd.DataFrame(columns=cols)
    w = flagged.assign(lot=flagged["lot"].astype(str), _flag=flagged["flag"] != "",
                       _yield=pd.to_numeric(flagged["yield"], errors="coerce"))
    g = w.groupby("lot", sort=False)
    out = pd.DataFrame({"wafers": g.size(), "yield_mean": g["_yield"].mean(), "yield_min": g["_yield"].min(),
                        "die_count": g["die_count"].sum(), "fail_count": g["fail_count"].sum(),
                        "flagged": g["_flag"].sum()})
    mix = pattern_mix(w)
    ordered = {lot: row[row > 0].sort_values(ascending=False, kind="stable") for lot, row in mix.iterrows()}
    out["top_pattern"] = pd.Series({lot: r.index[0] for lot, r in ordered.items()})
    out["top_share"] = pd.Series({lot: r.iloc[0] for lot, r in ordered.items()}) / out["wafers"]
    out["patterns"] = pd.Series({lot: ", ".join(f"{k} {v}" for k, v in r.items()) for lot, r in ordered.items()})
    out = out.reindex(lot_order(w["lot"])).rename_axis("lot").reset_index()
    return out[cols]


def pareto(wafers: pd.DataFrame, no_pattern: Sequence[str] = NO_PATTERN) -> pd.DataFrame:
    """Defect patterns across all lots, most wafers first: ``pattern``, ``wafers``, ``lots`` (lots it is seen
    in), ``share`` (of the wafers with a defect pattern) and ``cumulative``; "no pattern" predictions left out."""
    cols = ["pattern", "wafers", "lots", "share", "cumulative"]
    w = wafers[~is_no_pattern(wafers["predicted"], no_pattern)] if not wafers.empty else wafers
    if w.empty:
        return pd.DataFrame(columns=cols)
    g = w.groupby(w["predicted"].astype(str), sort=False)
    out = pd.DataFrame({"wafers": g.size(), "lots": g["lot"].nunique()})
    out = out.rename_axis("pattern").reset_index().sort_values(["wafers", "pattern"], ascending=[False, True],
                                                                kind="stable")
    out["share"] = out["wafers"] / out["wafers"].sum()
    out["cumulative"] = out["share"].cumsum()
    return out.reset_index(drop=True)[cols]


def _plain(v: Any) -> Any:
    """A JSON-friendly value: numpy scalars as Python numbers, NaN as None."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else round(float(v), 6)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def records(df: pd.DataFrame, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Rows of `df` (optionally only `columns`) as JSON-friendly dicts."""
    d = df if columns is None else df[[c for c in columns if c in df.columns]]
    return [{k: _plain(v) for k, v in row.items()} for row in d.to_dict("records")]
