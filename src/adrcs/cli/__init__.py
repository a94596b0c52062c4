"""`adrcs` command line: train, evaluate, predict, info, convert, synth, export, serve, token, adapt (thin
wrappers over the Python API). One module per group of verbs; importing them registers the verbs on `app`."""
from __future__ import annotations

import sys

# importing a module registers its verbs; the order is the order of `adrcs --help`
from adrcs.cli import model_verbs  # noqa: F401,I001
from adrcs.cli import data_verbs  # noqa: F401
from adrcs.cli import synth_verbs  # noqa: F401
from adrcs.cli import pretrain_verbs  # noqa: F401
from adrcs.cli import report_verbs  # noqa: F401
from adrcs.cli import explain_verbs  # noqa: F401
from adrcs.cli import export_verbs  # noqa: F401
from adrcs.cli import suggest_verbs  # noqa: F401
from adrcs.cli import service_verbs  # noqa: F401
from adrcs.cli.common import app, expand_multi_value
from adrcs.errors import InputError

__all__ = ["app", "main", "expand_multi_value"]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: bad input -> one line on stderr, exit code 2."""
    argv = expand_multi_value(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=argv, prog_name="adrcs", standalone_mode=True)
    except InputError as e:
        print(f"adrcs: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("adrcs: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
