"""Drift monitor: PSI / chi-square, window status, confidence shift, lot flags, reference storage."""
from __future__ import annotations

import json

import numpy as np
import pytest

from adrcs.serve.drift import DriftConfig, DriftMonitor, Reference, chi_square, psi

REF_PROBS = {"none": 0.55, "Edge-Ring": 0.12, "Center": 0.08, "Loc": 0.07, "Edge-Loc": 0.07,
             "Scratch": 0.02, "Random": 0.03, "Donut": 0.03, "Near-full": 0.03}
NAMES = list(REF_PROBS)
P = np.array(list(REF_PROBS.values()))


def _conf(rng: np.random.Generator, n: int, low: bool = False) -> np.ndarray:
    # reference confidences are high (Beta(8, 1.2)); "low" draws a degraded model's (Beta(3, 2))
    return rng.beta(3, 2, n) if low else rng.beta(8, 1.2, n)


@pytest.fixture(scope="module")
def reference() -> Reference:
    rng = np.random.default_rng(0)
    return Reference.from_predictions(rng.choice(NAMES, 20000, p=P), _conf(rng, 20000), class_names=NAMES)


def _window(seed: int, n: int = 500, probs: np.ndarray = P, low_conf: bool = False, lot_size: int = 25) -> list:
    rng = np.random.default_rng(seed)
    preds = rng.choice(NAMES, n, p=probs)
    return [(str(c), float(x), f"L{i // lot_size:03d}") for i, (c, x) in enumerate(zip(preds, _conf(rng, n, low_conf)))]


def test_psi_zero_for_identical_and_grows_with_shift():
    assert psi(P, P) == pytest.approx(0.0, abs=1e-12)
    assert psi([10, 20, 70], [1, 2, 7]) == pytest.approx(0.0, abs=1e-12)   # counts are normalised
    values = []
    for w in (0.0, 0.1, 0.3, 0.6):
        q = (1 - w) * P + w * np.eye(len(P))[NAMES.index("Scratch")]
        values.append(psi(P, q))
    assert values[0] == pytest.approx(0.0, abs=1e-12)
    assert all(a < b for a, b in zip(values, values[1:]))
    assert np.isfinite(psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]))   # empty bins are smoothed


def test_chi_square_p_value():
    n = 1000
    stat, p = chi_square(P, np.round(P * n))
    assert p > 0.5 and stat >= 0
    shifted = np.round(P * n)
    shifted[NAMES.index("Scratch")] += 100
    shifted[NAMES.index("none")] -= 100
    stat2, p2 = chi_square(P, shifted)
    assert p2 < 1e-6 and stat2 > stat
    assert chi_square(P, np.zeros(len(P))) == (0.0, 1.0)
    # a class with zero expected probability is smoothed, not a division by zero
    s3, p3 = chi_square([0.5, 0.5, 0.0], [50, 45, 5])
    assert np.isfinite(s3) and p3 < 1e-3


@pytest.mark.parametrize("method", ["psi", "chi2"])
def test_window_from_reference_is_ok(reference, method):
    report = DriftMonitor(reference, DriftConfig(method=method)).status(_window(1))
    assert report["status"] == "ok"
    assert report["window"] == 500 and report["method"] == method
    assert report["class_shift"]["status"] == "ok"
    assert report["confidence_shift"]["status"] == "ok"
    assert set(report["class_shift"]["expected"]) == set(NAMES)
    assert ("p_value" in report["class_shift"]) == (method == "chi2")
    assert report["flagged_lots"] == [] and report["lot_status"] == "ok"
    json.dumps(report)   # JSON-ready


@pytest.mark.parametrize("method", ["psi", "chi2"])
def test_shifted_class_mix_alerts(reference, method):
    q = P * 0.5
    q[NAMES.index("Scratch")] += 0.5   # ~51 % Scratch where the reference has 2 %
    report = DriftMonitor(reference, DriftConfig(method=method)).status(_window(2, probs=q))
    assert report["status"] == "alert"
    assert report["class_shift"]["status"] == "alert"
    assert report["class_shift"]["observed"]["Scratch"] > 0.4
    assert report["class_shift"]["expected"]["Scratch"] == pytest.approx(0.02, abs=0.005)


def test_confidence_drop_flagged(reference):
    report = DriftMonitor(reference).status(_window(3, low_conf=True))
    conf = report["confidence_shift"]
    assert conf["status"] == "alert" and report["status"] == "alert"
    assert report["class_shift"]["status"] == "ok"   # class mix unchanged
    assert conf["direction"] == "lower" and conf["mean"] < conf["reference_mean"]
    assert len(conf["expected"]) == len(conf["observed"]) == len(conf["edges"]) - 1 == 10


def test_only_most_recent_window_is_used(reference):
    q = P * 0.5
    q[NAMES.index("Scratch")] += 0.5
    old_shifted = _window(4, probs=q)
    recent = _window(5)
    report = DriftMonitor(reference, DriftConfig(window=500)).status(old_shifted + recent)
    assert report["window"] == 500 and report["status"] == "ok"


def test_unusual_lot_flagged_normal_lots_not(reference):
    records = _window(6, n=500)   # 20 normal lots of 25
    rng = np.random.default_rng(7)
    odd = ["Scratch"] * 9 + list(rng.choice(NAMES, 16, p=P))
    records = records[:250] + [(str(c), 0.9, "ODD") for c in odd] + records[250:475]
    report = DriftMonitor(reference).status(records)
    assert report["status"] == "ok"                     # lot flags do not change the overall status
    assert report["flagged_lots"] == ["ODD"]
    lot = report["lots"][0]
    assert lot["status"] == "alert" and report["lot_status"] == "alert" and lot["n"] == 25
    assert lot["top_classes"][0]["class"] in ("Scratch", "none")
    assert any(t["class"] == "Scratch" and t["fraction"] == pytest.approx(0.36, abs=0.05)
               for t in lot["top_classes"])


def test_small_lots_are_not_checked(reference):
    records = [("Scratch", 0.9, "TINY")] * 10 + [(r[0], r[1], None) for r in _window(8, n=200)]
    report = DriftMonitor(reference, DriftConfig(lot_min_size=20)).status(records)
    assert report["lots"] == []


def test_lots_sorted_by_severity(reference):
    records = [(r[0], r[1], None) for r in _window(9, n=300)]
    records += [("Scratch", 0.9, "A")] * 25                                   # very unusual
    records += [("Donut", 0.9, "B")] * 4 + [("none", 0.9, "B")] * 21          # unusual
    report = DriftMonitor(reference).status(records)
    assert report["flagged_lots"][0] == "A" and "B" in report["flagged_lots"]


def test_insufficient_data(reference):
    report = DriftMonitor(reference, DriftConfig(min_window=50)).status(_window(10, n=49))
    assert report["status"] == "insufficient_data" and report["window"] == 49
    assert report["class_shift"] is None and report["confidence_shift"] is None
    assert DriftMonitor(reference).status([])["status"] == "insufficient_data"


def test_reference_round_trip(reference):
    d = json.loads(json.dumps(reference.to_dict()))
    back = Reference.from_dict(d)
    assert back.class_names == reference.class_names
    assert np.allclose(back.class_probs, reference.class_probs)
    assert np.allclose(back.confidence_hist, reference.confidence_hist)
    assert back.confidence_edges == pytest.approx(reference.confidence_edges)
    assert back.confidence_mean == pytest.approx(reference.confidence_mean)
    records = _window(11)
    assert DriftMonitor(back).status(records) == DriftMonitor(reference).status(records)


def test_reference_from_counts_without_confidences_skips_confidence_check():
    ref = Reference.from_counts({k: int(v * 1000) for k, v in REF_PROBS.items()})
    assert ref.confidence_hist is None and ref.class_probs == pytest.approx(list(P))
    report = DriftMonitor(ref).status(_window(12))
    assert report["confidence_shift"] is None and report["status"] == "ok"
    # list form of class_probs is accepted too
    assert Reference.from_dict({"class_names": ["a", "b"], "class_probs": [1, 3]}).class_probs == [0.25, 0.75]


def test_unknown_class_goes_to_other(reference):
    records = _window(13)
    records[:5] = [("Brand-New", 0.8, None)] * 5
    for method in ("psi", "chi2"):
        report = DriftMonitor(reference, DriftConfig(method=method)).status(records)
        shift = report["class_shift"]
        assert shift["observed"]["other"] == pytest.approx(0.01)
        assert shift["expected"]["other"] == 0.0
        json.dumps(report)


def test_records_without_lot_or_confidence(reference):
    records = [(c, None) for c, _, _ in _window(14)]
    report = DriftMonitor(reference).status(records)
    assert report["status"] == "ok" and report["confidence_shift"] is None and report["lots"] == []


def test_bad_config():
    with pytest.raises(ValueError):
        DriftConfig(method="ks")
    with pytest.raises(ValueError):
        DriftConfig(psi_warn=0.3, psi_alert=0.2)


def _decided(records: list, unknown: int) -> list:
    """`records` with the trust layer's decision: the first `unknown` are "unknown", the rest their class."""
    return [(c, x, lot, "unknown" if i < unknown else c) for i, (c, x, lot) in enumerate(records)]


def test_unknown_rate_alerts_when_many_unknowns_arrive(reference):
    ref = Reference.from_dict({**reference.to_dict(), "unknown_rate": 0.05})
    as_expected = DriftMonitor(ref).status(_decided(_window(20), 25))  # 5 % of 500: as on validation
    u = as_expected["unknown_rate"]
    assert u["status"] == "ok" and not u["alert"] and u["n"] == 500 and u["unknown"] == 25
    assert u["recent"] == pytest.approx(0.05) and u["reference"] == 0.05 and u["reference_source"] == "reference"
    assert u["p_value"] > 0.05 and as_expected["status"] == "ok"
    many = DriftMonitor(ref).status(_decided(_window(20), 60))  # 12 %
    u = many["unknown_rate"]
    assert u["status"] == "alert" and u["alert"] and u["p_value"] < 0.01 and u["threshold"] == 0.01
    assert many["status"] == "alert" and many["class_shift"]["status"] == "ok"  # the class mix alone is fine
    json.dumps(many)


def test_unknown_rate_without_reference_rate_uses_the_false_alarm(reference):
    assert reference.unknown_rate is None
    u = DriftMonitor(reference, DriftConfig(unknown_false_alarm=0.1)).status(_decided(_window(21), 50))["unknown_rate"]
    assert u["reference"] == 0.1 and u["reference_source"] == "false_alarm" and u["status"] == "ok"
    # a reference rate of 0 counts as 1 / (n + 1): a few unknowns are unusual, not impossible
    zero = Reference.from_dict({**reference.to_dict(), "unknown_rate": 0.0})
    u = DriftMonitor(zero).status(_decided(_window(22), 1))["unknown_rate"]
    assert u["reference"] == 0.0 and 0.01 < u["p_value"] < 0.05 and u["status"] == "warning"


def test_unknown_rate_needs_decisions_and_a_full_window(reference):
    records = _window(23)
    assert DriftMonitor(reference).status(records)["unknown_rate"] is None  # no decisions: no check
    some = records[:-10] + _decided(records[-10:], 10)  # only 10 records carry a decision
    report = DriftMonitor(reference).status(some)
    assert report["unknown_rate"]["status"] == "insufficient_data" and report["unknown_rate"]["n"] == 10
    assert report["status"] == "ok"  # too few to judge: the overall status is the shifts'
    back = Reference.from_dict(json.loads(json.dumps({**reference.to_dict(), "unknown_rate": 0.07})))
    assert back.unknown_rate == 0.07 and back.to_dict()["unknown_rate"] == 0.07
    with pytest.raises(ValueError):
        DriftMonitor(reference).status([("Center", 0.9, None, "unknown", "extra")])
