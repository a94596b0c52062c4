"""One decision rule: label and confidence are the same in the predictions CSV and in the service."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adrcs.inference.decisions import confidence, decide
from helpers.frames import make_mixed_frame

REPO = Path(__file__).resolve().parents[2]


def test_single_label_confidence_is_the_top_probability():
    p = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    assert decide(p, False).tolist() == [1, 0]
    np.testing.assert_allclose(confidence(p, False), [0.7, 0.5])


def test_multilabel_confidence_is_the_weakest_label_decision():
    p = np.array([[0.9, 0.6, 0.05], [0.2, 0.1, 0.45]])
    assert decide(p, True).tolist() == [[1, 1, 0], [0, 0, 0]]
    np.testing.assert_allclose(confidence(p, True), [0.6, 0.55])  # min(0.9, 0.6, 0.95); min(0.8, 0.9, 0.55)
    assert confidence(np.zeros((0, 3)), True).shape == (0,)


@pytest.mark.slow
def test_multilabel_map_gets_one_confidence_in_csv_and_service(tmp_path):
    from fastapi.testclient import TestClient

    from adrcs.api import predict, train
    from adrcs.config import load_config
    from adrcs.serve.app import ServiceConfig, create_app
    from adrcs.serve.store import Store

    data = tmp_path / "mixed.pkl.xz"
    make_mixed_frame(np.random.default_rng(0), n=16).to_pickle(data)
    cfg = load_config(REPO / "configs" / "mixedwm38_ffn.yaml",
                      {"epochs": 1, "input_size": 16, "device": "cpu", "batch_size": 8, "progress": False,
                       "val_fraction": 0.3})
    run = tmp_path / "run"
    train(cfg, [data], None, run, say=lambda s: None)
    predict(run, [data], tmp_path / "p.csv", say=lambda s: None)
    csv = pd.read_csv(tmp_path / "p.csv")

    from adrcs.data import load

    maps = [m.tolist() for m in load(data).maps[:4]]
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    token = store.create_token("i", "inspector")
    app = create_app(ServiceConfig(models=[str(run)], token_cache_s=0), store=store)
    with TestClient(app) as client:
        r = client.post("/v1/inspect/wafer-maps", json={"maps": maps}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    served = [res["confidence"] for res in r.json()["results"]]
    np.testing.assert_allclose(served, csv["confidence"].to_numpy()[:4], atol=1e-5)


def test_every_saved_model_is_a_predictor_with_one_save_load(tmp_path):
    from adrcs.inference.predictor import Predictor, Predictions
    from adrcs.models import create_model
    from adrcs.pipeline import Pipeline

    names = ["Center", "Donut", "none"]
    pipe = Pipeline(net=create_model("cnn", num_classes=3, multilabel=False).eval(), model_name="cnn",
                    model_args={}, class_names=names, multilabel=False, input_size=16)
    assert isinstance(pipe, Predictor)
    pipe.save(tmp_path / "run", best_epoch=3)
    back = Pipeline.load(tmp_path / "run")
    assert back.extra == {"best_epoch": 3} and back.class_names == names
    maps = [np.random.default_rng(0).integers(0, 3, (20, 18)).astype(np.uint8) for _ in range(4)]
    out = back.predict(maps)
    assert isinstance(out, Predictions) and out.probabilities.shape == (4, 3)
    np.testing.assert_array_equal(out.labels, out.probabilities.argmax(1))
    np.testing.assert_allclose(out.confidence, out.probabilities.max(1))
    assert all(n in names for n in out.names())
