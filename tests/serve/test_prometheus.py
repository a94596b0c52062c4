"""ServiceMetrics: Prometheus text exposition, per-instance registries, model version switch."""
from __future__ import annotations


import prometheus_client  # noqa: F401  (a declared dependency: no skip)

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from adrcs.serve.prometheus import ServiceMetrics  # noqa: E402


def _samples(metrics: ServiceMetrics) -> dict[tuple[str, tuple], float]:
    body, _ = metrics.render()
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_render_contains_names_and_labels():
    m = ServiceMetrics()
    m.set_model("run-7", "wafer-cnn")
    m.observe_request("/predict", "post", 200, 0.012)
    m.observe_request("/predict", "POST", 200, 0.003)
    m.observe_request("/predict", "POST", 422, 0.001)
    m.count_predictions(["Center", "none", "none", "Scratch"])
    m.observe_batch(3, 0.02)
    body, content_type = m.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    for name in ("adrcs_requests_total", "adrcs_request_seconds_bucket", "adrcs_predictions_total",
                 "adrcs_model_info", "adrcs_batch_size_bucket", "adrcs_batch_seconds_count"):
        assert name in text
    s = _samples(m)
    assert s[("adrcs_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "200")))] == 2
    assert s[("adrcs_requests_total", (("method", "POST"), ("route", "/predict"), ("status", "422")))] == 1
    assert s[("adrcs_request_seconds_count", (("method", "POST"), ("route", "/predict")))] == 3
    assert s[("adrcs_request_seconds_bucket", (("le", "0.005"), ("method", "POST"), ("route", "/predict")))] == 2
    assert s[("adrcs_predictions_total", (("class", "none"),))] == 2
    assert s[("adrcs_predictions_total", (("class", "Scratch"),))] == 1
    assert s[("adrcs_model_info", (("kind", "wafer-cnn"), ("version", "run-7")))] == 1
    assert s[("adrcs_batch_size_sum", ())] == 3
    assert s[("adrcs_batch_seconds_count", ())] == 1


def test_instances_are_independent():
    a, b = ServiceMetrics(), ServiceMetrics()   # same metric names, no registry clash
    a.count_predictions(["Donut"])
    a.observe_request("/health", "GET", 200, 0.001)
    sa, sb = _samples(a), _samples(b)
    assert sa[("adrcs_predictions_total", (("class", "Donut"),))] == 1
    assert ("adrcs_predictions_total", (("class", "Donut"),)) not in sb
    assert not any(k[0] == "adrcs_requests_total" for k in sb)


def test_model_switch_keeps_only_new_version():
    m = ServiceMetrics()
    m.set_model("v1", "wafer-cnn")
    m.set_model("v2", "wafer-cnn")
    info = {k: v for k, v in _samples(m).items() if k[0] == "adrcs_model_info"}
    assert info == {("adrcs_model_info", (("kind", "wafer-cnn"), ("version", "v2"))): 1.0}
    assert m.model == ("v2", "wafer-cnn")


def test_observe_batch_without_seconds():
    m = ServiceMetrics()
    m.observe_batch(8)
    s = _samples(m)
    assert s[("adrcs_batch_size_count", ())] == 1
    assert s[("adrcs_batch_seconds_count", ())] == 0
