"""``GET /v1/inspections/{id}/explanation.png``: a class activation map over a stored wafer map, cached by id and
model version; clean 404s when an inspection cannot be explained."""
from __future__ import annotations

import io

import numpy as np
import pytest
from helpers.runs import small_maps
from helpers.service import assert_clean_error, role_auth

from adrcs.serve.store import NewInspection

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_wafer_explanation_png_cached(make_wafer_service, trust_wafer_run, monkeypatch):
    from PIL import Image

    from adrcs.serve import explain_route

    client, tokens, _ = make_wafer_service(run=trust_wafer_run)
    h = role_auth(tokens, "inspector")
    ids = [x["id"] for x in client.post("/v1/inspect/wafer-maps", json={"maps": small_maps(2, side=24)},
                                        headers=h).json()["results"]]
    r = client.get(f"/v1/inspections/{ids[0]}/explanation.png", headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-model-version"].startswith("wafer-")
    overlay = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    picture = np.asarray(Image.open(io.BytesIO(client.get(f"/v1/inspections/{ids[0]}/image.png",
                                                          headers=h).content)).convert("RGB"))
    assert overlay.shape == picture.shape  # the map as the review page draws it, the CAM blended over it
    assert (overlay != picture).any()

    def not_again(*_a, **_k):
        raise AssertionError("computed twice")

    monkeypatch.setattr(explain_route, "explanation_png", not_again)
    again = client.get(f"/v1/inspections/{ids[0]}/explanation.png", headers=h)
    assert again.status_code == 200 and again.content == r.content  # from the cache
    assert client.get(f"/v1/inspections/{ids[0]}/explanation.png").status_code == 401


def test_not_explainable_is_a_clean_404(make_wafer_service, monkeypatch):
    from adrcs.errors import InputError
    from adrcs.inference import explain

    client, tokens, store = make_wafer_service()
    h = role_auth(tokens, "inspector")
    rid = client.post("/v1/inspect/wafer-maps", json={"maps": small_maps(1)}, headers=h).json()["results"][0]["id"]

    def sinogram(*_a, **_k):
        raise InputError("/srv/models/run", "explain supports 2-D map models; this is a sinogram-feature model")

    monkeypatch.setattr(explain, "map_explanations", sinogram)
    body = assert_clean_error(client.get(f"/v1/inspections/{rid}/explanation.png", headers=h), 404)
    assert "sinogram" in body["detail"] and "/srv" not in body["detail"]
    assert "no inspection" in assert_clean_error(client.get("/v1/inspections/99999/explanation.png", headers=h),
                                                 404)["detail"]
    [img] = store.add_inspections([NewInspection(kind="image", model_version="detect-0123456789ab", predicted="open",
                                                 probabilities={}, confidence=0.9, content=b"\x89PNG-not-read",
                                                 media_type="image/png")])
    body = assert_clean_error(client.get(f"/v1/inspections/{img.id}/explanation.png", headers=h), 404)
    assert "no detect model" in body["detail"]


def test_cache_keeps_the_last_ones():
    from adrcs.serve.explain_route import ExplanationCache

    cache = ExplanationCache(size=2)
    cache.put((1, "v"), b"a")
    cache.put((2, "v"), b"b")
    assert cache.get((1, "v")) == b"a"  # now the most recent
    cache.put((3, "v"), b"c")
    assert cache.get((2, "v")) is None and cache.get((1, "v")) == b"a" and cache.get((3, "v")) == b"c"
    assert cache.get((1, "other model")) is None
