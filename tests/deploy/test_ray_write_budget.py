"""`predict_ray`'s Parquet write tasks ask for no CPU: the reading tasks (0.25 CPU each) and the scoring actors
(0.75 CPU each) hold the whole budget of a local Ray, so write tasks asking for the default CPU waited until every
map was scored and every answer sat in the object store (found by bench/scale.py's 1 M-map run). Checked on a
stand-in for Ray (no Ray needed): the calls predict_ray makes."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import adrcs.deploy.ray_predict as rp


class _Dataset:
    def __init__(self, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self.calls = calls

    def map_batches(self, fn: Any, **kw: Any) -> "_Dataset":
        self.calls.append(("map_batches", {"fn": getattr(fn, "__name__", str(fn)), **kw}))
        return self

    def write_parquet(self, path: str, **kw: Any) -> None:
        self.calls.append(("write_parquet", {"path": path, **kw}))


def test_write_tasks_take_no_cpu_of_the_budget(tmp_path: Path, monkeypatch) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    data = SimpleNamespace(from_items=lambda items: _Dataset(calls), ActorPoolStrategy=lambda size: ("actors", size),
                           TaskPoolStrategy=lambda size: ("tasks", size))
    fake_ray = SimpleNamespace(data=data, shutdown=lambda: None)
    model = SimpleNamespace(input_size=16, resize="nearest", class_names=["a", "b"], multilabel=False)
    monkeypatch.setattr(rp, "require_ray", lambda: fake_ray)
    monkeypatch.setattr(rp, "pick_runtime", lambda run, runtime, say: ("onnx", model))
    monkeypatch.setattr(rp, "start_ray", lambda ray, address, workers, say: (workers, None))
    monkeypatch.setattr(rp, "_summary", lambda out, files, runtime, n, seconds, say, sp: {"workers": n})
    f = tmp_path / "maps.npz"
    f.write_bytes(b"")
    assert rp.predict_ray(tmp_path / "run", [f], tmp_path / "out", workers=2, say=lambda s: None) == {"workers": 2}
    kinds = [c[0] for c in calls]
    assert kinds == ["map_batches", "map_batches", "write_parquet"]
    read, score, write = (c[1] for c in calls)
    assert read["num_cpus"] + score["num_cpus"] == 1.0  # the budget: one CPU per worker, all of it held
    assert write["ray_remote_args"] == {"num_cpus": 0}
