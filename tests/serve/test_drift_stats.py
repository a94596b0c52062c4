"""``GET /v1/stats`` drift per model: the statistic and its threshold, what changed (class shares, reference vs
recent), the unknown rate and its alert; the monitor's keys kept."""
from __future__ import annotations

import json

import pytest
from helpers.service import role_auth

from adrcs.serve.store import NewInspection

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MONITOR_KEYS = {"status", "window", "method", "class_shift", "confidence_shift", "lot_method", "lots", "flagged_lots",
                "lot_status", "model_version"}


def _add(store, version: str, n: int, predicted: str, decision: str | None, lot: str = "D1") -> None:
    store.add_inspections([NewInspection(kind="wafer_map", model_version=version, predicted=predicted,
                                         probabilities={predicted: 0.9}, confidence=0.9, content=f"{lot}{i}".encode(),
                                         media_type="application/x-npy", lot=lot, decision=decision)
                           for i in range(n)])


def test_unknown_rate_alert_and_what_changed(make_wafer_service, trust_wafer_run, monkeypatch):
    client, tokens, store = make_wafer_service(run=trust_wafer_run)
    monkeypatch.setattr(client.app.state.config.drift, "min_window", 20)
    model = client.app.state.host.current("wafer")
    ref = json.loads((trust_wafer_run / "drift_reference.json").read_text())
    rare = min(ref["class_names"], key=lambda c: ref["class_probs"][c])
    _add(store, model.version, 40, rare, "unknown")
    s = client.get("/v1/stats", headers=role_auth(tokens, "inspector")).json()
    d = s["drift"]
    assert MONITOR_KEYS <= set(d) and d["kind"] == "wafer" and s["drift_models"]["wafer"] == d
    u = d["unknown_rate"]
    assert u["recent"] == 1.0 and u["reference"] == pytest.approx(ref["unknown_rate"]) and u["n"] == 40
    assert u["alert"] and u["status"] == "alert" and u["p_value"] < u["threshold"]
    assert d["status"] == "alert" and d["alert"] is True
    st = d["statistic"]
    assert st["name"] == "psi" and st["value"] == d["class_shift"]["statistic"] and st["threshold"] == 0.25
    assert st["threshold_on"] == "value" and st["alert"] == (d["class_shift"]["status"] == "alert")
    top = d["changes"][0]  # every recent map is the rarest class: its share moved most
    assert top["class"] == rare and top["recent"] == 1.0 and top["reference"] == pytest.approx(ref["class_probs"][rare])
    assert top["delta"] == pytest.approx(1.0 - ref["class_probs"][rare], abs=1e-5)
    assert len(d["changes"]) <= 3 and all(abs(c["delta"]) <= abs(top["delta"]) for c in d["changes"])


def test_as_expected_no_alert_and_chi2_threshold(make_wafer_service, trust_wafer_run, monkeypatch):
    client, tokens, store = make_wafer_service(run=trust_wafer_run)
    drift = client.app.state.config.drift
    monkeypatch.setattr(drift, "min_window", 20)
    monkeypatch.setattr(drift, "method", "chi2")
    model = client.app.state.host.current("wafer")
    _add(store, model.version, 40, model.reference.class_names[0], None)  # no decisions: no unknown check
    d = client.get("/v1/stats", headers=role_auth(tokens, "inspector")).json()["drift"]
    assert d["unknown_rate"]["status"] == "insufficient_data" and d["unknown_rate"]["alert"] is False
    st = d["statistic"]
    assert st["name"] == "chi2" and st["threshold_on"] == "p_value" and st["threshold"] == drift.p_value
    assert st["p_value"] == d["class_shift"]["p_value"]


def test_legacy_model_has_no_unknown_rate(make_wafer_service, monkeypatch):
    client, tokens, store = make_wafer_service()
    monkeypatch.setattr(client.app.state.config.drift, "min_window", 20)
    model = client.app.state.host.current("wafer")
    _add(store, model.version, 30, model.class_names[0], model.class_names[0])
    d = client.get("/v1/stats", headers=role_auth(tokens, "inspector")).json()["drift"]
    assert d["unknown_rate"]["status"] == "not_available" and d["unknown_rate"]["alert"] is False
    assert d["statistic"] is not None and isinstance(d["changes"], list)
