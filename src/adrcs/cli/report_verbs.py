"""`adrcs maps` (a PNG per wafer and a stacked map per lot) and `adrcs report` (the HTML lot report)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from adrcs.cli.common import _say, app, reads_data


@app.command()
@reads_data
def maps(
    data: List[Path] = typer.Option(..., "--data", "-d", help="Files, folders or quoted globs of wafer maps (any "
                                                            "format)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write <lot>/<wafer>.png, <lot>/stacked.png and "
                                                     "index.csv into."),
    by: str = typer.Option("code", "--by", help="code: off-wafer / pass / fail colours; bin: one colour per bin "
                                                "(fab files with bins)."),
    scale: Optional[int] = typer.Option(None, "--scale", help="Pixels per die (default: about 256 px across)."),
    stacked: bool = typer.Option(True, "--stacked/--no-stacked", help="Also draw each lot's stacked map (failure "
                                 "rate of each die position across its wafers; lots with 2 or more wafers)."),
    reading: Optional[dict] = None,
) -> None:
    """Draw wafer maps: one PNG per wafer (no axes) and a stacked failure-rate map per lot."""
    from adrcs.api_lots import write_maps

    write_maps(list(data), out, by=by, scale=scale, stacked=stacked, say=_say, **(reading or {}))


@app.command()
@reads_data
def report(
    model: Path = typer.Option(..., "--model", "-m", help="Run folder of a wafer-map model (`adrcs train`)."),
    data: List[Path] = typer.Option(..., "--data", "-d", help="Files, folders or quoted globs of wafer maps."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="The HTML report (self-contained, opens "
                             "offline); its numbers go to the .json next to it."),
    low_confidence: float = typer.Option(0.7, "--low-confidence", help="Flag wafers predicted with a confidence "
                                         "below this."),
    tta: Optional[bool] = typer.Option(None, "--tta/--no-tta", help="Average the 8 rot/flip views."),
    title: Optional[str] = typer.Option(None, "--title", help="Report title (default: Lot report: N wafers)."),
    reading: Optional[dict] = None,
) -> None:
    """Lot report: per lot yield, pattern mix, flagged wafers, stacked map and thumbnails; a Pareto across lots."""
    from adrcs.api_lots import write_report

    write_report(model, list(data), out, low_confidence=low_confidence, tta=tta, title=title, say=_say,
                 **(reading or {}))
