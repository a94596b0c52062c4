"""The task registry and the one place where a run folder's task is read from its checkpoint."""
from __future__ import annotations

from pathlib import Path

from adrcs.errors import InputError
from adrcs.tasks.base import Task

CHECKPOINT_NAME = "model.ckpt"
_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add a task (by `task.name`); registering a name twice replaces it."""
    _TASKS[task.name] = task
    return task


def _load_builtin() -> None:
    if not _TASKS:  # importing the modules registers them (in this order: wafer first)
        import adrcs.tasks.wafer  # noqa: F401
        import adrcs.tasks.detection  # noqa: F401
        import adrcs.tasks.image_classification  # noqa: F401


def task_names(image: bool | None = None) -> tuple[str, ...]:
    """Registered task names (wafer first), optionally only image (True) or wafer-map (False) tasks."""
    _load_builtin()
    return tuple(n for n, t in _TASKS.items() if image is None or t.image == image)


def get_task(name: str) -> Task:
    """The task called `name`; InputError listing the known ones."""
    _load_builtin()
    if name not in _TASKS:
        raise InputError(None, f"unknown task {name!r}; known tasks: {', '.join(_TASKS)}")
    return _TASKS[name]


def checkpoint_format(run_dir: str | Path) -> str | None:
    """The `format` field of a run folder's (or a `model.ckpt` path's) checkpoint; None when the file is not an
    ADRCS checkpoint. Read with ``weights_only=True`` (never runs code), memory-mapped when possible."""
    import torch

    p = Path(run_dir)
    path = p / CHECKPOINT_NAME if p.is_dir() else p
    if not path.is_file():
        return None
    for kwargs in ({"mmap": True}, {}):  # mmap needs the zip format; older files load whole
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True, **kwargs)
        except Exception:  # noqa: BLE001 - not a (safe) torch file: no format
            continue
        return ck.get("format") if isinstance(ck, dict) and isinstance(ck.get("format"), str) else None
    return None


def task_of(run_dir: str | Path) -> Task:
    """The task that wrote `run_dir` (a run folder or a `model.ckpt`), from its checkpoint's format; InputError
    naming the folder when it is not a run folder of any registered task."""
    _load_builtin()
    p = Path(run_dir)
    path = p / CHECKPOINT_NAME if p.is_dir() else p
    if not path.is_file():
        raise InputError(p, f"no {CHECKPOINT_NAME} here: is this a run folder written by `adrcs train`?")
    fmt = checkpoint_format(path)
    for task in _TASKS.values():
        if task.format == fmt:
            return task
    known = ", ".join(t.format for t in _TASKS.values())
    raise InputError(path, f"not an ADRCS model (format {fmt!r}; known: {known})" if fmt else
                     "not an ADRCS model checkpoint (unreadable, or not written by `adrcs train`)")
