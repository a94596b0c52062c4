"""Progress for long loops: a live rich bar on a terminal, a few plain lines otherwise (CI logs)."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress_steps(total: int, description: str, say: Callable[[str], None] = print, enabled: bool = True,
                   lines: int = 10) -> Iterator[Callable[[str], None]]:
    """Yield `step(status)`, to be called once per step with a short status text.

    On a TTY (and `enabled`) a rich progress bar shows the status; otherwise about `lines`
    lines are printed over the whole loop, so logs stay short.
    """
    t0 = time.time()
    every = max(1, total // max(1, lines))
    if enabled and sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      TextColumn("{task.fields[status]}"), transient=True) as bar:
            task = bar.add_task(description, total=total, status="")

            def step(status: str = "") -> None:
                bar.update(task, advance=1, status=status)

            yield step
        say(f"{description}: {total} steps in {time.time() - t0:.0f}s")
        return
    done = 0

    def step(status: str = "") -> None:
        nonlocal done
        done += 1
        if done % every == 0 or done == total:
            say(f"{description} {done}/{total}  {status}  ({time.time() - t0:.0f}s)")

    yield step
