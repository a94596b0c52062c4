"""`adrcs serve`: open the store, refuse to start on a broken model or database, make the first admin
token (in a private file), tune the process for latency and run uvicorn."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from adrcs.serve.app import ServiceConfig, create_app


def first_admin_token(store, admin_token_file: Path | None, say: Callable[[str], None]) -> None:
    """When the store has no tokens, create token 'admin' (role admin): written to `admin_token_file`
    (created 0600 atomically, never through a symlink or over a file) or printed."""
    from adrcs.serve.private_files import new_secret_file

    if store.list_tokens():
        return
    if admin_token_file is not None:
        with new_secret_file(admin_token_file) as f:  # the file exists before the token does
            f.write(store.create_token("admin", "admin") + "\n")
        say(f"no API tokens yet: created token 'admin' (role admin) in {admin_token_file}")
    else:
        say(f"no API tokens yet: created token 'admin' (role admin): {store.create_token('admin', 'admin')}")


def launch(cfg: ServiceConfig, *, host: str, port: int, admin_token_file: Path | None, log_level: str,
           torch_threads: int, switch_interval_ms: float, say: Callable[[str], None]) -> None:
    """Check, prepare and run the service until it is stopped. Raises InputError (one line, exit 2) when
    the database cannot be opened or written, or a model cannot be loaded."""
    import torch
    import uvicorn

    from adrcs.serve.startup import check_startup
    from adrcs.serve.store import Store

    # latency under load: one intra-op thread (two spin against the event loop on small batches), and a
    # shorter GIL switch interval so the forward-pass and store threads get the GIL back quickly; set before
    # any model loads, so that ONNX Runtime sessions take the same count (`inference.onnx_runtime`)
    torch.set_num_threads(max(1, torch_threads))
    store = Store(cfg.db)          # one-line InputError for a database it cannot open or migrate
    check_startup(cfg, store)      # every --model and registered champion loads; the database takes a write
    first_admin_token(store, admin_token_file, say)
    application = create_app(cfg, store=store)
    sys.setswitchinterval(max(switch_interval_ms, 0.01) / 1000.0)
    say(f"ADRCS service on http://{host}:{port} (review page /, API docs /docs), store {cfg.db}, runtime "
        f"{cfg.runtime}")
    uvicorn.run(application, host=host, port=port, log_level=log_level)
