"""The lot report in headless Chromium (Selenium + Debian's chromium/chromedriver), opened from file:// with no
network: it loads, its tables and pictures are there, a header click sorts a table, the page is not blank."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from helpers.browser import headless_chromium
from helpers.lots import lot_wafers

from adrcs.report.lot_report import write_lot_report

pytestmark = pytest.mark.slow


def _column(browser, table_id: str, col: int) -> list[str]:
    return browser.execute_script(
        "var col = arguments[1]; return Array.from(document.getElementById(arguments[0]).tBodies[0].rows)"
        ".map(function(r){return r.cells[col].textContent.trim();});", table_id, col)


def test_report_opens_offline_sorts_and_shows_pictures(tmp_path: Path):
    from PIL import Image
    from selenium.webdriver.common.by import By

    df, maps = lot_wafers()
    write_lot_report(tmp_path / "report.html", df, maps, low_confidence=0.7, title="Browser check")
    browser = headless_chromium(offline=True)
    try:
        browser.get((tmp_path / "report.html").as_uri())
        assert browser.title == "Browser check"
        # tables and pictures (thumbnails, stacked maps) are there and decoded
        tables = browser.find_elements(By.CSS_SELECTOR, "table.sortable")
        assert {t.get_attribute("id") for t in tables} >= {"lots-table", "pareto-table", "flagged-table", "wafers-0"}
        assert len(browser.find_elements(By.CSS_SELECTOR, "figure.wafer img")) == len(df)
        widths = browser.execute_script("return Array.from(document.images).map(function(i){return i.complete ? "
                                        "i.naturalWidth : -1;})")
        assert len(widths) == len(df) + 2 and min(widths) > 0
        assert browser.find_element(By.ID, "pareto-chart").size["width"] > 100
        # a click on "confidence" sorts lot A's wafer table ascending, a second click descending
        conf = browser.find_elements(By.CSS_SELECTOR, "#wafers-1 th")[2]
        assert conf.text.startswith("confidence")
        before = [float(v) for v in _column(browser, "wafers-1", 2)]
        conf.click()
        up = [float(v) for v in _column(browser, "wafers-1", 2)]
        assert up == sorted(before) and up != before and conf.get_attribute("aria-sort") == "ascending"
        conf.click()
        assert [float(v) for v in _column(browser, "wafers-1", 2)] == sorted(before, reverse=True)
        # text columns sort too (lots table by lot id)
        browser.find_elements(By.CSS_SELECTOR, "#lots-table th")[1].click()   # wafers
        assert [int(v) for v in _column(browser, "lots-table", 1)] == [1, 3, 20]
        # the data's <script> lot id is text, not code; no script errors; nothing requested from the network
        assert browser.execute_script("return document.scripts.length") == 1
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        urls = [json.loads(e["message"])["message"].get("params", {}).get("request", {}).get("url", "")
                for e in browser.get_log("performance")]
        assert not [u for u in urls if u and not u.startswith(("file:", "data:"))]
        shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB"))
    finally:
        browser.quit()
    assert shot.std() > 10 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 20   # not a blank page
