"""Parsing request bodies without stalling the service: JSON wafer maps, small ones inline, large ones elsewhere.

``orjson.loads`` and ``np.asarray`` on a 50 MB body each hold the GIL for about a second (measured:
0.8 s + 1.1 s on one core): in a thread, that stops the event loop and every other request. So:

* bodies under `SMALL_BODY` are parsed on the event loop (a thread hop costs more than the parse);
* bodies up to `HEAVY_BODY` in a worker thread (short GIL holds);
* larger bodies in a worker *process* (`HeavyParser`, spawned on first use), one at a time: the
  event loop only waits on a pipe, and the parse's memory (about 14x the body) is the child's;
  uploaded files (npz, fab files, compressed: `serve/uploads.py`) take the same one-at-a-time slot, big or
  compressed ones in the same worker process, so at most one large input is expanded at once.

`parse_json_maps` is importable without torch or pandas (it runs in the child).
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

import numpy as np
import orjson
from fastapi import HTTPException

from adrcs.errors import InputError

log = logging.getLogger("adrcs.serve")
SMALL_BODY = 64 * 1024        # parsed on the event loop
HEAVY_BODY = 1024 * 1024      # above: parsed in the worker process
MAX_TEXT = 200                # lot / wafer / tool


def short_text(v: Any, name: str, limit: int = MAX_TEXT) -> str | None:
    """A lot / wafer / tool value: None or a string of at most `limit` characters without NUL."""
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > limit or "\x00" in v:
        raise InputError(None, f"{name} must be a string of at most {limit} characters")
    return v


def wafer_ids(wafer: Any, n: int) -> list[str | None]:
    """One wafer id for every map, or one per map."""
    if wafer is None or isinstance(wafer, str):
        return [short_text(wafer, "wafer")] * n
    if isinstance(wafer, list) and len(wafer) == n and all(isinstance(w, (str, type(None))) for w in wafer):
        return [short_text(w, "wafer") for w in wafer]
    raise InputError(None, f"wafer must be one id or a list of {n} ids (one per map)")


ParsedMaps = tuple[list[np.ndarray], "str | None", "str | None", "list[str | None]", "str | None"]


def parse_json_maps(raw: bytes, max_side: int, max_maps: int) -> ParsedMaps:
    """``{"maps": [...], "lot", "wafer", "tool", "part_type"}`` bytes -> (uint8 die-code maps, lot, tool, wafer ids,
    part type: the product whose champion answers, `serve.products`)."""
    from adrcs.serve.products import part_key

    from adrcs.serve.inputs import maps_from_json

    try:
        body = orjson.loads(raw)  # 4x faster than json on die-code grids
    except orjson.JSONDecodeError:
        raise InputError(None, "body is not valid JSON (send {\"maps\": [...]} or a multipart file)") from None
    if not isinstance(body, dict) or "maps" not in body:
        raise InputError(None, "body must be a JSON object with a 'maps' list")
    if isinstance(body["maps"], list) and len(body["maps"]) > max_maps:
        raise InputError(None, f"{len(body['maps'])} maps in one request; the limit is {max_maps}")
    maps = maps_from_json(body["maps"], max_side=max_side)
    lot, tool = short_text(body.get("lot"), "lot"), short_text(body.get("tool"), "tool")
    return maps, lot, tool, wafer_ids(body.get("wafer"), len(maps)), part_key(body.get("part_type"), strict=True)


def _in_child(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    # exceptions with custom __init__ do not survive pickling: send the message instead
    try:
        return "ok", fn(*args)
    except InputError as e:
        return "input", (type(e).__name__, e.path, e.problem)


class HeavyParser:
    """One-at-a-time slot for large parses, run in a spawned worker process (created on first use)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = int(workers)
        self._slot: asyncio.Semaphore | None = None
        self._pool: ProcessPoolExecutor | None = None

    def slot(self) -> asyncio.Semaphore:
        """The semaphore every large parse holds (also used for uploads parsed in threads)."""
        if self._slot is None:
            self._slot = asyncio.Semaphore(self.workers)
        return self._slot

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fork would copy the model, torch's threads and the open database connections
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the worker process, in the slot; InputError raised there is raised here."""
        async with self.slot():
            try:
                status, value = await asyncio.get_running_loop().run_in_executor(self._executor(), _in_child, fn,
                                                                                 *args)
            except BrokenProcessPool:  # the child died (e.g. out of memory): start a new one next time
                log.error("the parse worker process died; restarting it")
                self.close()
                raise HTTPException(503, "the request could not be parsed now; try again") from None
        if status == "input":
            name, path, problem = value
            cls = _error_class(name)
            raise cls(path, problem)
        return value

    def close(self) -> None:
        """Stop the worker process (a later `run` starts a new one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _error_class(name: str) -> type[InputError]:
    import adrcs.errors as errors

    cls = getattr(errors, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, InputError) else InputError
