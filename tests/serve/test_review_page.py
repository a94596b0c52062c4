"""The review page end to end in headless Chromium (Selenium + Debian's chromium/chromedriver): the queue shows
a low-confidence wafer map as a picture, one click confirms it, and the review is in the store."""
from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

from adrcs.serve.app import ServiceConfig, create_app
from adrcs.serve.store import Store
from adrcs.serve.web import install_web

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("no chromium + chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver  # the test extra: installed by `make test`
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
        opts.add_argument(a)
    try:
        return webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    except Exception as e:  # a broken browser install is an environment problem, not a failure of ours
        pytest.skip(f"chromium did not start: {type(e).__name__}: {str(e).splitlines()[0][:200]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_service(tmp_path_factory, tmp_path):
    import uvicorn
    from test_app import _train_wafer

    run = _train_wafer(tmp_path_factory.mktemp("page"), 0)
    store = Store(f"sqlite:///{tmp_path / 'page.db'}")
    token = store.create_token("eve", "engineer")
    # everything is queued; install_web: the page, its scripts and headers (a no-op once create_app calls it)
    app = install_web(create_app(ServiceConfig(models=[str(run)], low_confidence=1.01), store=store))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", token, store
    server.should_exit = True
    thread.join(timeout=10)


def test_review_page_confirms_a_label(live_service):
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    from test_app import _maps

    url, token, store = live_service
    r = httpx.post(f"{url}/v1/inspect/wafer-maps", json={"maps": _maps(2), "lot": "LOT-A"},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    ids = [x["id"] for x in r.json()["results"]]
    browser = _browser()
    try:
        browser.get(url + "/")
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.ID, "load").click()
        wait = WebDriverWait(browser, 20)
        card = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f".card[data-id='{ids[-1]}']")))
        wait.until(lambda b: card.find_element(By.TAG_NAME, "img").get_attribute("src").startswith("blob:"))
        assert browser.execute_script("return arguments[0].naturalWidth", card.find_element(By.TAG_NAME, "img")) > 0
        assert "LOT-A" in browser.find_element(By.ID, "counts").text
        card.find_element(By.CSS_SELECTOR, "button.confirm").click()
        wait.until(lambda b: card.find_element(By.CSS_SELECTOR, ".status").text == "confirmed")
        # the token stays in this tab only
        assert browser.execute_script("return sessionStorage.getItem('adrcs_token')") == token
        assert browser.execute_script("return localStorage.getItem('adrcs_token')") is None
    finally:
        browser.quit()
    rec = store.get_inspection(ids[-1])
    assert len(rec.reviews) == 1 and rec.reviews[0].action == "confirm" and rec.reviews[0].reviewer == "eve"
    assert rec.effective_label == rec.predicted
    assert not store.get_inspection(ids[0]).reviews  # only the clicked one
