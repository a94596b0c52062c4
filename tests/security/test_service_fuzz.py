"""Property-based fuzzing (hypothesis): no body of ``POST /v1/inspect/wafer-maps`` and no query of
``/v1/inspections`` or ``/v1/stats`` gets a 5xx, on both paths of the hot route. Example counts are small
(a few seconds per test); raise ``ADRCS_FUZZ_EXAMPLES`` for a longer run."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.runs import small_maps

pytestmark = pytest.mark.slow  # hundreds of requests per test
EXAMPLES = int(os.environ.get("ADRCS_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TRIED: dict[str, int] = {}

ints = st.one_of(st.integers(-3, 300), st.integers(), st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**40]))
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=20))
json_values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=5),
                                                           st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                           max_leaves=40)
grids = st.lists(st.lists(st.one_of(st.integers(-2, 300), st.sampled_from([0, 1, 2, 128, 255]), scalars),
                          min_size=0, max_size=6), min_size=0, max_size=6)
bodies = st.one_of(
    st.fixed_dictionaries({"maps": st.one_of(st.lists(grids, max_size=4), json_values)},
                          optional={"lot": scalars, "wafer": st.one_of(scalars, st.lists(scalars, max_size=4)),
                                    "tool": scalars, "extra": json_values}),
    json_values,
)


def _no_5xx(r, what: str) -> None:
    assert r.status_code < 500, (what, r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert "Traceback" not in r.text and r.json().get("request_id")


@FUZZ
@given(body=bodies)
def test_fuzz_inspection_json_body(service, body):
    TRIED["json body"] = TRIED.get("json body", 0) + 1
    raw = json.dumps(body).encode()
    r = service.client.post("/v1/inspect/wafer-maps", content=raw,
                            headers={**service.h(), "Content-Type": "application/json"})
    _no_5xx(r, raw[:200])


@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_fuzz_inspection_raw_bytes(service, raw):
    TRIED["raw body"] = TRIED.get("raw body", 0) + 1
    r = service.client.post("/v1/inspect/wafer-maps", content=raw,
                            headers={**service.h(), "Content-Type": "application/json"})
    _no_5xx(r, raw[:200])


times = st.one_of(st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
                  st.datetimes().map(lambda t: t.isoformat()), st.text(max_size=30),
                  st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-11-28Z"]))
text_or_num = st.one_of(st.text(max_size=40), ints.map(str), st.floats().map(str))
list_params = st.fixed_dictionaries({}, optional={
    "lot": text_or_num, "cls": text_or_num, "since": times, "until": times, "reviewed": text_or_num,
    "low_confidence": text_or_num, "max_confidence": text_or_num, "kind": st.one_of(text_or_num, st.just("image")),
    "limit": text_or_num, "offset": text_or_num})
stats_params = st.fixed_dictionaries({}, optional={"by": st.one_of(text_or_num, st.sampled_from(["lot", "day"])),
                                                   "since": times})


@FUZZ
@given(params=list_params)
def test_fuzz_inspections_query(service, params):
    TRIED["inspections query"] = TRIED.get("inspections query", 0) + 1
    if not TRIED.get("seeded"):
        service.client.post("/v1/inspect/wafer-maps", json={"maps": small_maps(2), "lot": "L1"}, headers=service.h())
        TRIED["seeded"] = 1
    _no_5xx(service.client.get("/v1/inspections", params=params, headers=service.h()), params)


@FUZZ
@given(params=stats_params)
def test_fuzz_stats_query(service, params):
    TRIED["stats query"] = TRIED.get("stats query", 0) + 1
    _no_5xx(service.client.get("/v1/stats", params=params, headers=service.h()), params)


def test_fuzz_counts_reported():
    """Runs after the fuzz tests in file order: each fuzzed something on both paths."""
    for name in ("json body", "raw body", "inspections query", "stats query"):
        assert TRIED.get(name, 0) >= 2 * min(EXAMPLES, 10), TRIED
    print("\nfuzz examples tried:", {k: v for k, v in TRIED.items() if k != "seeded"})
