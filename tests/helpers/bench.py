"""bench/service.py (not a package) as a module: its server starter and load generators."""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def bench_service() -> ModuleType:
    """bench/service.py loaded once (free_port, start_server, drive, ...)."""
    spec = importlib.util.spec_from_file_location("bench_service", REPO / "bench" / "service.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
