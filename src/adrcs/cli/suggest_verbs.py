"""`adrcs suggest`: the unlabelled maps whose labels would help a trained run most (active learning)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from adrcs.cli.common import _say, app, reads_data, require


@app.command()
@reads_data
def suggest(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Run folder written by `adrcs train` (wafer-map "
                                         "model or image classifier)."),
    data: Optional[List[Path]] = typer.Option(None, "--data", "-d", help="The pool: files, folders or quoted globs "
                                              "of maps (any format); images: one list file or folder."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="CSV to write: rank, source, source_index, lot, "
                                       "wafer, predicted, confidence, score, method."),
    n: str = typer.Option("100", "--n", metavar="N", help="How many maps to suggest (a whole number >= 1)."),
    method: str = typer.Option("badge", "--method", help="badge (uncertain and diverse: k-means++ on gradient "
                               "embeddings) | coreset (cover the feature space) | uncertainty (smallest margin) | "
                               "random."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random draws (badge, random, coreset's first pick)."),
    unlabeled_only: bool = typer.Option(False, "--unlabeled-only", help="Leave out maps that carry labels already "
                                        "(coreset counts them as covered)."),
    tta: Optional[bool] = typer.Option(None, "--tta/--no-tta", help="Wafer maps: average the 8 rot/flip views."),
    reading: Optional[dict] = None,
) -> None:
    """Suggest which maps to label next: the n whose labels should help the model most, in rank order."""
    require("adrcs suggest --model RUN --data POOL... --out to_label.csv", model=model, data=data, out=out)
    from adrcs.api_suggest import suggest as run_suggest

    run_suggest(model, list(data), out, n=n, method=method, seed=seed, say=_say, unlabeled_only=unlabeled_only,
                tta=tta, **(reading or {}))
