"""Micro-batching of concurrent requests into one forward pass (bounded wait), for throughput.

``MicroBatcher(predict_fn)`` queues the items of each ``await submit(items)``; a background task
collects queued requests until ``max_batch`` items are gathered or ``max_wait_ms`` has passed since
the oldest queued request arrived, calls ``predict_fn`` once on the concatenated items in a worker
thread (the event loop stays free), and gives each request its own slice of the outputs, in order.

Design choices:

* A request larger than ``max_batch`` is **split** into chunks of at most ``max_batch`` items, so a
  forward pass never exceeds ``max_batch`` (bounded memory); the caller gets the concatenated outputs,
  or the first exception if any chunk failed. Requests (chunks) are never split across batches: a
  chunk that does not fit waits for the next batch, and batches are filled in arrival order (FIFO).
* ``workers`` bounds the number of forward passes in flight (a dedicated thread pool of that size).
  A batch is collected only once a worker is free, so requests that arrive while all workers are busy
  join the next batch instead of waiting behind a fixed one; requests that already waited longer than
  ``max_wait_ms`` are sent at once.
* An exception raised by ``predict_fn`` (or a wrong number of outputs) is set on every request of
  that batch only; other batches are unaffected. A caller that was cancelled is skipped.
* ``start()`` is called implicitly by the first ``submit`` (inside a running event loop);
  ``await stop()`` stops accepting requests (``submit`` then raises ``RuntimeError`` until ``start()``
  is called again), runs everything already queued without waiting for ``max_wait_ms``, and waits for
  the batches in flight. ``async with MicroBatcher(...)`` does both.
* ``on_batch(size, seconds)`` (optional) is called on the event loop after each forward pass, e.g.
  to feed ``ServiceMetrics.observe_batch``; ``stats()`` gives counters for /metrics or /health.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass
class _Part:
    """Items of one request (or one chunk of a large request) and the future of their outputs."""

    items: list[Any]
    future: asyncio.Future
    enqueued: float  # loop.time() at submit


class MicroBatcher:
    """Collects concurrent ``submit`` calls into batches for ``predict_fn(items) -> outputs``
    (one output per item, same order)."""

    def __init__(self, predict_fn: Callable[[list[Any]], Sequence[Any]], max_batch: int = 256,
                 max_wait_ms: float = 5.0, workers: int = 1,
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        if max_batch < 1 or workers < 1 or max_wait_ms < 0:
            raise ValueError("MicroBatcher needs max_batch >= 1, workers >= 1 and max_wait_ms >= 0")
        self.predict_fn = predict_fn
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.workers = int(workers)
        self.on_batch = on_batch
        self._queue: deque[_Part] = deque()
        self._wakeup: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._collector: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        # counters
        self.batches = 0
        self.items = 0
        self.requests = 0
        self.errors = 0
        self.max_seen = 0

    # -- lifecycle ------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True between ``start()`` and the end of ``stop()``."""
        return self._collector is not None and not self._collector.done()

    def start(self) -> None:
        """Start the background collector on the running event loop (idempotent)."""
        if self.running:
            return
        self._closing = False
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(self.workers)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="adrcs-batch")
        self._collector = asyncio.get_running_loop().create_task(self._collect_loop(), name="adrcs-microbatcher")

    async def stop(self) -> None:
        """Stop accepting requests, run the queued ones (no waiting) and wait for batches in flight."""
        if self._collector is None:
            return
        self._closing = True
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            await self._collector
        finally:
            if self._inflight:
                await asyncio.gather(*list(self._inflight), return_exceptions=True)
            if self._executor is not None:
                self._executor.shutdown(wait=False)
            self._collector = None
            self._executor = None

    async def __aenter__(self) -> MicroBatcher:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- requests -------------------------------------------------------------------------------------
    async def submit(self, items: Sequence[Any]) -> list[Any]:
        """Queue the items of one request and return their outputs (same order), raising the
        exception of ``predict_fn`` if its batch failed."""
        items = list(items)
        if self._closing:
            raise RuntimeError("MicroBatcher is stopping: no new requests")
        if not items:
            return []
        self.start()
        loop = asyncio.get_running_loop()
        now = loop.time()
        parts = [_Part(items[i:i + self.max_batch], loop.create_future(), now)
                 for i in range(0, len(items), self.max_batch)]
        self._queue.extend(parts)
        self.requests += 1
        assert self._wakeup is not None
        self._wakeup.set()
        if len(parts) == 1:
            return await parts[0].future
        results = await asyncio.gather(*(p.future for p in parts), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return [x for r in results for x in r]

    def stats(self) -> dict[str, Any]:
        """Counters: batches run, items, requests, failed batches, mean / largest batch, queued items."""
        return {"batches": self.batches, "items": self.items, "requests": self.requests, "errors": self.errors,
                "mean_batch_size": self.items / self.batches if self.batches else 0.0,
                "max_batch_size": self.max_seen, "queued_items": sum(len(p.items) for p in self._queue),
                "max_batch": self.max_batch, "max_wait_ms": self.max_wait * 1000.0, "workers": self.workers}

    # -- background -----------------------------------------------------------------------------------
    async def _wait(self, timeout: float | None) -> bool:
        # wait for a submit / stop signal; False on timeout
        assert self._wakeup is not None
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def _collect(self) -> list[_Part]:
        # one batch of whole parts; [] when stopping with nothing queued
        while True:
            while self._queue and self._queue[0].future.done():   # cancelled callers
                self._queue.popleft()
            if self._queue:
                break
            if self._closing:
                return []
            await self._wait(None)
        loop = asyncio.get_running_loop()
        deadline = self._queue[0].enqueued + self.max_wait
        batch: list[_Part] = []
        n = 0
        while True:
            while self._queue and n + len(self._queue[0].items) <= self.max_batch:
                part = self._queue.popleft()
                if not part.future.done():
                    batch.append(part)
                    n += len(part.items)
            # full, next request does not fit, or stopping: send now
            if n >= self.max_batch or self._queue or self._closing:
                break
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._wait(remaining):
                break
        return batch

    async def _collect_loop(self) -> None:
        assert self._slots is not None
        while True:
            await self._slots.acquire()           # collect only when a worker is free
            try:
                batch = await self._collect()
            except BaseException:
                self._slots.release()
                raise
            if not batch:
                self._slots.release()
                if self._closing and not self._queue:
                    return
                continue
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _run(self, batch: list[_Part]) -> None:
        assert self._slots is not None and self._executor is not None
        items = [x for p in batch for x in p.items]
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            outputs = await loop.run_in_executor(self._executor, self.predict_fn, items)
            outputs = list(outputs)
            if len(outputs) != len(items):
                raise ValueError(f"predict_fn returned {len(outputs)} outputs for {len(items)} items")
        except asyncio.CancelledError:
            for p in batch:
                p.future.cancel()
            raise
        except Exception as e:
            self.errors += 1
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(e)
        else:
            i = 0
            for p in batch:
                if not p.future.done():
                    p.future.set_result(outputs[i:i + len(p.items)])
                i += len(p.items)
        finally:
            self._slots.release()
            self.batches += 1
            self.items += len(items)
            self.max_seen = max(self.max_seen, len(items))
        if self.on_batch is not None:
            try:
                self.on_batch(len(items), time.perf_counter() - t0)
            except Exception:  # a metrics hook must not break serving
                pass
