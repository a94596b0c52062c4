"""``adrcs serve --runtime onnx|onnx-int8``: wafer-map inspections answered by ONNX Runtime equal the frozen
TorchScript answers (probabilities within 1e-4, same class and decision), the runtime shows in ``/health`` and
``/v1/models``, and ``model.onnx`` is exported on the fly when the run folder has none."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.cli import run_cli
from helpers.runs import small_maps, train_wafer_run
from helpers.service import role_auth, wafer_service

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MAPS = small_maps(6, seed=4) + small_maps(2, side=31, seed=5)  # two sizes: both resized to the model's grid


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained run with a trust layer (45 validation maps): decisions and unknown scores are compared too."""
    return train_wafer_run(tmp_path_factory.mktemp("rt"), epochs=4, per_class=(4, 5))


def _answers(run: Path, db: Path, runtime: str) -> tuple[list[dict], dict, dict]:
    """(per-map results, /v1/models, /health) of a service on `run` with `runtime`."""
    with wafer_service(run, db, runtime=runtime) as (client, tokens, _):
        r = client.post("/v1/inspect/wafer-maps", json={"maps": MAPS, "lot": "L1"},
                        headers=role_auth(tokens, "inspector"))
        assert r.status_code == 200, r.text
        models = client.get("/v1/models", headers=role_auth(tokens, "inspector")).json()
        health = client.get("/health").json()
    return r.json()["results"], models, health


def _probs(results: list[dict]) -> np.ndarray:
    names = sorted(results[0]["probabilities"])
    return np.array([[r["probabilities"][n] for n in names] for r in results])


@pytest.mark.slow
def test_onnx_service_answers_like_torch(run: Path, tmp_path: Path) -> None:
    assert not (run / "model.onnx").exists()
    torch_res, torch_models, torch_health = _answers(run, tmp_path / "t.db", "torch")
    onnx_res, models, health = _answers(run, tmp_path / "o.db", "onnx")
    assert (run / "model.onnx").is_file()  # exported when the service loaded the champion
    np.testing.assert_allclose(_probs(onnx_res), _probs(torch_res), atol=1e-4)
    for a, b in zip(onnx_res, torch_res):
        assert a["class"] == b["class"] and a["decision"] == b["decision"]
        if a.get("unknown_score") is not None:
            assert a["unknown_score"] == pytest.approx(b["unknown_score"], abs=1e-3)
    assert torch_models["runtime"] == "torch" and torch_models["runtimes"] == {"wafer": "torch"}
    assert models["runtime"] == "onnx" and models["runtimes"] == {"wafer": "onnx"}
    assert torch_health["runtime"] == "torch" and health["runtime"] == "onnx" and health["status"] == "ok"


@pytest.mark.slow
def test_onnx_int8_service_answers(run: Path, tmp_path: Path) -> None:
    res, models, health = _answers(run, tmp_path / "q.db", "onnx-int8")
    assert (run / "model.int8.onnx").is_file()
    assert models["runtimes"] == {"wafer": "onnx-int8"} and health["runtime"] == "onnx-int8"
    p = _probs(res)
    assert p.shape == (len(MAPS), 9) and np.allclose(p.sum(axis=1), 1.0, atol=1e-3)


def test_serve_bad_runtime_is_one_line(capsys) -> None:
    code, _, err = run_cli(["serve", "--runtime", "tensorrt"], capsys)
    assert code == 2 and "--runtime must be torch, onnx or onnx-int8" in err and len(err.strip().splitlines()) == 1
