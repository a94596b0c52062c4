"""Rate limits shared by every replica of the service, counted in the results store.

Two limits, each over fixed windows:

- failed token checks per client address (``auth:<client>``; `auth_limit.client_key`: the ``X-Forwarded-For``
  client when the request came through a ``--trusted-proxy``, else the peer): past ``auth_max_failures`` per
  ``auth_window_s`` the client gets 429 on every replica, before its token is looked at. The in-process
  `FailedAuthLimiter` still answers first (exact, at once, on the replica that saw the failures);
- requests per API token (``token:<name>``, ``adrcs serve --rate-limit N``: N per minute; 0: off).

Nothing is read from the database on the request path: each replica counts locally, and a background task
(every ``sync_s``, 1 s by default) adds its local counts to the store (one upsert, `Store.add_counts`) and reads
back the keys at or over their limit. So a limit holds across replicas within one sync: at most about
``replicas x rate x sync_s`` requests get through past it, and a client blocked on one replica is blocked on all
within ``sync_s``. Fixed windows let a client send up to twice the limit across a window boundary.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from typing import Any, Callable

from fastapi.concurrency import run_in_threadpool

log = logging.getLogger("adrcs.serve")
PRUNE_EVERY_S = 60.0


class SharedWindow:
    """Fixed-window counts of one kind of event (store keys ``prefix + key``) against one limit."""

    def __init__(self, prefix: str, limit: int, window_s: float, clock: Callable[[], float] = time.time) -> None:
        self.prefix, self.limit, self.window_s, self.clock = prefix, int(limit), float(window_s), clock
        self._window: int | None = None
        self._pending: Counter[str] = Counter()  # events of this window not yet added to the store
        self._known: dict[str, int] = {}  # store totals of this window, as of the last sync

    def _roll(self, now: float) -> int:
        w = int(now // self.window_s * self.window_s)
        if w != self._window:
            self._window, self._pending, self._known = w, Counter(), {}
        return w

    def hit(self, key: str, n: int = 1) -> None:
        """Count `n` events of `key` (on the event loop; sent to the store by the next sync)."""
        self._roll(self.clock())
        self._pending[key] += n

    def retry_after(self, key: str) -> int:
        """Seconds until `key` is under its limit again; 0 when it is under now (no database access)."""
        if self.limit <= 0:
            return 0
        now = self.clock()
        w = self._roll(now)
        if self._known.get(key, 0) + self._pending.get(key, 0) < self.limit:
            return 0
        return max(1, math.ceil(w + self.window_s - now))

    async def sync(self, store: Any) -> None:
        """Add the local counts to the store and learn which keys are over the limit (DB calls in a thread)."""
        w = self._roll(self.clock())
        pending, self._pending = self._pending, Counter()  # taken on the event loop: no event is lost
        try:
            known = await run_in_threadpool(self._exchange, store, pending, w)
        except BaseException:
            if self._window == w:  # put them back for the next try
                self._pending.update(pending)
            raise
        if self._window == w:
            self._known = known

    def _exchange(self, store: Any, pending: Counter[str], w: int) -> dict[str, int]:
        p = len(self.prefix)
        totals = store.add_counts({self.prefix + k: n for k, n in pending.items()}, w) if pending else {}
        over = store.counts_at_least(self.prefix, w, self.limit) if self.limit > 0 else {}
        return {k[p:]: n for k, n in {**over, **totals}.items()}


class SharedLimits:
    """The service's shared limits (`auth` failures per client, `tokens` requests per token) and their sync loop."""

    def __init__(self, store: Any, *, auth_max_failures: int, auth_window_s: float, rate_limit: int,
                 sync_s: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.store, self.sync_s, self.clock = store, float(sync_s), clock
        self.auth = SharedWindow("auth:", auth_max_failures, auth_window_s, clock)
        self.tokens = SharedWindow("token:", rate_limit, 60.0, clock)
        self._pruned = 0.0

    async def sync(self) -> None:
        """One exchange with the store for both limits (and, once a minute, old windows deleted)."""
        for window in (self.auth, self.tokens):
            if window.limit > 0:
                await window.sync(self.store)
        now = self.clock()
        if now - self._pruned >= PRUNE_EVERY_S:
            self._pruned = now
            keep = now - 2 * max(self.auth.window_s, self.tokens.window_s)
            await run_in_threadpool(self.store.prune_counts, int(keep))



def shared_limits(state: Any) -> SharedLimits:
    """The app's shared limits (``state.shared_limits``), made on first use from ``state.config``:
    ``auth_max_failures`` (10; 0: off) per ``auth_window_s`` (60), ``rate_limit`` (0: off), ``limits_sync_s`` (1)."""
    have = getattr(state, "shared_limits", None)
    if have is None:
        from adrcs.serve.auth_limit import DEFAULT_MAX_FAILURES, DEFAULT_WINDOW_S

        config = state.config
        failures = getattr(config, "auth_max_failures", DEFAULT_MAX_FAILURES)
        have = state.shared_limits = SharedLimits(
            state.store, auth_max_failures=int(failures or 0),
            auth_window_s=float(getattr(config, "auth_window_s", None) or DEFAULT_WINDOW_S),
            rate_limit=int(getattr(config, "rate_limit", 0) or 0),
            sync_s=float(getattr(config, "limits_sync_s", 1.0) or 1.0))
    return have


async def sync_loop(state: Any) -> None:
    """Sync the app's shared limits every ``sync_s`` seconds until cancelled (a lifespan task); database errors
    are logged and the counts kept for the next try."""
    while True:
        await asyncio.sleep(shared_limits(state).sync_s)
        try:
            await shared_limits(state).sync()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - the limits keep working locally meanwhile
            log.warning("shared rate-limit counters not synced: %s", (str(e).splitlines() or [type(e).__name__])[0][:200])
