"""The lot report's numbers (lot_summary) and its HTML (lot_report): per-lot sections, wafers flagged by low
confidence and by a pattern rare in its lot, escaping of data-borne text, nothing fetched from anywhere."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.lots import EVIL, lot_wafers as _wafers

from adrcs.report.lot_report import build_lot_report, write_lot_report
from adrcs.report.lot_summary import flag_wafers, lot_summary, pareto, pattern_mix


def test_flags_low_confidence_and_rare_patterns():
    df, _ = _wafers()
    f = flag_wafers(df, low_confidence=0.7).set_index("wafer")
    assert f.loc["A19", "flag"] == "rare in lot"                        # 1 of 20 wafers = 5 %
    assert f.loc["A18", "flag"] == "low confidence"                     # Center: 2 of 20 = 10 %, not rare
    assert f.loc["A17", "flag"] == "" and f.loc["A00", "flag"] == ""
    assert f.loc["E2", "flag"] == "low confidence" and f.loc["E0", "flag"] == ""
    assert f.loc["loose.pkl:7", "flag"] == ""                           # 1 of 1 wafer: not rare
    assert f.loc["A19", "pattern_share"] == pytest.approx(0.05)
    # "none" is never a rare pattern
    g = flag_wafers(pd.DataFrame({"lot": ["L"] * 11, "predicted": ["Loc"] * 10 + ["none"],
                                  "confidence": [1.0] * 11}), 0.5)
    assert not g["rare_pattern"].any()
    # nor is anything in maps without a lot id (they are in no lot)
    h = flag_wafers(pd.DataFrame({"lot": [""] * 11, "predicted": ["Loc"] * 10 + ["Donut"],
                                  "confidence": [1.0] * 11}), 0.5)
    assert not h["rare_pattern"].any()


def test_lot_numbers_and_pareto():
    df, _ = _wafers()
    lots = lot_summary(flag_wafers(df, 0.7)).set_index("lot")
    assert list(lots.index) == [EVIL, "A", ""]                          # sorted; maps without a lot last
    assert lots.loc["A", "wafers"] == 20 and lots.loc["A", "flagged"] == 2
    assert lots.loc["A", "top_pattern"] == "none" and lots.loc["A", "top_share"] == pytest.approx(0.85)
    assert lots.loc["A", "patterns"] == "none 17, Center 2, Scratch 1"
    assert lots.loc["A", "yield_mean"] == pytest.approx(df[df.lot == "A"]["yield"].mean())
    assert lots.loc[EVIL, "fail_count"] == df[df.lot == EVIL]["fail_count"].sum()
    assert pattern_mix(df).loc["A", "Center"] == 2
    p = pareto(df)
    assert list(p["pattern"]) == ["Donut", "Center", "Loc", "Scratch"]   # "none" left out, most wafers first
    assert list(p["wafers"]) == [3, 2, 1, 1] and p["cumulative"].iloc[-1] == pytest.approx(1.0)
    assert p.set_index("pattern").loc["Donut", "lots"] == 1


def test_html_sections_flags_escaping_and_no_external_resources(tmp_path: Path):
    df, maps = _wafers()
    out = write_lot_report(tmp_path / "r.html", df, maps, low_confidence=0.7, title="Week <7> & co",
                           model="run0", class_names=["Center", "Donut", "Loc", "Scratch", "none"])
    page = (tmp_path / "r.html").read_text()
    assert "http" not in page and "url(" not in page and "@import" not in page   # nothing fetched
    assert not re.search(r"""(src|href)=(?!["']?(data:image/png;base64,|#))""", page)
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script>") == 1                                # only the sorting code
    assert "<title>Week &lt;7&gt; &amp; co</title>" in page
    # one section per lot, the lots table, the Pareto, the flagged table, one thumbnail per wafer
    assert len(re.findall(r'<section class="lot" id="lot-\d+"', page)) == 3
    for table in ("lots-table", "pareto-table", "flagged-table", "wafers-0", "wafers-1", "wafers-2"):
        assert f'id="{table}"' in page
    assert "<svg" in page and 'id="pareto-chart"' in page
    assert page.count('<figure class="wafer') == len(df)
    assert page.count('<figure class="wafer flagged"') == 3
    assert page.count("alt=\"stacked map") == 2                       # lots with 2 or more wafers
    flagged_table = page.split('id="flagged-table"')[1].split("</table>")[0]
    assert "A19" in flagged_table and "rare in lot" in flagged_table and "A18" in flagged_table
    assert "E2" in flagged_table and "A17" not in flagged_table
    # the JSON next to it
    data = json.loads((tmp_path / "r.json").read_text())
    assert out["json"] == str(tmp_path / "r.json") and data["flagged"] == 3 and data["wafers"] == len(df)
    lots = {lot["lot"]: lot for lot in data["lots"]}
    assert {w["wafer"] for w in lots["A"]["flagged_wafers"]} == {"A18", "A19"}
    assert lots[EVIL]["patterns"] == {"Donut": 3} and lots[""]["wafers"] == 1
    assert data["pareto"][0] == {"pattern": "Donut", "wafers": 3, "lots": 1, "share": pytest.approx(3 / 7),
                                 "cumulative": pytest.approx(3 / 7)}


def test_thumbnails_keep_1000_wafers_small():
    """One thumbnail per wafer as a small PNG: 1,000 wafers of 40 x 40 dies stay far under 20 MB."""
    rng = np.random.default_rng(1)
    maps = [np.where(rng.random((40, 40)) < 0.2, 2, 1).astype(np.uint8) for _ in range(200)]
    df = pd.DataFrame({"map": np.arange(200), "lot": [f"L{i // 25}" for i in range(200)],
                       "wafer": [str(i % 25 + 1) for i in range(200)], "predicted": "Random", "confidence": 0.9,
                       "die_count": 1600, "fail_count": 320, "yield": 0.8})
    page, data = build_lot_report(df, maps, low_confidence=0.7)
    assert len(page.encode()) * 5 < 20e6 / 4 and data["flagged"] == 0 and len(data["lots"]) == 8


def test_empty_pareto_and_true_column():
    df, maps = _wafers()
    df["predicted"] = "none"
    df["true"] = "Loc"
    page, data = build_lot_report(df, maps, low_confidence=0.0)
    assert "No defect patterns predicted." in page and data["pareto"] == []
    assert "<th>true</th>" in page and "No wafer flagged." in page
