"""Tasks: wafer-map classification, image detection, image classification. The CLI and the service
dispatch only through `get_task(name)` (config `task`) and `task_of(run_dir)` (a saved model's task)."""
from adrcs.tasks.base import Request, Task
from adrcs.tasks.registry import checkpoint_format, get_task, register_task, task_names, task_of

__all__ = ["Request", "Task", "checkpoint_format", "get_task", "register_task", "task_names", "task_of"]
