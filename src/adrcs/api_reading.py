"""Reading the wafer-map data a verb was given: files, folders and globs, with progress for many files and a
closing list of the files skipped under ``--on-error skip``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from adrcs.data.data_paths import expand_data_paths
from adrcs.data.loader import load_many
from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.engine.progress import progress_steps

Printer = Callable[[str], None]
SHOWN_SKIPPED = 20


def read_maps(paths: Sequence[str | Path] | str | Path, say: Printer = print, **reading: Any) -> WaferMapSet:
    """`load_many` over `paths` (files, folders, globs) with a progress bar when there are several files; the
    files skipped under ``on_error="skip"`` are listed through `say` at the end. `reading`: trust_pickle, limits,
    fab, on_error, require_labels."""
    given = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files = expand_data_paths(given)
    if len(files) > 1:
        with progress_steps(len(files), f"reading {len(files)} files", say) as step:
            ds = load_many(files, progress=lambda done, total, p: step(Path(p).name), **reading)
    else:
        ds = load_many(files, **reading)
    report_skipped(ds.notes.get("skipped") or [], say)
    return ds


def report_skipped(skipped: Sequence[dict[str, str]], say: Printer) -> None:
    """One line per skipped file (at most 20, then a count)."""
    if not skipped:
        return
    say(f"skipped {len(skipped)} unreadable file(s) (--on-error skip):")
    for s in skipped[:SHOWN_SKIPPED]:
        say(f"  {s['path']}: {s['problem']}")
    if len(skipped) > SHOWN_SKIPPED:
        say(f"  ... and {len(skipped) - SHOWN_SKIPPED} more")
