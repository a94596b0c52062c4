"""Scripts under bench/ and scripts/ (not a package) as modules: bench/service.py's server starter and load
generators, and any other script by path."""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=None)
def load_script(relative: str, name: str) -> ModuleType:
    """The script at REPO/`relative` loaded once as module `name`."""
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench_service() -> ModuleType:
    """bench/service.py loaded once (free_port, start_server, drive, ...)."""
    return load_script("bench/service.py", "bench_service")
