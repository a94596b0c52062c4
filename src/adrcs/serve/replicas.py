"""Replicas of the service: ``adrcs serve --workers N`` (N processes on one host) or several hosts, all on one
PostgreSQL store behind any load balancer.

What they share, and how:

- inspections, reviews, tokens: the database (ids from PostgreSQL sequences: no collisions between processes);
- the model registry and its champions: the database; promote / rollback on one replica is seen by the others
  within `ModelHost.refresh_s` (2 s), on their next request;
- the models themselves: ``--model-store DIR``, a folder every replica mounts (`serve.model_store`), registry paths
  relative to it; retraining writes its runs there too;
- retrain jobs (`Store.create_job`) and rate-limit counters (`serve.shared_limits`): the database.

``--workers N`` runs uvicorn's own process manager: the parent opens the store (migrations run once, under an
advisory lock), checks every model, makes the first admin token and registers ``--model`` folders; then each
worker builds the app from the same settings (`worker_app`, passed in an environment variable) and serves on the
shared socket. SQLite has one writer at a time per file, so ``--workers > 1`` needs PostgreSQL.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import sys
from typing import Any

from adrcs.errors import InputError

ENV = "ADRCS_SERVE_WORKER_CONFIG"  # the settings each worker process builds its app from


def check_workers(workers: int, db: str) -> None:
    """InputError (one line, exit 2) for a worker count below 1, or above 1 on a SQLite store."""
    from adrcs.serve.store import normalize_url

    if workers < 1:
        raise InputError(None, f"--workers must be >= 1 (got {workers})")
    if workers > 1 and normalize_url(db).get_backend_name() == "sqlite":
        raise InputError(None, f"--workers {workers} needs a PostgreSQL --db (postgresql://...): a SQLite file "
                               "takes one writer at a time")


def check_proxies(values: list[str]) -> list[str]:
    """The ``--trusted-proxy`` addresses / networks (comma-separated values allowed), checked: InputError naming
    the first one that is not an IP address or network (uvicorn would silently take it as a literal name)."""
    out = []
    for value in values:
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            try:
                out.append(str(ipaddress.ip_network(item, strict=False)) if "/" in item else
                           str(ipaddress.ip_address(item)))
            except ValueError:
                raise InputError(None, f"--trusted-proxy {item!r} is not an IP address or network "
                                       "(e.g. 10.0.0.5 or 10.0.0.0/24)") from None
    return out


def encode_config(cfg: Any, **process: Any) -> str:
    """A `ServiceConfig` and the per-process settings (torch_threads, switch_interval_ms) as JSON."""
    return json.dumps({"config": dataclasses.asdict(cfg), "process": process}, default=str)


def decode_config(text: str) -> tuple[Any, dict[str, Any]]:
    """(ServiceConfig, per-process settings) from `encode_config`'s JSON."""
    from adrcs.monitoring.drift import DriftConfig
    from adrcs.serve.app import ServiceConfig

    raw = json.loads(text)
    cfg = dict(raw["config"])
    cfg["drift"] = DriftConfig(**cfg["drift"])
    cfg["product_models"] = [tuple(p) for p in cfg.get("product_models", [])]
    return ServiceConfig(**cfg), dict(raw["process"])


def tune_process(torch_threads: int, switch_interval_ms: float) -> None:
    """Latency settings of a serving process (see `launch`): torch threads and the GIL switch interval."""
    import torch

    torch.set_num_threads(max(1, int(torch_threads)))
    sys.setswitchinterval(max(float(switch_interval_ms), 0.01) / 1000.0)


def worker_app() -> Any:
    """The app of one ``--workers`` process (uvicorn calls this factory in each worker)."""
    from adrcs.serve.app import create_app
    from adrcs.serve.store import Store

    cfg, process = decode_config(os.environ[ENV])
    tune_process(**process)
    # the models were registered by the parent
    return create_app(dataclasses.replace(cfg, models=[], product_models=[]), store=Store(cfg.db))
