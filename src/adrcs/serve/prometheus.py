"""Prometheus metrics of the inspection service, served as text by ``GET /metrics``.

Each :class:`ServiceMetrics` owns its own ``CollectorRegistry`` (not the process-global one), so
several apps (tests, one service per model) can live in one process without name clashes.

Metrics (all prefixed ``adrcs_``):

* ``adrcs_requests_total{route,method,status}``    counter of HTTP requests
* ``adrcs_request_seconds{route,method}``          histogram of request latency (1 ms .. 5 s buckets)
* ``adrcs_predictions_total{class}``               counter of predicted classes
* ``adrcs_model_info{version,kind}``               gauge, 1 for the model being served (only one series)
* ``adrcs_batch_size``                             histogram of micro-batch sizes (items per forward pass)
* ``adrcs_batch_seconds``                          histogram of forward-pass time per micro-batch

Pass the route *template* (``"/predict"``, not ``"/lots/L123"``) as ``route`` to keep label
cardinality bounded.
"""
from __future__ import annotations

from collections import Counter as _Tally
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.0,
                   5.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServiceMetrics:
    """Request, prediction, model and batch metrics in a dedicated registry."""

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = "adrcs",
                 latency_buckets: Iterable[float] = LATENCY_BUCKETS,
                 batch_buckets: Iterable[float] = BATCH_SIZE_BUCKETS) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        ns, reg = namespace, self.registry
        self.requests = Counter("requests", "HTTP requests handled", ["route", "method", "status"],
                                namespace=ns, registry=reg)
        self.request_seconds = Histogram("request_seconds", "HTTP request latency in seconds", ["route", "method"],
                                         namespace=ns, registry=reg, buckets=tuple(latency_buckets))
        self.predictions = Counter("predictions", "Predictions per predicted class", ["class"],
                                   namespace=ns, registry=reg)
        self.model_info = Gauge("model_info", "Model being served (1 for the current version)", ["version", "kind"],
                                namespace=ns, registry=reg)
        self.batch_size = Histogram("batch_size", "Items per micro-batched forward pass",
                                    namespace=ns, registry=reg, buckets=tuple(batch_buckets))
        self.batch_seconds = Histogram("batch_seconds", "Forward-pass time per micro-batch in seconds",
                                       namespace=ns, registry=reg, buckets=tuple(latency_buckets))
        self.model: tuple[str, str] | None = None

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request and record its latency."""
        self.requests.labels(route, method.upper(), str(int(status))).inc()
        self.request_seconds.labels(route, method.upper()).observe(max(0.0, float(seconds)))

    def count_predictions(self, class_names: Iterable[str]) -> None:
        """Count predicted classes (one name per prediction)."""
        for name, k in _Tally(str(c) for c in class_names).items():
            self.predictions.labels(name).inc(k)

    def set_model(self, version: str, kind: str) -> None:
        """Mark ``version`` / ``kind`` as the model being served; earlier versions are removed."""
        self.model_info.clear()
        self.model_info.labels(str(version), str(kind)).set(1)
        self.model = (str(version), str(kind))

    def observe_batch(self, size: int, seconds: float | None = None) -> None:
        """Record one micro-batch: its size and, if given, its forward-pass time
        (fits ``MicroBatcher(on_batch=metrics.observe_batch)``)."""
        self.batch_size.observe(int(size))
        if seconds is not None:
            self.batch_seconds.observe(max(0.0, float(seconds)))

    def render(self) -> tuple[bytes, str]:
        """Prometheus text exposition of this registry and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
