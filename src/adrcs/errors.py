"""User-facing errors: the CLI prints them as one line and exits with code 2.

The service maps them to HTTP answers: `InputError` -> 422, `InputTooLarge` -> 413,
`UnsupportedMediaError` -> 415. Their messages never hold exception class names or server paths
(only the file name the user gave), since they are shown to HTTP clients.
"""
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


class InputTooLarge(InputError):
    """Input over a size limit (uncompressed bytes, map side, map count, image pixels)."""


class UnsupportedMediaError(InputError):
    """Input of a kind this reader refuses (a pickle where pickles are not accepted)."""
