"""What every `adrcs` verb shares: the Typer app, the console, data-reading options, override parsing."""
from __future__ import annotations

import functools
import inspect
import sys
import typing
from typing import Any, Callable, Optional

import typer
from rich.console import Console

from adrcs.errors import InputError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="ADRCS: automated defect recognition and classification for wafer maps.")
console = Console(stderr=False, width=None if sys.stdout.isatty() else 120)

# Options that take several values after one flag (`--train a.pkl b.pkl`).
MULTI_VALUE_OPTIONS = ("--train", "--val", "--data", "--unlabeled")
# How data files are read: every verb that reads them takes these options (see `reads_data`).
TRUST_PICKLE = typer.Option(False, "--trust-pickle", help="Unpickle anything in pickle files (they can run "
                            "code): only for files you trust. Default: only wafer-map data classes.")
MAX_UNCOMPRESSED_MB = typer.Option(None, "--max-uncompressed-mb", help="Largest size a data file may expand "
                                   "to when read (default 4096).")


GOOD_BINS = typer.Option(None, "--good-bins", help="Fab files (STDF, SINF, E142): the bins that pass, e.g. "
                         "1,2 (default: the file's own pass flags / good-bin list).")
RETEST = typer.Option("last", "--retest", help="STDF: a die tested more than once counts by its last | first "
                      "result.")
MIN_DEFECTS = typer.Option(1, "--min-defects", help="KLARF: a die with at least this many defects fails.")
ON_ERROR = typer.Option("stop", "--on-error", help="stop | skip: skip unreadable files of a folder or glob and "
                        "list them at the end.")


def _reading(trust_pickle: bool = False, max_uncompressed_mb: Optional[float] = None, good_bins: Optional[str] = None,
             retest: str = "last", min_defects: int = 1, on_error: str = "stop") -> dict:
    """The keywords of the API functions that read data files: trust_pickle, limits, fab, on_error."""
    from adrcs.data.fab import FabOptions
    from adrcs.data.limits import InputLimits

    if on_error not in ("stop", "skip"):
        raise InputError(None, f"--on-error must be stop or skip (got {on_error!r})")
    return {"trust_pickle": trust_pickle, "limits": InputLimits.from_cli(max_uncompressed_mb),
            "fab": FabOptions.from_cli(good_bins, retest, min_defects), "on_error": on_error}


_READ_OPTIONS = {"trust_pickle": (bool, TRUST_PICKLE), "max_uncompressed_mb": (Optional[float], MAX_UNCOMPRESSED_MB),
                 "good_bins": (Optional[str], GOOD_BINS), "retest": (str, RETEST), "min_defects": (int, MIN_DEFECTS),
                 "on_error": (str, ON_ERROR)}


def reads_data(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a verb the data-reading options (--trust-pickle, --max-uncompressed-mb, --good-bins, --retest,
    --min-defects, --on-error); the verb receives them as one `reading` dict (see `_reading`)."""
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
              if p.name != "reading"]
    extra = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann)
             for k, (ann, opt) in _READ_OPTIONS.items()]

    @functools.wraps(fn)
    def verb(*args: Any, **kwargs: Any) -> Any:
        opts = {k: kwargs.pop(k) for k in _READ_OPTIONS if k in kwargs}
        return fn(*args, reading=_reading(**opts), **kwargs)

    verb.__signature__ = sig.replace(parameters=params + extra)  # type: ignore[attr-defined]
    verb.__annotations__ = {p.name: p.annotation for p in params + extra}
    del verb.__wrapped__  # typer reads the new signature, not the wrapped one
    return verb


def expand_multi_value(argv: list[str]) -> list[str]:
    """Rewrite `--train a b --val c` as `--train a --train b --val c` for click."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        out.append(tok)
        if tok in MULTI_VALUE_OPTIONS:
            j = i + 1
            first = True
            while j < len(argv) and not argv[j].startswith("-"):
                if not first:
                    out.append(tok)
                out.append(argv[j])
                first = False
                j += 1
            i = j
            continue
        i += 1
    return out


def _say(msg: str) -> None:
    console.print(msg, highlight=False, markup=False)


def _extra_overrides(args: list[str]) -> dict[str, str]:
    """`--key value` / `--key=value` pairs left over by click -> config overrides."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        tok = args[i]
        if not tok.startswith("--"):
            raise InputError(None, f"unexpected argument {tok!r}")
        key = tok[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
            i += 1
        else:
            value = "true"
        out[key.replace("-", "_")] = value
        i += 1
    return out




def require(usage: str, **flags: object) -> None:
    """One-line error naming the first missing flag (given as ``--name=value`` keywords, ``_`` for ``-``) and the
    verb's usage; typer's own missing-option message is a multi-line box."""
    from adrcs.errors import InputError

    for name, value in flags.items():
        if not value:
            raise InputError(None, f"--{name.replace('_', '-')} is required ({usage})")
