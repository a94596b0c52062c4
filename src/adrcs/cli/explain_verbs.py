"""`adrcs explain`: class activation maps of a trained run, drawn over the maps or images it explains."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from adrcs.cli.common import _say, app, reads_data, require
from adrcs.errors import InputError


@app.command()
@reads_data
def explain(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Run folder written by `adrcs train` (wafer-map "
                                         "model, image classifier or detector)."),
    data: Optional[List[Path]] = typer.Option(None, "--data", "-d", help="Wafer maps: files, folders or quoted "
                                              "globs (any format); images: one list file, folder or image."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder to write <index>_<lot>_<wafer>.png "
                                       "overlays and explanations.csv into."),
    target: str = typer.Option("predicted", "--target", help="predicted (the decided class; multi-label: every "
                               "set label) or a class name of the model. Detectors: predicted only."),
    method: Optional[str] = typer.Option(None, "--method", help="hirescam (default) | layercam: die / pixel "
                                         "resolution; gradcam | gradcam++: last conv layer (coarse); eigencam: "
                                         "class-agnostic (the detectors' one)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Explain only the first N maps / images."),
    scale: Optional[int] = typer.Option(None, "--scale", help="Wafer maps: pixels per die (default: about 256 px "
                                        "across)."),
    reading: Optional[dict] = None,
) -> None:
    """Explain decisions: a heat overlay per map or image (where the model looked) and explanations.csv."""
    require("adrcs explain --model RUN --data PATH... --out DIR", model=model, data=data, out=out)
    if scale is not None and not 1 <= scale <= 64:
        raise InputError(None, f"--scale must be 1..64 px per die (got {scale})")
    from adrcs.api_explain import explain as run_explain

    run_explain(model, list(data), out, reading=reading, target=target, method=method, limit=limit, say=_say,
                scale=scale)
