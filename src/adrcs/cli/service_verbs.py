"""`adrcs serve`, `adrcs token`, `adrcs adapt`: the inspection service and learning from its reviews."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from adrcs.cli.common import (reads_data, _extra_overrides, _say, app)
from adrcs.errors import InputError


@app.command()
def serve(
    model: List[Path] = typer.Option([], "--model", "-m", help="Run folder(s) to register and deploy (first of "
                                                              "each kind becomes champion)."),
    db: str = typer.Option("sqlite:///adrcs.db", "--db", help="Results store: sqlite:///FILE or postgresql://..."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    batch_wait_ms: float = typer.Option(0.0, "--batch-wait-ms", help="Micro-batching: longest wait for others "
                                        "to join an idle forward pass (requests arriving during a pass always "
                                        "share the next one)."),
    batch_max: int = typer.Option(1024, "--batch-max", help="Micro-batching: most maps per forward pass."),
    low_confidence: float = typer.Option(0.7, "--low-confidence", help="Review-queue threshold."),
    max_request_mb: float = typer.Option(64.0, "--max-request-mb", help="Larger requests get 413."),
    drift_window: int = typer.Option(500, "--drift-window", help="Recent predictions compared with the reference."),
    drift_method: str = typer.Option("psi", "--drift-method", help="psi | chi2"),
    admin_token_file: Optional[Path] = typer.Option(None, "--admin-token-file", help="When the store has no "
                                                    "tokens yet, write a new admin token here (else it is printed)."),
    log_level: str = typer.Option("warning", "--log-level"),
    torch_threads: int = typer.Option(1, "--torch-threads", help="Intra-op threads per forward pass (1 keeps "
                                      "single-map latency low; more helps large requests on an idle machine)."),
    switch_interval_ms: float = typer.Option(1.0, "--switch-interval-ms", help="Python GIL switch interval: how "
                                             "long the forward-pass and store threads may wait for the event loop "
                                             "to hand over the GIL."),
    fast_path: bool = typer.Option(True, "--fast-path/--no-fast-path", help="Answer JSON wafer-map inspections "
                                   "on plain ASGI, skipping the FastAPI layers (same responses)."),
    runtime: str = typer.Option("torch", "--runtime", help="Wafer-map models: torch (frozen TorchScript) | onnx | "
                                "onnx-int8 (ONNX Runtime on the run's checked model.onnx / model.int8.onnx, "
                                "exported first when missing); image classifiers likewise, detectors run "
                                "fp32 model.onnx under onnx and onnx-int8. Shown in /health and /v1/models."),
    workers: int = typer.Option(1, "--workers", help="Service processes on this host (uvicorn workers); more than "
                                "1 needs a PostgreSQL --db. Replicas on other hosts may share the same --db."),
    model_store: Optional[Path] = typer.Option(None, "--model-store", help="Folder shared by every replica "
                                               "(e.g. an NFS mount): registered run folders are copied here and "
                                               "the registry keeps paths relative to it; retraining writes here."),
    trusted_proxy: List[str] = typer.Option([], "--trusted-proxy", help="Address or network of a load balancer "
                                            "/ reverse proxy (repeatable, or comma-separated): only requests from "
                                            "these may give the client address in X-Forwarded-For."),
    rate_limit: int = typer.Option(0, "--rate-limit", help="Requests per minute per API token, counted across "
                                   "all replicas (0: no limit)."),
    product_model: List[str] = typer.Option([], "--product-model", help="PART=RUN (repeatable): register RUN for "
                                            "the product (part type) PART; the first one of a product becomes its "
                                            "own champion, with its own drift reference. Maps are routed by the "
                                            "part type in their file (or the request's part_type field); others "
                                            "go to the default champion (--model)."),
) -> None:
    """Run the inspection service (REST API under /v1, review page at /, docs at /docs)."""
    from adrcs.serve.app import ServiceConfig
    from adrcs.monitoring.drift import DriftConfig
    from adrcs.inference.onnx_runtime import check_runtime
    from adrcs.serve.launch import launch
    from adrcs.serve.products import product_models
    from adrcs.serve.replicas import check_proxies, check_workers

    for flag, value in (("--max-request-mb", max_request_mb), ("--batch-max", batch_max), ("--port", port)):
        if not value > 0:
            raise InputError(None, f"{flag} must be > 0 (got {value})")
    if rate_limit < 0:
        raise InputError(None, f"--rate-limit must be >= 0 (got {rate_limit})")
    check_workers(workers, db)  # --workers > 1 on SQLite: one line, exit 2
    cfg = ServiceConfig(db=db, models=[str(m) for m in model], batch_max=batch_max, batch_wait_ms=batch_wait_ms,
                        low_confidence=low_confidence, max_request_bytes=int(max_request_mb * 1024 * 1024),
                        drift=DriftConfig(window=drift_window, method=drift_method), fast_path=fast_path,
                        runtime=check_runtime(runtime), model_store=str(model_store) if model_store else None,
                        trusted_proxies=check_proxies(trusted_proxy), rate_limit=rate_limit,
                        product_models=product_models(product_model))
    launch(cfg, host=host, port=port, admin_token_file=admin_token_file, log_level=log_level,
           torch_threads=torch_threads, switch_interval_ms=switch_interval_ms, say=_say, workers=workers)


token_app = typer.Typer(add_completion=False, no_args_is_help=True, help="API tokens of the inspection service.")
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    name: str = typer.Option(..., "--name", help="Who holds it (shown as the reviewer)."),
    role: str = typer.Option(..., "--role", help="inspector | engineer | admin"),
    db: str = typer.Option("sqlite:///adrcs.db", "--db"),
) -> None:
    """Create a token and print it (only its hash is stored)."""
    from adrcs.serve.store import Store

    try:
        token = Store(db).create_token(name, role)
    except ValueError as e:
        raise InputError(None, str(e))
    print(token)


@token_app.command("revoke")
def token_revoke(name: str = typer.Option(..., "--name"), db: str = typer.Option("sqlite:///adrcs.db", "--db")) -> None:
    """Revoke a token by name."""
    from adrcs.serve.store import Store

    try:
        Store(db).revoke_token(name)
    except KeyError:
        raise InputError(None, f"no token named {name!r}")
    _say(f"revoked {name}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@reads_data
def adapt(
    ctx: typer.Context,
    db: str = typer.Option(..., "--db", help="The service's results store."),
    model: Path = typer.Option(..., "--model", "-m", help="Champion run folder to start from."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder for the challenger."),
    train: Optional[List[Path]] = typer.Option(None, "--train", help="Original training files (default: the "
                                                                     "champion's)."),
    val: Optional[List[Path]] = typer.Option(None, "--val", help="Validation files (default: the champion's)."),
    recall_margin: float = typer.Option(0.05, "--recall-margin", help="Largest allowed per-class recall drop."),
    audit_fraction: float = typer.Option(0.3, "--audit-fraction", help="Share of reviewed inspections kept for audit."),
    model_store: Optional[Path] = typer.Option(None, "--model-store", help="The service's shared model store: the "
                                               "challenger is registered there (as `adrcs serve --model-store`)."),
    reading: Optional[dict] = None,
) -> None:
    """Retrain on original + reviewed data; promote the challenger only if it is not worse on the audit set.
    Config overrides for the challenger as --key value (e.g. --epochs 10)."""
    from adrcs.adapt import adapt as api_adapt
    from adrcs.serve.model_store import ModelStore
    from adrcs.serve.store import Store

    overrides = _extra_overrides(list(ctx.args))  # strings: load_config parses them as YAML values
    paths = ModelStore(model_store)
    paths.check()
    report = api_adapt(Store(db), model, out, original=train or None, val=val or None, overrides=overrides,
                       recall_margin=recall_margin, audit_fraction=audit_fraction, say=_say,
                       model_store=paths, **reading)
    _say(json.dumps({k: report[k] for k in ("challenger", "champion", "promoted", "n_pool", "n_audit")}))


