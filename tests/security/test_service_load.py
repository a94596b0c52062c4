"""A real ``adrcs serve``-style process (uvicorn, one worker) stays responsive while it takes a 50 MB JSON body
and decompression bombs: small inspections keep being answered within 1 s. Slow (a trained model, a
server process and 50 MB of JSON)."""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from adrcs.serve.store import Store
from helpers.runs import small_maps

SERVER = """
import sys, torch, uvicorn
import adrcs.serve.heavy_parse as heavy
from adrcs.serve.app import ServiceConfig, create_app
from adrcs.serve.store import Store
db, run, port, heavy_body = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
heavy.HEAVY_BODY = heavy_body
torch.set_num_threads(1)
sys.setswitchinterval(0.001)
app = create_app(ServiceConfig(db=db, models=[run], max_request_bytes=64 * 1024 * 1024, token_cache_s=60),
                 store=Store(db))
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def big_json_body(mb: int = 50) -> bytes:
    """About `mb` MB of valid JSON maps (1000x1000 each)."""
    m = np.random.default_rng(0).integers(0, 3, (1000, 1000)).tolist()
    one = json.dumps(m, separators=(",", ":"))
    n = max(1, mb * 1_000_000 // len(one))
    return ('{"maps":[' + ",".join([one] * n) + '],"lot":"BIG"}').encode()


def npz_bomb() -> bytes:
    """~70 KB npz whose array header declares 1 GiB of maps (the data: 64 MB of zeros)."""
    import zipfile

    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "|u1", "fortran_order": False, "shape": (1024, 1024, 1024)})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("arr_0.npy", hdr.getvalue() + b"\0" * (64 << 20))
    return out.getvalue()


def measure(run: Path, tmp: Path, heavy_body: int, seconds_after: float = 0.5) -> dict:
    """Start a server, send the 50 MB body and two bombs while small requests go on; return latencies."""
    import httpx

    db = f"sqlite:///{tmp / 'load.db'}"
    with Store(db) as s:
        token = s.create_token("load", "inspector")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, db, str(run), str(port), str(heavy_body)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base, h = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=base, headers=h, timeout=120) as c:
            for _ in range(300):
                try:
                    if c.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            small = {"maps": small_maps(1)}
            assert c.post("/v1/inspect/wafer-maps", json=small).status_code == 200
            heavy_answers: dict[str, int] = {}

            def send(name: str, **kw) -> None:
                with httpx.Client(base_url=base, headers=h, timeout=300) as hc:
                    heavy_answers[name] = hc.post("/v1/inspect/wafer-maps", **kw).status_code

            body = big_json_body()
            bomb = npz_bomb()
            threads = [threading.Thread(target=send, args=("50 MB JSON",),
                                        kwargs={"content": body, "headers": {"Content-Type": "application/json"}}),
                       threading.Thread(target=send, args=("npz bomb",), kwargs={"files": {"file": ("b.npz", bomb)}})]
            for t in threads:
                t.start()
            latencies = []
            while any(t.is_alive() for t in threads) or not latencies:
                t0 = time.perf_counter()
                assert c.post("/v1/inspect/wafer-maps", json=small).status_code == 200
                latencies.append(time.perf_counter() - t0)
                time.sleep(0.05)
            for t in threads:
                t.join()
        return {"max_s": max(latencies), "p50_s": float(np.median(latencies)), "n": len(latencies),
                "heavy": heavy_answers, "body_mb": len(body) / 1e6, "bomb_kb": len(bomb) / 1e3}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_small_requests_answered_within_1s_during_50mb_body_and_bomb(wafer_run, tmp_path):
    # ADRCS_LOAD_HEAVY_BODY=1000000000000 parses every body in a thread instead (the comparison in the report)
    heavy_body = int(os.environ.get("ADRCS_LOAD_HEAVY_BODY", 1024 * 1024))
    out = measure(wafer_run, tmp_path, heavy_body=heavy_body)
    print("\nload:", out)
    if heavy_body != 1024 * 1024:
        return
    assert out["heavy"] == {"50 MB JSON": 200, "npz bomb": 413}, out
    assert out["n"] >= 5 and out["max_s"] < 1.0, out
