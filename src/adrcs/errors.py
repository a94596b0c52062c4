"""User-facing errors: the CLI prints them as one line and exits with code 2."""
from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input from the user: a file that cannot be read, a wrong value, a missing option.

    ``str(err)`` is one line naming the file (when there is one) and the problem.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
