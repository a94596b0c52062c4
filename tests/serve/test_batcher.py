"""MicroBatcher: batching of concurrent requests, bounds, errors per batch, drain on stop.

Plain ``asyncio.run`` in each test (no pytest-asyncio plugin needed).
"""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from adrcs.serve.batcher import MicroBatcher


class Recorder:
    """predict_fn doubling each item and recording the size of every call (thread-safe)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[list] = []
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, items: list) -> list:
        with self._lock:
            self.calls.append(list(items))
        if self.delay:
            time.sleep(self.delay)
        return [x * 2 for x in items]


def test_concurrent_single_items_are_batched_in_order():
    rec = Recorder(delay=0.01)

    async def main():
        async with MicroBatcher(rec, max_batch=256, max_wait_ms=20) as b:
            outs = await asyncio.gather(*(b.submit([i]) for i in range(20)))
            return outs, b.stats()

    outs, stats = asyncio.run(main())
    assert outs == [[2 * i] for i in range(20)]
    assert len(rec.calls) < 20
    assert sorted(x for c in rec.calls for x in c) == list(range(20))
    assert stats["batches"] == len(rec.calls) and stats["items"] == 20 and stats["requests"] == 20
    assert stats["mean_batch_size"] == pytest.approx(20 / len(rec.calls))


def test_multi_item_requests_get_their_own_slices():
    rec = Recorder()

    async def main():
        async with MicroBatcher(rec, max_batch=64, max_wait_ms=10) as b:
            return await asyncio.gather(*(b.submit(list(range(10 * k, 10 * k + k + 1))) for k in range(6)))

    outs = asyncio.run(main())
    for k, out in enumerate(outs):
        assert out == [2 * x for x in range(10 * k, 10 * k + k + 1)]


def test_max_batch_respected_and_large_requests_split():
    rec = Recorder(delay=0.005)

    async def main():
        async with MicroBatcher(rec, max_batch=4, max_wait_ms=10) as b:
            small = [b.submit(list(range(100 * k, 100 * k + 1 + k % 3))) for k in range(15)]
            big = b.submit(list(range(1000, 1010)))     # 10 items > max_batch: split into chunks
            return await asyncio.gather(*small, big)

    outs = asyncio.run(main())
    assert all(len(c) <= 4 for c in rec.calls)
    for k in range(15):
        assert outs[k] == [2 * x for x in range(100 * k, 100 * k + 1 + k % 3)]
    assert outs[15] == [2 * x for x in range(1000, 1010)]


def test_lone_request_is_served_after_bounded_wait():
    rec = Recorder()

    async def main():
        b = MicroBatcher(rec, max_batch=256, max_wait_ms=50)
        t0 = time.perf_counter()
        out = await asyncio.wait_for(b.submit([21]), timeout=10)
        elapsed = time.perf_counter() - t0
        await b.stop()
        return out, elapsed

    out, elapsed = asyncio.run(main())
    assert out == [42] and rec.calls == [[21]]
    assert elapsed < 5.0   # waited about max_wait_ms, not for a full batch


def test_exception_goes_to_callers_of_that_batch_only():
    def predict(items):
        if "bad" in items:
            raise RuntimeError("bad item")
        return [f"ok:{x}" for x in items]

    async def main():
        async with MicroBatcher(predict, max_batch=2, max_wait_ms=20) as b:
            # FIFO packing with max_batch=2: batch 1 = [1, "bad"], batch 2 = [3, 4]
            outs = await asyncio.gather(b.submit([1]), b.submit(["bad"]), b.submit([3]), b.submit([4]),
                                        return_exceptions=True)
            after = await b.submit([5])   # the batcher keeps serving
            return outs, after, b.stats()

    outs, after, stats = asyncio.run(main())
    assert isinstance(outs[0], RuntimeError) and isinstance(outs[1], RuntimeError)
    assert outs[2] == ["ok:3"] and outs[3] == ["ok:4"]
    assert after == ["ok:5"] and stats["errors"] == 1


def test_wrong_number_of_outputs_is_an_error():
    async def main():
        async with MicroBatcher(lambda items: items[:-1], max_wait_ms=1) as b:
            return await asyncio.gather(b.submit([1, 2]), return_exceptions=True)

    (out,) = asyncio.run(main())
    assert isinstance(out, ValueError)


def test_stop_drains_pending_requests():
    rec = Recorder()

    async def main():
        b = MicroBatcher(rec, max_batch=256, max_wait_ms=60_000)   # would wait a minute for more items
        b.start()
        tasks = [asyncio.create_task(b.submit([i])) for i in range(3)]
        await asyncio.sleep(0.02)
        assert not any(t.done() for t in tasks)
        await asyncio.wait_for(b.stop(), timeout=10)
        assert all(t.done() for t in tasks)
        with pytest.raises(RuntimeError):
            await b.submit([9])
        return [t.result() for t in tasks]

    assert asyncio.run(main()) == [[0], [2], [4]]


def test_event_loop_stays_free_during_predict():
    gate = threading.Event()

    def predict(items):
        # blocks until the event loop (not this thread) sets the gate
        return [gate.wait(timeout=5)] * len(items)

    async def main():
        async with MicroBatcher(predict, max_wait_ms=1) as b:
            task = asyncio.create_task(b.submit([0]))
            await asyncio.sleep(0.05)
            gate.set()
            return await task

    assert asyncio.run(main()) == [True]


def test_on_batch_hook_and_empty_request():
    sizes = []

    async def main():
        async with MicroBatcher(lambda xs: xs, max_wait_ms=5, on_batch=lambda n, s: sizes.append((n, s))) as b:
            assert await b.submit([]) == []
            await asyncio.gather(*(b.submit([i]) for i in range(5)))

    asyncio.run(main())
    assert sum(n for n, _ in sizes) == 5 and all(s >= 0 for _, s in sizes)


def test_bad_arguments():
    with pytest.raises(ValueError):
        MicroBatcher(lambda xs: xs, max_batch=0)
