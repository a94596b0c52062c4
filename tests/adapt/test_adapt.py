"""Adaptive retraining: the champion/challenger rule, the fixed audit split, and adapt rounds on reviews from a
running service (a challenger trained, registered, rejected or promoted; a class an admin registered learned)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.runs import train_wafer_run
from helpers.service import inspect_maps, role_auth, wafer_service

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def champion_run(tmp_path_factory) -> Path:
    """A tiny wafer run: the champion the service starts with."""
    return train_wafer_run(tmp_path_factory.mktemp("adapt"), 0)


@pytest.fixture
def service(champion_run: Path, tmp_path: Path):
    """(client, tokens, store) of a service on the champion."""
    with wafer_service(champion_run, tmp_path / "adrcs.db") as svc:
        yield svc


def test_champion_challenger_refuses_a_worse_model():
    from adrcs.adapt import compare

    names = ["a", "b", "c"]
    y = np.array([0] * 10 + [1] * 10 + [2] * 10)
    good = y.copy()
    worse = y.copy()
    worse[10:16] = 0  # class b recall 1.0 -> 0.4
    d = compare(y, good, worse, names)
    assert not d.promote and any("recall of b" in r for r in d.reasons) and any("macro-F1" in r for r in d.reasons)
    better = compare(y, worse, good, names)
    assert better.promote and better.challenger["macro_f1"] > better.champion["macro_f1"]
    slight = y.copy()
    slight[20] = 1  # c recall 1.0 -> 0.9: over the 0.05 margin
    assert not compare(y, good, slight, names).promote
    assert compare(y, good, slight, names, recall_margin=0.15, f1_tolerance=0.05).promote
    assert not compare(np.zeros(0), np.zeros(0), np.zeros(0), names).promote  # no audit data


def test_audit_split_is_fixed_by_id():
    from adrcs.adapt import is_audit

    picks = [is_audit(i) for i in range(2000)]
    assert picks == [is_audit(i) for i in range(2000)]
    assert 0.25 < np.mean(picks) < 0.35


@pytest.mark.slow
def test_adapt_round_trains_challenger_and_decides(service, champion_run, tmp_path):
    client, tokens, store = service
    from adrcs.adapt import adapt

    for lot in ("R1", "R2", "R3"):
        for res in inspect_maps(client, tokens, n=8, lot=lot)["results"]:
            client.post(f"/v1/inspections/{res['id']}/review", json={"action": "confirm"},
                        headers=role_auth(tokens, "engineer"))
    champion = store.champion("wafer").version
    lines: list[str] = []
    # a rule no challenger can meet (macro-F1 must rise by 2): registered, rejected, champion kept
    report = adapt(store, champion_run, tmp_path / "rejected", overrides={"epochs": 1, "progress": False},
                   f1_tolerance=-2.0, say=lines.append)
    assert report["n_pool"] + report["n_audit"] == 24 and report["n_audit"] > 0
    assert report["promoted"] is False and store.champion("wafer").version == champion
    assert report["challenger"] in {m.version for m in store.list_models()}
    assert any(e["action"] == "reject" and e["version"] == report["challenger"] for e in store.model_events())
    assert json.loads((tmp_path / "rejected" / "adapt_report.json").read_text())["promoted"] is False
    # a rule every challenger meets: promoted and served
    report = adapt(store, champion_run, tmp_path / "promoted", overrides={"epochs": 1, "progress": False},
                   f1_tolerance=2.0, recall_margin=2.0, say=lines.append)
    assert report["promoted"] is True and store.champion("wafer").version == report["challenger"] != champion
    assert json.loads((tmp_path / "promoted" / "adapt_report.json").read_text())["promoted"] is True


@pytest.mark.slow
def test_adapt_learns_a_class_an_admin_registered(service, champion_run, tmp_path):
    """A new pattern recorded in reviews (a registered class) becomes a class of the challenger."""
    client, tokens, store = service
    from adrcs.adapt import adapt
    from adrcs.pipeline import Pipeline

    r = client.post("/v1/classes", json={"name": "Spiral", "kind": "wafer"}, headers=role_auth(tokens, "admin"))
    assert r.status_code in (200, 201), r.text
    for i, res in enumerate(inspect_maps(client, tokens, n=12, lot="N1")["results"]):
        body = {"action": "correct", "label": "Spiral"} if i % 2 else {"action": "confirm"}
        assert client.post(f"/v1/inspections/{res['id']}/review", json=body,
                           headers=role_auth(tokens, "engineer")).status_code == 200
    bogus = client.post(f"/v1/inspections/{res['id']}/review", json={"action": "correct", "label": "Nope"},
                        headers=role_auth(tokens, "engineer"))
    assert bogus.status_code == 422
    report = adapt(store, champion_run, tmp_path / "challenger", overrides={"epochs": 1, "progress": False},
                   say=lambda s: None)
    assert report["new_classes"] == ["Spiral"]
    champion = Pipeline.load(champion_run)
    challenger = Pipeline.load(tmp_path / "challenger")
    assert challenger.class_names == champion.class_names + ["Spiral"]
    assert report["n_pool"] + report["n_audit"] == 12
