"""`adrcs serve`: open the store, refuse to start on a broken model or database, make the first admin
token (in a private file), tune the process for latency and run uvicorn (one process, or ``workers``
processes on a PostgreSQL store: `serve/replicas.py`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from adrcs.serve.app import ServiceConfig, create_app


def first_admin_token(store, admin_token_file: Path | None, say: Callable[[str], None]) -> None:
    """When the store has no tokens, create token 'admin' (role admin): written to `admin_token_file`
    (created 0600 atomically, never through a symlink or over a file) or printed. Another replica that
    made it a moment earlier wins: then nothing is created (and the empty file is removed)."""
    from adrcs.serve.private_files import new_secret_file

    if store.list_tokens():
        return
    try:
        if admin_token_file is not None:
            with new_secret_file(admin_token_file) as f:  # the file exists before the token does
                try:
                    f.write(store.create_token("admin", "admin") + "\n")
                except ValueError:
                    Path(admin_token_file).unlink(missing_ok=True)
                    raise
            say(f"no API tokens yet: created token 'admin' (role admin) in {admin_token_file}")
        else:
            say(f"no API tokens yet: created token 'admin' (role admin): {store.create_token('admin', 'admin')}")
    except ValueError:  # "already exists": another replica started at the same moment
        say("token 'admin' was created by another replica")


def launch(cfg: ServiceConfig, *, host: str, port: int, admin_token_file: Path | None, log_level: str,
           torch_threads: int, switch_interval_ms: float, say: Callable[[str], None], workers: int = 1) -> None:
    """Check, prepare and run the service until it is stopped. Raises InputError (one line, exit 2) when
    the database cannot be opened or written, a model cannot be loaded, or ``workers > 1`` on SQLite."""
    import uvicorn

    from adrcs.serve.replicas import ENV, check_workers, encode_config, tune_process
    from adrcs.serve.startup import check_startup
    from adrcs.serve.store import Store

    check_workers(workers, cfg.db)
    # latency under load: one intra-op thread (two spin against the event loop on small batches), and a
    # shorter GIL switch interval so the forward-pass and store threads get the GIL back quickly; set before
    # any model loads, so that ONNX Runtime sessions take the same count (`inference.onnx_runtime`)
    import torch

    torch.set_num_threads(max(1, torch_threads))  # the GIL interval is shortened once serving starts
    store = Store(cfg.db)          # one-line InputError for a database it cannot open or migrate
    check_startup(cfg, store)      # every --model and registered champion loads; the database takes a write
    first_admin_token(store, admin_token_file, say)
    # X-Forwarded-For: only from --trusted-proxy (the app's ProxyHeadersMiddleware), never uvicorn's default
    common = dict(host=host, port=port, log_level=log_level, proxy_headers=False)
    where = (f"ADRCS service on http://{host}:{port} (review page /, API docs /docs), store {store.safe_url}, "
             f"runtime {cfg.runtime}")
    if workers == 1:
        application = create_app(cfg, store=store)
        tune_process(torch_threads, switch_interval_ms)
        say(where)
        uvicorn.run(application, **common)
        return
    from adrcs.serve.model_host import ModelHost
    from adrcs.serve.model_store import ModelStore

    registrar = ModelHost(store, model_store=ModelStore(cfg.model_store))
    for m in cfg.models:  # once, here: the workers find them registered
        registrar.register(m)
    for part, m in cfg.product_models:
        registrar.register(m, part_type=part)
    store.close()
    os.environ[ENV] = encode_config(cfg, torch_threads=torch_threads, switch_interval_ms=switch_interval_ms)
    say(f"{where}, {workers} worker processes")
    uvicorn.run("adrcs.serve.replicas:worker_app", factory=True, workers=workers, **common)
