"""`adrcs synth fit|sample|evaluate`: the map synthesizers."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from adrcs.cli.common import (reads_data, _extra_overrides, _say, app)


synth_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Synthesize wafer maps for rare classes (CAE or conditional WGAN-GP).")
app.add_typer(synth_app, name="synth")


@synth_app.command("fit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@reads_data
def synth_fit(
    ctx: typer.Context,
    method: Optional[str] = typer.Option(None, "--method", help="cae | gan"),
    train_paths: List[Path] = typer.Option(..., "--train", help="Training file(s) only; never validation data."),
    out: Path = typer.Option(..., "--out", "-o", help="Synthesizer folder to write."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML (configs/synth_*.yaml)."),
    size: Optional[int] = typer.Option(None, help="Map size the synthesizer works at (multiple of 8)."),
    seed: Optional[int] = typer.Option(None),
    device: Optional[str] = typer.Option(None, help="auto | cpu | gpu"),
    reading: Optional[dict] = None,
) -> None:
    """Fit a synthesizer; other options as --key value (e.g. --iterations 2000, --steps 500)."""
    from adrcs.api import synth_fit as api_synth_fit
    from adrcs.synth.fit_config import load_synth_config, parse_value

    extra = {k: parse_value(v) for k, v in _extra_overrides(list(ctx.args)).items()}
    scfg = load_synth_config(config, dict(method=method, size=size, seed=seed, device=device, **extra))
    api_synth_fit(scfg, train_paths, out, say=_say, **reading)


@synth_app.command("sample")
def synth_sample(
    model: Path = typer.Option(..., "--model", "-m", help="Folder written by `adrcs synth fit`."),
    class_name: List[str] = typer.Option(..., "--class", help="Class to generate (repeatable), or 'all'."),
    n: int = typer.Option(500, "--n", help="Maps per class."),
    out: Path = typer.Option(..., "--out", "-o", help="Pickle to write (e.g. maps.pkl.xz); `adrcs info` reads it."),
    seed: int = typer.Option(0),
) -> None:
    """Generate maps of a class into a pickle in the processed WM-811K format."""
    from adrcs.api import synth_sample as api_synth_sample

    api_synth_sample(model, class_name, n, out, seed=seed, say=_say)


@synth_app.command("evaluate")
@reads_data
def synth_evaluate(
    model: Path = typer.Option(..., "--model", "-m", help="Folder written by `adrcs synth fit`."),
    classifier: Path = typer.Option(..., "--classifier", help="Run folder of a classifier trained on real maps."),
    data: List[Path] = typer.Option(..., "--data", "-d", help="Held-out real labeled maps (e.g. validation)."),
    out: Path = typer.Option(..., "--out", "-o", help="Report JSON; the PNG grid goes beside it."),
    n: int = typer.Option(500, "--n", help="Synthetic maps per class."),
    seed: int = typer.Option(0),
    reading: Optional[dict] = None,
) -> None:
    """Per-class FD / KID, classifier accuracy on synthetic maps, memorisation check, PNG grid."""
    from adrcs.api import synth_evaluate as api_synth_evaluate

    api_synth_evaluate(model, classifier, data, out, n=n, seed=seed, say=_say,
                       **reading)


