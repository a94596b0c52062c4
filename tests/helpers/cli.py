"""Running the ``adrcs`` command line in-process."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def run_cli(argv: Iterable[Any], capsys) -> tuple[int, str, str]:
    """Run `adrcs ARGV` in-process: (exit code, stdout, stderr) captured through pytest's `capsys`."""
    from adrcs.cli import main

    code = 0
    try:
        main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err
