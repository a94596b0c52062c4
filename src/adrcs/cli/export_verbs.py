"""`adrcs export`: a trained run's network for another runtime (ONNX; `deploy.export_onnx`)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from adrcs.cli.common import _say, app
from adrcs.errors import InputError


@app.command()
def export(
    model: Path = typer.Option(..., "--model", "-m", help="Run folder written by `adrcs train`."),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx (the only format so far)."),
    int8: bool = typer.Option(False, "--int8", help="Also write model.int8.onnx (static INT8 quantisation, "
                              "calibrated on sample data) and report its agreement / accuracy change (not for detectors)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder to write model.onnx and model.onnx.json "
                                       "into (default: the run folder, where --runtime onnx looks)."),
) -> None:
    """Export a trained model to ONNX, checked against PyTorch on sample data (max abs difference reported)."""
    from adrcs.deploy.export_onnx import FORMATS, export_onnx

    if format.lower() not in FORMATS:
        raise InputError(None, f"--format must be {' or '.join(FORMATS)} (got {format!r})")
    export_onnx(model, out=out, int8=int8, say=_say)
