"""`adrcs pretrain`: self-supervised pretraining of a wafer-map encoder on maps without labels."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from adrcs.cli.common import _extra_overrides, _say, app, reads_data
from adrcs.errors import InputError


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@reads_data
def pretrain(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config of the model to pretrain "
                                          "(configs/*.yaml; a `pretrain:` mapping holds the options below)."),
    unlabeled_paths: List[Path] = typer.Option(..., "--unlabeled", help="Maps to pretrain on (labels ignored): "
                                               "files, folders or quoted globs; never validation maps."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (encoder.pt, config.yaml, history.csv, "
                             "plots/)."),
    epochs: Optional[int] = typer.Option(None, help="Override config epochs."),
    method: Optional[str] = typer.Option(None, "--method", help="simclr (default) | byol"),
    val_paths: Optional[List[Path]] = typer.Option(
        None, "--val", help="Labelled maps that only colour the t-SNE plot of the features (never trained on; "
                            "maps identical to one of them are left out of pretraining)."),
    device: Optional[str] = typer.Option(None, help="auto | cpu | gpu"),
    input_size: Optional[int] = typer.Option(None, help="Override config input_size."),
    batch_size: Optional[int] = typer.Option(None, help="Override config batch_size."),
    seed: Optional[int] = typer.Option(None, help="Override config seed."),
    reading: Optional[dict] = None,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the encoder already in --out."),
) -> None:
    """Pretrain the model's encoder without labels; fine-tune it with `adrcs train --init OUT`. Other config
    keys (--lr, --model-args) and pretraining options (--temperature, --proj-dim, --momentum, --min-side,
    --max-side, --max-cut, --p-fail, --p-drop) as --key value."""
    from adrcs.api_pretrain import load_pretrain_config, pretrain as api_pretrain
    from adrcs.engine.pretrain import ENCODER_NAME

    if not overwrite and (out / ENCODER_NAME).exists():
        raise InputError(out, f"holds a pretrained encoder already ({ENCODER_NAME}); pass --overwrite to replace "
                              "it or choose another --out")
    overrides = dict(epochs=epochs, method=method, device=device, input_size=input_size, batch_size=batch_size,
                     seed=seed)
    overrides.update(_extra_overrides(list(ctx.args)))
    cfg = load_pretrain_config(config, overrides)
    api_pretrain(cfg, list(unlabeled_paths), out, _say, val_paths=list(val_paths) if val_paths else None, **reading)
