"""The review page end to end in headless Chromium (Selenium + Debian's chromium/chromedriver): the queue shows
a low-confidence wafer map as a picture next to its lot's stacked map and its explanation, with its decision badge
and prediction set; one click confirms it, and the review is in the store; the lot filter narrows the queue."""
from __future__ import annotations

import pytest
from helpers.browser import headless_chromium
from helpers.live_server import serve_in_thread
from helpers.runs import small_maps, train_wafer_run

from adrcs.serve.app import ServiceConfig, create_app
from adrcs.serve.store import Store
from adrcs.serve.web import install_web

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def live_service(tmp_path_factory, tmp_path):
    """(URL, engineer token, store) of the real service on a tiny model, every inspection queued."""
    run = train_wafer_run(tmp_path_factory.mktemp("page"), 0)
    store = Store(f"sqlite:///{tmp_path / 'page.db'}")
    token = store.create_token("eve", "engineer")
    # everything is queued; install_web: the page, its scripts and headers (a no-op once create_app calls it)
    app = install_web(create_app(ServiceConfig(models=[str(run)], low_confidence=1.01), store=store))
    with serve_in_thread(app) as url:
        yield url, token, store


def test_review_page_confirms_a_label(live_service):
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, token, store = live_service
    r = httpx.post(f"{url}/v1/inspect/wafer-maps", json={"maps": small_maps(2), "lot": "LOT-A"},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    ids = [x["id"] for x in r.json()["results"]]
    decision = r.json()["results"][-1]["decision"]
    browser = headless_chromium()
    try:
        browser.get(url + "/")
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.ID, "load").click()
        from selenium.common.exceptions import StaleElementReferenceException

        # the queue re-renders its cards while a wait polls them: a stale element means "not yet"
        wait = WebDriverWait(browser, 20, ignored_exceptions=[StaleElementReferenceException])
        card = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f".card[data-id='{ids[-1]}']")))
        wait.until(lambda b: card.find_element(By.TAG_NAME, "img").get_attribute("src").startswith("blob:"))
        assert browser.execute_script("return arguments[0].naturalWidth", card.find_element(By.TAG_NAME, "img")) > 0
        # the lot's stacked failure-rate map next to the wafer
        lot_img = wait.until(lambda b: card.find_element(By.CSS_SELECTOR, ".lotmap img"))
        wait.until(lambda b: (lot_img.get_attribute("src") or "").startswith("blob:"))
        wait.until(lambda b: b.execute_script("return arguments[0].naturalWidth", lot_img) > 0)
        caption = card.find_element(By.CSS_SELECTOR, ".lotmap figcaption").text
        assert "LOT-A" in caption and "2 wafer maps" in caption, caption
        assert "LOT-A" in browser.find_element(By.ID, "counts").text
        # the trust answer: a decision badge (this model has no trust layer: its class), the set, the score
        badge = card.find_element(By.CSS_SELECTOR, ".badge")
        assert badge.text == decision and "decided" in badge.get_attribute("class")
        assert "prediction set" in card.find_element(By.CSS_SELECTOR, ".trust").text
        # the explanation, fetched with the token once the card is in view
        explain_img = wait.until(lambda b: card.find_element(By.CSS_SELECTOR, ".explain img"))
        wait.until(lambda b: (explain_img.get_attribute("src") or "").startswith("blob:"))
        wait.until(lambda b: b.execute_script("return arguments[0].naturalWidth", explain_img) > 0)
        assert browser.find_element(By.ID, "pageinfo").text == "1-2 of 2"
        assert browser.find_element(By.ID, "prev").get_attribute("disabled") is not None
        assert browser.find_element(By.ID, "driftstat").text  # "too few recent inspections (2)"
        card.find_element(By.CSS_SELECTOR, "button.confirm").click()
        wait.until(lambda b: card.find_element(By.CSS_SELECTOR, ".status").text == "confirmed")
        # the filters: another lot's map, then only that lot in the queue
        r = httpx.post(f"{url}/v1/inspect/wafer-maps", json={"maps": small_maps(1, seed=4), "lot": "LOT-B"},
                       headers={"Authorization": f"Bearer {token}"})
        other = r.json()["results"][0]["id"]
        for control in ("f-cls", "f-decision", "f-since", "f-until", "next"):
            assert browser.find_element(By.ID, control).is_displayed()
        browser.find_element(By.ID, "f-lot").send_keys("LOT-B")
        browser.find_element(By.ID, "apply").click()
        wait.until(lambda b: [c.get_attribute("data-id") for c in b.find_elements(By.CSS_SELECTOR, ".card")]
                   == [str(other)])
        assert browser.find_element(By.ID, "pageinfo").text == "1-1 of 1"
        # the token stays in this tab only
        assert browser.execute_script("return sessionStorage.getItem('adrcs_token')") == token
        assert browser.execute_script("return localStorage.getItem('adrcs_token')") is None
    finally:
        browser.quit()
    rec = store.get_inspection(ids[-1])
    assert len(rec.reviews) == 1 and rec.reviews[0].action == "confirm" and rec.reviews[0].reviewer == "eve"
    assert rec.effective_label == rec.predicted
    assert not store.get_inspection(ids[0]).reviews  # only the clicked one
