"""Headless Chromium through Selenium for the web-page tests (skips when no browser is installed)."""
from __future__ import annotations

import shutil
from typing import Any

import pytest

BASE_ARGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900")
# no network: only 127.0.0.1 resolves, and every other request goes to a proxy that is not there
OFFLINE_ARGS = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
                "--disable-background-networking", "--disable-component-update", "--no-first-run")


def headless_chromium(offline: bool = False) -> Any:
    """A Selenium Chrome driver; `offline`: no network but 127.0.0.1, browser and performance logs kept."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("no chromium + chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver  # the test extra: installed by `make test`
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in BASE_ARGS + (OFFLINE_ARGS if offline else ()):
        opts.add_argument(a)
    if offline:
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    try:
        return webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    except Exception as e:  # a broken browser install is an environment problem, not a failure of ours
        pytest.skip(f"chromium did not start: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
