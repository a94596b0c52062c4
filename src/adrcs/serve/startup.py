"""Honest failures: refuse to start on a broken model or an unwritable database; say "degraded" when one breaks later.

The CLI's ``serve`` command calls :func:`check_startup` after opening the store and before building
the app: every ``--model`` folder and every registered champion must load, and the database must take
a write. A problem stops the server with one line (`InputError`, exit 2) naming the folder or the
database URL (password hidden). After start-up, :func:`health_report` is what ``GET /health`` answers:
``"status": "ok"`` or ``"degraded"`` with the reasons, and the wafer-map runtime (``"runtime"``); the database
is probed with a real write that is rolled back, so a read-only file or a lock held elsewhere shows up, not only
an unreachable server.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from adrcs.errors import InputError
from adrcs.serve.model_host import KINDS, checkpoint_kind, load_pipeline
from adrcs.serve.store.store import unavailable_reason


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "problem", None) or e).strip().splitlines()
    return (text[0] if text else "unreadable")[:200]


def _try_load(kind: str, path: str | Path, device: str, what: str, runtime: str = "torch") -> None:
    try:
        load_pipeline(kind, path, device, runtime)
    except Exception as e:  # noqa: BLE001 - any failure stops the start with one line
        raise InputError(path, f"{what} cannot be loaded ({_first_line(e)})") from None


def check_startup(config: Any, store: Any) -> None:
    """Raise InputError (one line, naming the model folder or the database URL) when the service could not
    serve: the database cannot be written, a ``config.models`` folder or a registered champion cannot be
    loaded. Returns None when all is well."""
    reason = store.check_writable(timeout_s=2.0)
    if reason is not None:
        raise InputError(store.safe_url, f"{reason}: the service needs a database it can write")
    given = set()
    for m in list(config.models) + [run for _, run in getattr(config, "product_models", [])]:
        kind = checkpoint_kind(m)  # InputError naming the folder when it is not a run folder
        _try_load(kind, m, config.device, f"the {kind} model", config.runtime)
        given.add(str(Path(m).resolve()))
    from adrcs.serve.model_store import ModelStore

    model_store = ModelStore(getattr(config, "model_store", None))
    model_store.check()  # InputError naming --model-store when it cannot be made or written
    champions = [store.champion(kind) for kind in KINDS]
    champions += [store.get_model(v) for kind in KINDS for v in store.champion_parts(kind).values()]
    for champ in champions:
        if champ is None:
            continue
        kind = champ.kind
        what = f"the registered {kind} champion {champ.version}"
        try:
            path = model_store.resolve(champ.path)
        except LookupError as e:
            raise InputError(None, f"{what} cannot be loaded: {e}") from None
        if str(path.resolve()) not in given:
            _try_load(kind, path, config.device, what, config.runtime)


def health_report(store: Any, host: Any, timeout_s: float = 1.0) -> tuple[dict[str, Any], int]:
    """``(body, status)`` of ``GET /health``: 200 and ``"ok"``, or 503 and ``"degraded"`` with ``problems``
    (short reasons, no server paths)."""
    problems: list[str] = []
    db_reason = store.check_writable(timeout_s=timeout_s)
    if db_reason is not None:
        problems.append(db_reason)
    models: dict[str, str | None] = {}
    try:
        for kind in KINDS:
            champ = store.champion(kind)
            models[kind] = champ.version if champ else None
        problems += list(host.problems().values())
    except Exception as e:  # noqa: BLE001 - a health probe reports, never raises
        reason = unavailable_reason(e) or "database is unavailable"
        if reason not in problems:
            problems.append(reason)
    body = {"status": "degraded" if problems else "ok", "db": db_reason is None, "models": models,
            "runtime": getattr(host, "runtime", "torch"), "problems": problems}
    return body, 503 if problems else 200
