"""The lot report: one self-contained HTML file (inline CSS, a little inline JS for sorting tables, pictures as
data URIs: nothing is fetched, it opens offline) and its numbers as JSON for machines.

Per lot: yield, pattern mix, flagged wafers (confidence below the threshold, or a defect pattern seen on under
10 % of the lot's wafers), the stacked map (failure rate of each die position) and a thumbnail grid with each
wafer's predicted pattern and confidence; across lots: a lots table, a Pareto of patterns and every flagged
wafer. Every text that comes from the data (lot and wafer ids, class names, the title) is HTML-escaped."""
from __future__ import annotations

import base64
import html
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from adrcs.report.lot_summary import (RARE_SHARE, flag_wafers, is_no_pattern, lot_summary, pareto, pattern_mix,
                                      records)
from adrcs.report.wafer_render import map_png, stacked_png

THUMB_PX = 96       # thumbnails: 2 px per die, at most this many px across (drawn 96 px wide, pixelated)
STACKED_PX = 240    # stacked lot maps
SHOWN_FLAGGED = 12  # flagged wafers named in a lot's summary (all are marked in its table and grid)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
           "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94")
NONE_COLOUR = "#cfd8dc"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2327;background:#f6f7f9}
header{background:#263238;color:#fff;padding:16px 24px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#cfd8dc}main{padding:8px 24px 40px}h2{margin:28px 0 8px;font-size:18px}
h3{margin:16px 0 6px;font-size:15px}nav{margin:8px 0;line-height:2}nav a{margin-right:10px}
section.lot{background:#fff;border:1px solid #dde1e5;border-radius:6px;padding:4px 16px 16px;margin:20px 0}
table{border-collapse:collapse;background:#fff;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #dde1e5;padding:3px 8px;text-align:left}td.n{text-align:right}
table.sortable th{cursor:pointer;background:#eceff1;user-select:none}
table.sortable th:after{content:" \\2195";color:#90a4ae}
th[aria-sort=ascending]:after{content:" \\25B2";color:#263238}
th[aria-sort=descending]:after{content:" \\25BC";color:#263238}
tr.flagged td{background:#fff4e5}.none{color:#78909c;font-style:italic}
.grid{display:flex;flex-wrap:wrap;gap:8px}
figure.wafer{margin:0;width:104px;padding:3px;border:2px solid #e0e4e8;border-radius:4px;background:#fff}
figure.wafer.flagged{border-color:#e65100}figure.wafer img,.stack img{image-rendering:pixelated;display:block}
figure.wafer img{width:96px;height:96px;object-fit:contain;margin:auto}
figure.wafer.explained{width:204px}figure.wafer.explained img{display:inline-block;margin:0 2px}
figcaption{font-size:11px;line-height:1.3;overflow-wrap:anywhere}figcaption b{display:block}
figcaption i{display:inline-block;width:8px;height:8px;margin-right:3px}
.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}.row>div:first-child{max-width:560px}
.stack img{width:240px;height:auto}
.ramp{height:10px;width:240px;background:linear-gradient(90deg,rgb(236,240,241),rgb(146,20,12))}
.ramp-l{display:flex;justify-content:space-between;width:240px;font-size:11px;color:#546e7a}
.mix{display:flex;height:14px;width:420px;border:1px solid #cfd8dc;margin:4px 0}.mix span{display:block;height:100%}
.key span{white-space:nowrap;margin-right:10px}
.key i{display:inline-block;width:10px;height:10px;margin-right:3px;vertical-align:middle}
.stats{color:#37474f}.stats b{color:#000}svg text{font:11px system-ui,sans-serif;fill:#37474f}
"""

# Sort a table by the clicked header: numbers by value (data-sort when given), text naturally; click again: reverse.
JS = """
(function(){
function val(td){return td.hasAttribute('data-sort')?td.getAttribute('data-sort'):td.textContent.trim();}
function num(v){return v!==''&&!isNaN(v);}
function cmp(a,b){var na=num(a),nb=num(b);if(na&&nb)return a-b;if(na)return -1;if(nb)return 1;
return a.localeCompare(b,undefined,{numeric:true,sensitivity:'base'});}
Array.prototype.forEach.call(document.querySelectorAll('table.sortable'),function(t){
var ths=t.tHead.rows[0].cells;Array.prototype.forEach.call(ths,function(th,i){th.tabIndex=0;
function sort(){var asc=th.getAttribute('aria-sort')!=='ascending';
Array.prototype.forEach.call(ths,function(h){h.removeAttribute('aria-sort');});
th.setAttribute('aria-sort',asc?'ascending':'descending');var body=t.tBodies[0];
var rows=Array.prototype.slice.call(body.rows);rows.sort(function(r,s){var c=cmp(val(r.cells[i]),val(s.cells[i]));
return asc?c:-c;});rows.forEach(function(r){body.appendChild(r);});}
th.addEventListener('click',sort);th.addEventListener('keydown',function(e){if(e.key==='Enter')sort();});});});
})();
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _lot_name(lot: str) -> str:
    return _e(lot) if lot else '<span class="none">(no lot)</span>'


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _pct(v: Any) -> tuple[str, str]:
    """(shown text, sort key) of a 0..1 share."""
    if v is None or pd.isna(v):
        return "–", ""
    return f"{100 * float(v):.1f} %", f"{float(v):.6f}"


def _td(text: str, sort: str | None = None, num: bool = False) -> str:
    attrs = (f' data-sort="{_e(sort)}"' if sort is not None else "") + (' class="n"' if num else "")
    return f"<td{attrs}>{text}</td>"


def _table(table_id: str, headers: Sequence[str], rows: Sequence[str], row_classes: Sequence[str] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    classes = list(row_classes) + [""] * (len(rows) - len(row_classes))
    body = "".join(f'<tr{f" class={chr(34)}{c}{chr(34)}" if c else ""}>{r}</tr>' for r, c in zip(rows, classes))
    return (f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _colours(names: Sequence[str]) -> dict[str, str]:
    out, i = {}, 0
    for n in dict.fromkeys(names):
        if is_no_pattern(pd.Series([n])).iloc[0]:
            out[n] = NONE_COLOUR
        else:
            out[n] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def pareto_svg(table: pd.DataFrame, colours: dict[str, str]) -> str:
    """An inline SVG Pareto chart: wafers per pattern (bars, left axis) and the cumulative share (line)."""
    if table.empty:
        return '<p class="none">No defect patterns predicted.</p>'
    n = len(table)
    bw, left, top, ph = 44, 40, 12, 170
    w, h = left + n * bw + 40, top + ph + 70
    peak = max(1, int(table["wafers"].max()))
    parts = [f'<svg id="pareto-chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
             f'aria-label="Pareto of predicted patterns">',
             f'<line x1="{left}" y1="{top + ph}" x2="{left + n * bw}" y2="{top + ph}" stroke="#90a4ae"/>',
             f'<text x="{left - 6}" y="{top + 8}" text-anchor="end">{peak}</text>',
             f'<text x="{left - 6}" y="{top + ph}" text-anchor="end">0</text>',
             f'<text x="{left + n * bw + 4}" y="{top + 8}">100%</text>']
    points = []
    for i, r in enumerate(table.itertuples(index=False)):
        bh = ph * r.wafers / peak
        x = left + i * bw + 6
        parts.append(f'<rect x="{x}" y="{top + ph - bh:.1f}" width="{bw - 12}" height="{bh:.1f}" '
                     f'fill="{colours.get(r.pattern, PALETTE[0])}"><title>{_e(r.pattern)}: {r.wafers} wafers'
                     f'</title></rect>')
        parts.append(f'<text x="{x + (bw - 12) / 2:.1f}" y="{top + ph - bh - 3:.1f}" text-anchor="middle">'
                     f'{r.wafers}</text>')
        cx = x + (bw - 12) / 2
        parts.append(f'<text transform="translate({cx:.1f},{top + ph + 12}) rotate(35)">{_e(r.pattern)}</text>')
        points.append(f"{cx:.1f},{top + ph * (1 - r.cumulative):.1f}")
    parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#263238" stroke-width="1.5"/>')
    parts += [f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" fill="#263238"/>' for p in points]
    return "".join(parts) + "</svg>"


def _mix_bar(row: pd.Series, colours: dict[str, str]) -> str:
    total = max(1, int(row.sum()))
    spans = "".join(f'<span style="width:{100 * v / total:.2f}%;background:{colours.get(k, PALETTE[0])}" '
                    f'title="{_e(k)}: {int(v)}"></span>' for k, v in row.items() if v > 0)
    return f'<div class="mix">{spans}</div>'


def _lots_table(lots: pd.DataFrame) -> str:
    rows = []
    for i, r in enumerate(lots.itertuples(index=False)):
        ym, ymin = _pct(r.yield_mean), _pct(r.yield_min)
        rows.append(_td(f'<a href="#lot-{i}">{_lot_name(r.lot)}</a>', r.lot) + _td(str(r.wafers), num=True)
                    + _td(ym[0], ym[1], True) + _td(ymin[0], ymin[1], True) + _td(str(int(r.fail_count)), num=True)
                    + _td(_e(r.top_pattern)) + _td(_pct(r.top_share)[0], _pct(r.top_share)[1], True)
                    + _td(str(int(r.flagged)), num=True) + _td(_e(r.patterns)))
    return _table("lots-table", ["lot", "wafers", "mean yield", "lowest yield", "failing dies", "top pattern",
                                 "top share", "flagged", "pattern mix"], rows)


def _wafer_rows(w: pd.DataFrame, with_lot: bool, has_true: bool) -> tuple[list[str], list[str]]:
    rows, classes = [], []
    for r in w.itertuples(index=False):
        y = _pct(r.yield_)
        cells = (_td(_lot_name(r.lot), r.lot) if with_lot else "") + _td(_e(r.wafer))
        cells += _td(_e(r.predicted)) + _td(f"{r.confidence:.3f}", f"{r.confidence:.6f}", True)
        cells += (_td(_e(r.true)) if has_true else "") + _td(y[0], y[1], True)
        cells += _td(str(int(r.fail_count)), num=True) + _td(_e(r.flag))
        rows.append(cells)
        classes.append("flagged" if r.flag else "")
    return rows, classes


def _wafer_headers(with_lot: bool, has_true: bool) -> list[str]:
    return (["lot"] if with_lot else []) + ["wafer", "pattern", "confidence"] + (["true"] if has_true else []) \
        + ["yield", "failing dies", "flag"]


def _thumb(r: Any, png: bytes, colour: str, cam: bytes | None = None) -> str:
    extra = "".join(f" · {k} {_e(v)}" for k, v in (("decision", getattr(r, "decision", "")),
                                                    ("set", getattr(r, "set", ""))) if v)
    title = f"{r.wafer}: {r.predicted} ({r.confidence:.3f})" + (f" — {r.flag}" if r.flag else "") + extra
    overlay = (f'<img class="cam" src="{_data_uri(cam)}" alt="explanation of wafer {_e(r.wafer)}" '
               'title="where the model looked (class activation map)">' if cam else "")
    return (f'<figure class="wafer{" flagged" if r.flag else ""}{" explained" if cam else ""}" title="{_e(title)}">'
            f'<img src="{_data_uri(png)}" alt="wafer {_e(r.wafer)}">{overlay}<figcaption><b>{_e(r.wafer)}</b>'
            f'<i style="background:{colour}"></i>{_e(r.predicted)} · {r.confidence:.2f}</figcaption></figure>')


def _lot_section(i: int, lot: str, w: pd.DataFrame, summary: Any, mix: pd.Series, maps: Sequence[np.ndarray],
                 colours: dict[str, str], has_true: bool, step: Callable[[str], None] | None,
                 explanations: dict[int, bytes]) -> str:
    ym, ymin = _pct(summary.yield_mean), _pct(summary.yield_min)
    out = [f'<section class="lot" id="lot-{i}" data-lot="{_e(lot)}"><h2>Lot {_lot_name(lot)}</h2>',
           f'<p class="stats"><b>{summary.wafers}</b> wafers · mean yield <b>{ym[0]}</b> · lowest {ymin[0]} · '
           f'<b>{int(summary.flagged)}</b> flagged</p><div class="row"><div><h3>Pattern mix</h3>',
           _mix_bar(mix, colours), '<div class="key">' + "".join(
               f'<span><i style="background:{colours.get(k, PALETTE[0])}"></i>{_e(k)} {int(v)}</span>'
               for k, v in mix.items() if v > 0) + "</div>"]
    flagged = w[w["flag"] != ""]
    if len(flagged):
        names = ", ".join(f"{_e(r.wafer)} ({_e(r.predicted)}, {r.confidence:.2f}: {_e(r.flag)})"
                          for r in flagged.head(SHOWN_FLAGGED).itertuples(index=False))
        more = f" and {len(flagged) - SHOWN_FLAGGED} more (see the table)" if len(flagged) > SHOWN_FLAGGED else ""
        out.append(f'<h3>Flagged wafers ({len(flagged)})</h3><p class="flag-list">{names}{more}</p>')
    out.append("</div>")
    if lot and len(w) >= 2:
        png = stacked_png([maps[j] for j in w["map"]], max_px=STACKED_PX)
        out.append(f'<div class="stack"><h3>Stacked map</h3><img src="{_data_uri(png)}" alt="stacked map of lot '
                   f'{_e(lot)}"><div class="ramp"></div><div class="ramp-l"><span>0 %</span>'
                   f'<span>failure rate</span><span>100 %</span></div></div>')
    out.append('</div><h3>Wafers</h3><div class="grid">')
    for r in w.itertuples(index=False):
        out.append(_thumb(r, map_png(maps[r.map], max_px=THUMB_PX), colours.get(r.predicted, PALETTE[0]),
                          explanations.get(int(r.map))))
        if step:
            step(str(r.wafer))
    rows, classes = _wafer_rows(w, False, has_true)
    out.append("</div>" + _table(f"wafers-{i}", _wafer_headers(False, has_true), rows, classes) + "</section>")
    return "".join(out)


def build_lot_report(wafers: pd.DataFrame, maps: Sequence[np.ndarray], *, low_confidence: float,
                     title: str = "Lot report", model: str = "", class_names: Sequence[str] = (),
                     rare_share: float = RARE_SHARE, step: Callable[[str], None] | None = None,
                     explanations: dict[int, bytes] | None = None) -> tuple[str, dict[str, Any]]:
    """(HTML text, report dict) of a lot report. `wafers`: one row per wafer with ``map`` (index into `maps`),
    ``lot`` ("" = none), ``wafer`` (shown id), ``predicted``, ``confidence``, ``yield``, ``die_count``,
    ``fail_count`` and optionally ``true``, ``decision``, ``set``; `maps`: die codes 0/1/2. `step` is called once
    per thumbnail; `explanations`: map index -> PNG of its class activation overlay, shown next to the map."""
    w = wafers.copy()
    w["lot"], w["wafer"], w["predicted"] = (w[c].fillna("").astype(str) for c in ("lot", "wafer", "predicted"))
    w = flag_wafers(w, low_confidence, rare_share)
    lots, mix, par = lot_summary(w), pattern_mix(w), pareto(w)
    has_true = "true" in w.columns and (w["true"].astype(str) != "").any()
    colours = _colours(list(class_names) + list(w["predicted"]))
    tw = w.rename(columns={"yield": "yield_"})
    n_flag = int((w["flag"] != "").sum())
    meta = (f"{len(w)} wafers in {len(lots)} lot(s) · model {_e(model or '?')} · <b>{n_flag}</b> flagged "
            f"(decision review or unknown, confidence below {low_confidence:g}, or a pattern on under "
            f"{100 * rare_share:g} % of its lot's "
            f"wafers) · {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    nav = "".join(f'<a href="#lot-{i}">{_lot_name(lot)}</a>' for i, lot in enumerate(lots["lot"]))
    flagged = tw[tw["flag"] != ""]
    frows, fclasses = _wafer_rows(flagged, True, has_true)
    body = [f'<header><h1>{_e(title)}</h1><p>{meta}</p></header><main><nav>Lots: {nav}</nav>',
            '<section id="overview"><h2>Lots</h2>', _lots_table(lots),
            "<h2>Patterns across lots (Pareto)</h2>", pareto_svg(par, colours),
            _table("pareto-table", ["pattern", "wafers", "lots", "share", "cumulative"],
                   [_td(_e(r.pattern)) + _td(str(r.wafers), num=True) + _td(str(r.lots), num=True)
                    + _td(*_pct(r.share), True) + _td(*_pct(r.cumulative), True)
                    for r in par.itertuples(index=False)]),
            f"<h2>Flagged wafers ({len(flagged)})</h2>",
            _table("flagged-table", _wafer_headers(True, has_true), frows, fclasses) if len(flagged)
            else '<p class="none">No wafer flagged.</p>', "</section>"]
    for i, (lot, s) in enumerate(zip(lots["lot"], lots.itertuples(index=False))):
        body.append(_lot_section(i, lot, tw[tw["lot"] == lot], s, mix.loc[lot], maps, colours, has_true, step,
                                 explanations or {}))
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{_e(title)}</title><style>{CSS}</style></head>'
            f'<body>{"".join(body)}</main><script>{JS}</script></body></html>\n')
    return page, report_dict(w, lots, par, title=title, model=model, low_confidence=low_confidence,
                             rare_share=rare_share)


def report_dict(flagged: pd.DataFrame, lots: pd.DataFrame, par: pd.DataFrame, **head: Any) -> dict[str, Any]:
    """The report's numbers for machines: per lot (yield, pattern counts, flagged wafers) and the Pareto."""
    out: dict[str, Any] = {**head, "wafers": len(flagged), "flagged": int((flagged["flag"] != "").sum()),
                           "lots": []}
    for lot in records(lots):
        w = flagged[flagged["lot"] == lot["lot"]]
        lot["patterns"] = {str(k): int(v) for k, v in w["predicted"].value_counts().items()}
        cols = ["map", "wafer", "predicted", "confidence", "flag", "low_confidence", "rare_pattern", "pattern_share"]
        cols += [c for c in ("decision", "set", "unknown_score") if c in w.columns]
        lot["flagged_wafers"] = records(w[w["flag"] != ""], cols)
        out["lots"].append(lot)
    out["pareto"] = records(par)
    return out


def write_lot_report(out: str | Path, wafers: pd.DataFrame, maps: Sequence[np.ndarray], **options: Any
                     ) -> dict[str, Any]:
    """Write the report HTML to `out` and its numbers to the ``.json`` next to it (`build_lot_report`'s
    options); returns the report dict with ``html`` / ``json`` paths and ``html_bytes``."""
    out = Path(out)
    page, data = build_lot_report(wafers, maps, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    js = out.with_suffix(".json")
    js.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return {**data, "html": str(out), "json": str(js), "html_bytes": out.stat().st_size}
