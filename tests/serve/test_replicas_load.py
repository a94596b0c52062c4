"""Two `adrcs serve` replicas (one of them with ``--workers 2``) on one PostgreSQL store under concurrent load:
every acknowledged inspection is stored exactly once (0 lost, 0 duplicated, unique ids)."""
from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from helpers.bench import bench_service
from helpers.runs import small_maps

from adrcs.serve.store import Store

REQUESTS = 300
CONCURRENCY = 24


async def _fire(urls: list[str], token: str, n: int) -> list[tuple[int, int, str, dict]]:
    """`n` one-map inspections (lot R<i>) spread round-robin over `urls`, `CONCURRENCY` at a time:
    (i, status, lot, body) each."""
    import httpx

    maps = small_maps(8, seed=3)
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        async def one(i: int) -> tuple[int, int, str, dict]:
            lot = f"R{i:04d}"
            async with gate:
                r = await client.post(f"{urls[i % len(urls)]}/v1/inspect/wafer-maps",
                                      content=json.dumps({"maps": [maps[i % 8]], "lot": lot, "wafer": "1"}),
                                      headers={"Content-Type": "application/json"})
            return i, r.status_code, lot, r.json()

        return await asyncio.gather(*(one(i) for i in range(n)))


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_replicas_on_postgresql_lose_and_duplicate_nothing(db_url, tiny_wafer_run, tmp_path) -> None:
    bench = bench_service()
    ports = [bench.free_port(), bench.free_port()]
    token_file = tmp_path / "admin.token"
    common = ["--torch-threads", "1"]
    procs = []
    try:  # one after the other: the first migrates the new database and makes the admin token
        procs.append(bench.start_server(tiny_wafer_run, db_url, ports[0], token_file, tmp_path / "a.log",
                                        extra=common + ["--workers", "2"]))
        procs.append(bench.start_server(tiny_wafer_run, db_url, ports[1], tmp_path / "unused.token",
                                        tmp_path / "b.log", extra=common))
        token = token_file.read_text().strip()
        answers = asyncio.run(_fire([f"http://127.0.0.1:{p}" for p in ports], token, REQUESTS))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    assert not (tmp_path / "unused.token").exists()  # the second replica found the token made by the first
    failed = [(i, s, body) for i, s, _, body in answers if s != 200]
    assert not failed, failed[:3]
    acked = {body["results"][0]["id"]: lot for _, _, lot, body in answers}
    with Store(db_url) as store:
        rows = store.list_inspections(limit=10 ** 6)
    stored = {r.id: r.lot for r in rows}
    per_lot = Counter(r.lot for r in rows)
    print(f"\nreplicas load: {REQUESTS} requests sent, {len(acked)} acknowledged, {len(rows)} records stored, "
          f"{sum(n - 1 for n in per_lot.values())} duplicated, {len(set(acked) - set(stored))} lost")
    assert len(acked) == REQUESTS                       # unique ids across the three serving processes
    assert stored == acked                              # 0 lost: each acknowledged id stored, with its own lot
    assert len(rows) == REQUESTS and set(per_lot.values()) == {1}  # 0 duplicated
    assert len({body["request_id"] for *_, body in answers}) == REQUESTS
