"""An air-gapped line: `/docs` and the review page `/` render in headless Chromium with no network beyond
the service itself, under the strict CSP, without any failed external request or CSP violation.

Chromium resolves no host name but 127.0.0.1 and sends everything else to a proxy that does not exist,
so anything the pages tried to fetch from a CDN would fail (and show in the browser's network log).
Also checked: no token -> the page says where tokens come from; a token is kept per tab (sessionStorage,
an old localStorage entry is moved and deleted); lot / wafer text from the API is shown as text (no XSS).
"""
from __future__ import annotations

import json

import pytest
from helpers.browser import headless_chromium
from helpers.live_server import serve_in_thread
from helpers.runs import small_maps, train_wafer_run

from adrcs.serve.app import ServiceConfig, create_app
from adrcs.serve.store import Store
from adrcs.serve.web import install_web

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
XSS = '<img src=x onerror="window.__xss=1">'


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The real service (uvicorn in a thread, a tiny model, every inspection queued) and an offline browser."""
    import httpx

    tmp = tmp_path_factory.mktemp("offline")
    run = train_wafer_run(tmp, 0)
    store = Store(f"sqlite:///{tmp / 'adrcs.db'}")
    token = store.create_token("eve", "engineer")
    app = install_web(create_app(ServiceConfig(models=[str(run)], low_confidence=1.01), store=store))
    with serve_in_thread(app) as url:
        r = httpx.post(f"{url}/v1/inspect/wafer-maps", json={"maps": small_maps(2), "lot": XSS, "wafer": XSS},
                       headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        browser = headless_chromium(offline=True)
        try:
            yield url, token, browser
        finally:
            browser.quit()
    store.close()


def _logs(browser, base: str) -> tuple[list[dict], list[str], list[str]]:
    """(browser console entries, URLs requested outside `base`, URLs whose loading failed) since the last call."""
    console = browser.get_log("browser")
    outside, failed = [], []
    requested: dict[str, str] = {}
    for e in browser.get_log("performance"):
        m = json.loads(e["message"])["message"]
        if m["method"] == "Network.requestWillBeSent":
            u = m["params"]["request"]["url"]
            requested[m["params"]["requestId"]] = u
            if not u.startswith((base + "/", "data:", "blob:")):
                outside.append(u)
        elif m["method"] == "Network.loadingFailed" and not m["params"].get("canceled"):
            failed.append(requested.get(m["params"]["requestId"], "?") + " " + m["params"].get("errorText", ""))
    return console, outside, failed


def _no_problems(console: list[dict], allow: tuple[str, ...] = ()) -> None:
    csp = [e["message"] for e in console if e.get("source") == "security" or "Content Security Policy" in e["message"]]
    assert not csp, csp
    severe = [e["message"] for e in console if e["level"] == "SEVERE" and not any(a in e["message"] for a in allow)]
    assert not severe, severe


def _wait(browser, cond, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(cond)


def test_the_browser_really_is_offline(live):
    """The test's premise: a CDN request fails for want of a network (from a page without our CSP)."""
    url, _, browser = live
    browser.get("about:blank")
    ok = browser.execute_async_script(
        "const done = arguments[0]; fetch('https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css', "
        "{mode: 'no-cors'}).then(() => done(true), () => done(false));")
    assert ok is False
    console, _, failed = _logs(browser, url)
    assert any("cdn.jsdelivr.net" in f and "ERR_" in f for f in failed), failed
    assert not any(e.get("source") == "security" for e in console)  # refused by the network, not by a CSP


def test_docs_render_the_operations_offline(live):
    from selenium.webdriver.common.by import By

    url, _, browser = live
    _logs(browser, url)
    browser.get(url + "/docs")
    _wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, ".opblock")) >= 10)
    paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/v1/inspect/wafer-maps", "/v1/inspections", "/v1/models"} <= paths
    assert browser.find_element(By.CSS_SELECTOR, ".info .title").text.startswith("ADRCS inspection service")
    console, outside, failed = _logs(browser, url)
    assert outside == [] and failed == []
    _no_problems(console)


def test_page_without_a_token_says_where_tokens_come_from(live):
    from selenium.webdriver.common.by import By

    url, _, browser = live
    browser.get(url + "/")
    browser.execute_script("sessionStorage.clear(); localStorage.clear();")
    _logs(browser, url)
    browser.refresh()
    help_ = _wait(browser, lambda b: b.find_element(By.ID, "help"))
    _wait(browser, lambda b: help_.is_displayed())
    assert "adrcs token create --name NAME --role engineer" in help_.text and "--admin-token-file" in help_.text
    assert not browser.find_element(By.ID, "panels").is_displayed()  # no empty panels
    console, outside, failed = _logs(browser, url)
    assert outside == [] and failed == []
    _no_problems(console)


def test_page_with_a_wrong_token_shows_the_help_and_the_error(live):
    from selenium.webdriver.common.by import By

    url, _, browser = live
    browser.get(url + "/")
    browser.execute_script("sessionStorage.clear(); localStorage.clear();")
    browser.refresh()
    box = _wait(browser, lambda b: b.find_element(By.ID, "token"))
    box.send_keys("not-a-token")
    browser.find_element(By.ID, "load").click()
    _wait(browser, lambda b: "401" in b.find_element(By.ID, "helperror").text)
    assert browser.find_element(By.ID, "help").is_displayed()
    assert not browser.find_element(By.ID, "panels").is_displayed()
    console, outside, failed = _logs(browser, url)
    assert outside == []
    _no_problems(console, allow=("status of 401",))


def test_page_with_a_token_renders_offline_and_shows_api_text_as_text(live):
    from selenium.webdriver.common.by import By

    url, token, browser = live
    browser.get(url + "/")
    # an older page kept the token in localStorage: it is moved to this tab's sessionStorage and deleted
    browser.execute_script("sessionStorage.clear(); localStorage.setItem('adrcs_token', arguments[0]);", token)
    _logs(browser, url)
    browser.refresh()
    card = _wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".card"))
    _wait(browser, lambda b: (card.find_element(By.TAG_NAME, "img").get_attribute("src") or "").startswith("blob:"))
    assert browser.execute_script("return arguments[0].naturalWidth", card.find_element(By.TAG_NAME, "img")) > 0
    assert browser.execute_script("return localStorage.getItem('adrcs_token')") is None
    assert browser.execute_script("return sessionStorage.getItem('adrcs_token')") == token
    assert not browser.find_element(By.ID, "help").is_displayed()
    # the lot and wafer ids are the attacker's markup, shown literally; no element was made from them
    _wait(browser, lambda b: XSS in b.find_element(By.ID, "counts").text)
    assert XSS in card.text
    assert browser.execute_script("return window.__xss") is None
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    console, outside, failed = _logs(browser, url)
    assert outside == [] and failed == []
    _no_problems(console)
