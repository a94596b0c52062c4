"""`adrcs info` and `adrcs convert`: looking at and rewriting data files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from adrcs.cli.common import (reads_data, _say, app, console)


@app.command()
@reads_data
def info(
    paths: List[Path] = typer.Argument(..., help="Data files, folders (searched recursively) or quoted globs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    reading: Optional[dict] = None,
) -> None:
    """Show what the loader sees: maps per class, map sizes, unlabeled maps."""
    from rich.table import Table

    from adrcs.api import info as api_info

    result = api_info(paths, **reading)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for path, s in result.items():
        if "error" in s:
            console.print(f"{path}: skipped ({s['error']})", highlight=False, markup=False)
            continue
        fab = f", {s['lots']} lot(s)" if "lots" in s else ""
        flagged = f", {s['untested_flagged']} with > 20 % untested dies" if s.get("untested_flagged") else ""
        t = Table(title=f"{path}: {s['total']} maps, {s['unlabeled']} unlabeled"
                        f"{' (multi-label)' if s.get('multilabel') else ''}{fab}{flagged}")
        t.add_column("class" if not s.get("multilabel") else "label")
        t.add_column("maps", justify="right")
        for name, n in s["classes"].items():
            t.add_row(name, str(n))
        console.print(t)
        sizes = list(s["map_sizes"].items())
        shown = ", ".join(f"{k}: {v}" for k, v in sizes[:10])
        console.print(f"map sizes ({len(sizes)} distinct): {shown}{' ...' if len(sizes) > 10 else ''}",
                      highlight=False)


@app.command()
@reads_data
def convert(
    path: Path = typer.Argument(..., help="Wafer-map file in any supported format."),
    out: Path = typer.Argument(..., help="The .npz to write (loads without unpickling; uploadable)."),
    reading: Optional[dict] = None,
) -> None:
    """Rewrite a wafer-map file as a plain npz (maps, labels, lot, wafer) that needs no unpickling."""
    from adrcs.api import convert as api_convert

    api_convert(path, out, say=_say, **reading)


