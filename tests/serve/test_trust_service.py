"""The trust layer's answer in the service (issue 18): every wafer-map inspection (JSON on the fast path and through
FastAPI, uploads) and image inspection carries decision, unknown_score and set, stores them and returns them from
GET; a model trained before the trust layer answers decision = its class, set "" and no score."""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from helpers.runs import small_maps
from helpers.service import role_auth

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TRUST_KEYS = ("decision", "unknown_score", "set")


def _offline_answers(run, maps: list) -> dict:
    """The predictions CSV's trust columns for `maps` (`api_trust.answer_columns` on the saved model)."""
    from adrcs.api_trust import answer_columns
    from adrcs.pipeline import Pipeline

    pipe = Pipeline.load(run)
    probs, feats = pipe.predict_outputs(pipe.prepare([np.asarray(m, np.uint8) for m in maps]))
    return answer_columns(pipe, probs, feats)


def test_runs_with_and_without_a_trust_layer(trust_wafer_run, tiny_wafer_run):
    from adrcs.pipeline import Pipeline

    trusted = Pipeline.load(trust_wafer_run)
    assert trusted.trust is not None and trusted.trust.unknown is not None
    assert Pipeline.load(tiny_wafer_run).trust is None  # 18 validation maps: too few to split
    ref = json.loads((trust_wafer_run / "drift_reference.json").read_text())
    assert 0.0 <= ref["unknown_rate"] <= 1.0


def test_json_route_answers_like_the_predictions_csv(make_wafer_service, trust_wafer_run, fast_path):
    client, tokens, store = make_wafer_service(run=trust_wafer_run, fast_path=fast_path)
    maps = small_maps(6, seed=3)
    r = client.post("/v1/inspect/wafer-maps", json={"maps": maps, "lot": "T1"}, headers=role_auth(tokens, "inspector"))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    want = _offline_answers(trust_wafer_run, maps)
    model = client.app.state.host.current("wafer")
    names = model.class_names
    assert model.fused is not None  # forward pass and unknown score in one traced call
    assert [x["decision"] for x in results] == list(want["decision"])
    assert [x["set"] for x in results] == list(want["set"])
    assert [x["unknown_score"] for x in results] == pytest.approx(list(want["unknown_score"]), rel=1e-3, abs=1e-3)
    for x in results:
        assert x["decision"] in {*names, "review", "unknown"}
        assert isinstance(x["unknown_score"], float) and math.isfinite(x["unknown_score"])
        assert all(m in names for m in x["set"].split(";") if m)
        if x["decision"] in names:  # decided: the set is that one class
            assert x["set"] == x["decision"]
        # stored, and returned by GET (one and the list)
        rec = store.get_inspection(x["id"])
        assert (rec.decision, rec.pred_set) == (x["decision"], x["set"])
        assert rec.unknown_score == pytest.approx(x["unknown_score"])
        one = client.get(f"/v1/inspections/{x['id']}", headers=role_auth(tokens, "inspector")).json()
        assert {k: one[k] for k in TRUST_KEYS} == {k: x[k] for k in TRUST_KEYS}
    listed = client.get("/v1/inspections", params={"lot": "T1"}, headers=role_auth(tokens, "inspector")).json()
    assert {i["id"]: i["decision"] for i in listed["items"]} == {x["id"]: x["decision"] for x in results}
    lot = client.get("/v1/lots/T1", headers=role_auth(tokens, "inspector")).json()
    assert {w["id"]: (w["decision"], w["set"]) for w in lot["wafers"]} == {x["id"]: (x["decision"], x["set"])
                                                                          for x in results}


def test_unknown_patterns_are_flagged(make_wafer_service, trust_wafer_run):
    """Maps unlike any training map (half the wafer failing in stripes) score above the unknown threshold."""
    client, tokens, _ = make_wafer_service(run=trust_wafer_run)
    odd = np.ones((20, 20), np.int64)
    odd[::2] = 2
    r = client.post("/v1/inspect/wafer-maps", json={"maps": [odd.tolist()] * 2},
                    headers=role_auth(tokens, "inspector"))
    assert r.status_code == 200, r.text
    threshold = client.app.state.host.current("wafer").trust.unknown.threshold
    for x in r.json()["results"]:
        assert (x["decision"] == "unknown") == (x["unknown_score"] > threshold)


def test_legacy_model_answers_its_class(make_wafer_service, fast_path):
    client, tokens, store = make_wafer_service(fast_path=fast_path)
    r = client.post("/v1/inspect/wafer-maps", json={"maps": small_maps(3)}, headers=role_auth(tokens, "inspector"))
    assert r.status_code == 200, r.text
    for x in r.json()["results"]:
        assert x["decision"] == x["class"] and x["set"] == "" and x["unknown_score"] is None
        rec = store.get_inspection(x["id"])
        assert (rec.decision, rec.pred_set, rec.unknown_score) == (x["class"], "", None)


def test_uploads_carry_the_answer(make_wafer_service, trust_wafer_run):
    client, tokens, store = make_wafer_service(run=trust_wafer_run)
    maps = small_maps(3, seed=5)
    buf = io.BytesIO()
    np.savez(buf, arr_0=np.array(maps, np.uint8), arr_1=np.zeros((3, 8), np.int64))
    r = client.post("/v1/inspect/wafer-maps", files={"file": ("m.npz", buf.getvalue())}, data={"lot": "UP"},
                    headers=role_auth(tokens, "inspector"))
    assert r.status_code == 200, r.text
    want = _offline_answers(trust_wafer_run, maps)
    results = r.json()["results"]
    assert [x["decision"] for x in results] == list(want["decision"])
    assert [x["set"] for x in results] == list(want["set"])
    assert all(store.get_inspection(x["id"]).decision == x["decision"] for x in results)
    # a JSON file upload too
    r = client.post("/v1/inspect/wafer-maps", files={"file": ("m.json", json.dumps({"maps": maps}).encode())},
                    headers=role_auth(tokens, "inspector"))
    assert [x["decision"] for x in r.json()["results"]] == list(want["decision"])


class _ImagePipe:
    """An image classifier stand-in: fixed probabilities and features, optionally a trust layer."""

    class_names = ["bad", "good"]
    input_size, image_mode, use_template = 8, "L", False

    def __init__(self, probs: list[float], trust=None) -> None:
        self.probs, self.trust = np.asarray(probs, np.float32), trust

    def predict_arrays(self, img, template=None):
        return self.probs

    def predict_outputs(self, x, *args, **kwargs):
        return self.probs[None], np.full((len(x), 4), 3.0, np.float32)


def _image_trust(unknown_method: str = "ensemble"):
    """A real `Trust` fitted on drawn probabilities / features (2 classes, 4 features)."""
    from adrcs.inference.trust import fit_trust

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    probs = np.clip(np.eye(2)[y] * 0.8 + rng.random((200, 2)) * 0.2, 0.01, None)
    probs = probs / probs.sum(1, keepdims=True)
    feats = (rng.normal(size=(200, 4)) + y[:, None]).astype(np.float32)
    return fit_trust(probs[:100], y[:100], probs[100:], y[100:], feats[100:], feats, y, multilabel=False,
                     unknown_method=unknown_method)


@pytest.mark.parametrize("with_trust", [True, False])
def test_image_classifier_answers(with_trust):
    from adrcs.serve.image_route import _predict
    from adrcs.serve.model_host import LoadedModel

    trust = _image_trust() if with_trust else None
    pipe = _ImagePipe([0.97, 0.03], trust)
    model = LoadedModel(version="image_classify-x", kind="image_classify", path="", pipeline=pipe,
                        class_names=pipe.class_names)
    out = _predict(model, "image_classify", np.zeros((8, 8), np.uint8), None)
    assert out["predicted"] == "bad"
    if not with_trust:
        assert (out["decision"], out["set"], out["unknown_score"]) == ("bad", "", None)
        return
    want = trust.answer(pipe.probs[None], np.full((1, 4), 3.0), pipe.class_names)
    assert (out["decision"], out["set"]) == (want.decision[0], want.sets[0])
    assert out["unknown_score"] == pytest.approx(float(want.unknown_score[0]), abs=1e-4)
    assert out["decision"] == "unknown"  # features far from every training map


@pytest.mark.parametrize("method", ["ensemble", "mahalanobis", "knn"])
def test_served_trust_scores_equal_the_trust_layer(method):
    """The traced feature scores the service uses (one GIL-free call) give the trust layer's own scores and answers;
    the model's own scorer is left alone."""
    from adrcs.serve.trust_answers import trust_answers
    from adrcs.serve.trust_scoring import served_trust

    trust = _image_trust(method)
    fast = served_trust(_ImagePipe([0.5, 0.5], trust))
    assert fast.unknown is not trust.unknown and type(fast.unknown).__name__.startswith("Served")
    assert not type(trust.unknown).__name__.startswith("Served")
    rng = np.random.default_rng(1)
    feats = (rng.normal(size=(50, 4)) * 3).astype(np.float32)
    probs = rng.dirichlet([1, 1], 50).astype(np.float32)
    assert np.array_equal(fast.unknown_scores(feats, probs), trust.unknown_scores(feats, probs))
    assert fast.unknown_scores(feats[:1], probs[:1]).shape == (1,)
    assert len(fast.unknown_scores(feats[:0], probs[:0])) == 0
    want = trust.answer(probs, feats, ["bad", "good"])
    got = trust_answers(fast, ["bad", "good"], False, probs, feats)
    assert [g[0] for g in got] == want.decision and [g[2] for g in got] == want.sets
    assert [g[1] for g in got] == [round(float(s), 4) for s in want.unknown_score]
    assert served_trust(_ImagePipe([0.5, 0.5])) is None


def test_served_trust_falls_back_to_the_scorer(monkeypatch):
    """A scorer without feature components (energy), or one whose traced module cannot be made, is used as is."""
    from adrcs.serve import trust_scoring

    energy = _image_trust("energy")
    assert served_trust_type(energy) == "UnknownScorer"

    def fail(*_a, **_k):
        raise RuntimeError("no TorchScript here")

    monkeypatch.setattr(trust_scoring, "_trace", fail)
    assert served_trust_type(_image_trust("ensemble")) == "EnsembleUnknown"


def served_trust_type(trust) -> str:
    from adrcs.serve.trust_scoring import served_trust

    return type(served_trust(_ImagePipe([0.5, 0.5], trust)).unknown).__name__


def test_plain_answers_single_and_multilabel():
    from adrcs.serve.trust_answers import plain_answers, trust_answers

    probs = np.array([[0.7, 0.2], [0.1, 0.3]], np.float32)
    assert plain_answers(["a", "b"], False, probs) == [("a", None, ""), ("b", None, "")]
    assert plain_answers(["a", "b"], True, probs) == [("a", None, ""), ("none", None, "")]
    assert plain_answers(["a", "b"], True, np.array([[0.9, 0.6]])) == [("a;b", None, "")]
    assert trust_answers(None, ["a", "b"], False, np.zeros((0, 2)), None) == []


def test_fused_forward_equals_the_two_calls(trust_wafer_run):
    """The fused call (forward pass + unknown score) answers like the pipeline's forward pass and the trust layer;
    an eager (unfrozen) pipeline is not fused."""
    import torch

    from adrcs.api_trust import answer_columns
    from adrcs.pipeline import Pipeline
    from adrcs.serve.model_host import LoadedModel
    from adrcs.serve.trust_scoring import fused_forward

    pipe = Pipeline.load(trust_wafer_run)
    assert fused_forward(pipe, pipe.trust) is None  # not frozen
    assert pipe.freeze()
    model = LoadedModel(version="v", kind="wafer", path="", pipeline=pipe, class_names=list(pipe.class_names))
    assert model.fused is not None
    stack = model.prepare([np.asarray(m, np.uint8) for m in small_maps(9, seed=7)])
    probs, answers = model.answer_prepared(stack)
    want_probs, feats = pipe.predict_outputs(torch.from_numpy(stack))
    want = answer_columns(pipe, want_probs, feats)
    assert np.allclose(probs, want_probs, atol=1e-6)
    assert [a[0] for a in answers] == list(want["decision"]) and [a[2] for a in answers] == list(want["set"])
    assert [a[1] for a in answers] == pytest.approx(list(want["unknown_score"]), abs=2e-4)
    assert model.predict_prepared(stack).shape == probs.shape


def test_numpy_calibration_equals_the_trust_layer():
    """The service's calibration (numpy softmax / sigmoid: no GIL hand-over) gives `Trust.calibrate`'s numbers."""
    from adrcs.inference.trust import fit_trust
    from adrcs.serve.trust_scoring import calibrate

    rng = np.random.default_rng(3)
    single = _image_trust("mahalanobis")
    raw = rng.dirichlet([0.5, 0.5], 500).astype(np.float32)
    assert np.abs(calibrate(single, raw) - single.calibrate(raw)).max() <= 1e-7
    y = (rng.random((300, 3)) < 0.3).astype(int)
    p = np.clip(y * 0.7 + rng.random((300, 3)) * 0.3, 0.01, 0.99)
    multi = fit_trust(p[:150], y[:150], p[150:], y[150:], None, None, None, multilabel=True, unknown_method=None)
    assert np.abs(calibrate(multi, p.astype(np.float32)) - multi.calibrate(p.astype(np.float32))).max() <= 1e-7
    assert calibrate(single, np.zeros((0, 2), np.float32)).shape == (0, 2)
