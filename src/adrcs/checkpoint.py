"""Reading `model.ckpt` files: one place for the file checks and one-line errors of every saved model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from adrcs.errors import InputError

CHECKPOINT_NAME = "model.ckpt"


def read_checkpoint(run_dir: str | Path, expected_format: str, what: str, device: str = "cpu"
                    ) -> tuple[dict[str, Any], Path]:
    """Load the checkpoint of a run folder (or a `model.ckpt` path) whose `format` must be
    `expected_format`; `what` names the model kind in errors ("wafer-map model", "detector", ...)."""
    p = Path(run_dir)
    path = p / CHECKPOINT_NAME if p.is_dir() else p
    if not path.is_file():
        raise InputError(p, f"no {CHECKPOINT_NAME} here: is this a run folder written by `adrcs train`?")
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # corrupt file, not a torch file
        raise InputError(path, f"cannot read the checkpoint ({type(e).__name__})")
    if not isinstance(ck, dict) or ck.get("format") != expected_format:
        found = ck.get("format") if isinstance(ck, dict) else None
        raise InputError(path, f"not an ADRCS {what} (expected format {expected_format}"
                               + (f", found {found})" if found else ")"))
    return ck, path

