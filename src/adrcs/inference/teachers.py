"""The teachers of a distillation run (`engine.distill`): trained run folders whose mean 8-view probabilities
the student learns."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from adrcs.errors import InputError


def check_teachers(teachers: Sequence[str | Path]) -> list[Path]:
    """The teacher run folders as paths; InputError naming a folder that holds no trained model."""
    if isinstance(teachers, (str, Path)):
        teachers = [teachers]
    out = []
    for t in teachers:
        p = Path(t)
        if not (p / "model.ckpt").is_file():
            raise InputError(p, "is not a trained run folder (no model.ckpt): distill_from / --teacher needs "
                                "run folders written by `adrcs train`")
        out.append(p)
    return out


def teacher_targets(teachers: Sequence[str | Path], maps: list[np.ndarray] | np.ndarray, class_names: Sequence[str],
                    multilabel: bool, say: Callable[[str], None] = print, batch_size: int = 1024) -> np.ndarray:
    """Mean 8-view probabilities of the teachers for every map, (N, C) float32, in `class_names` order.

    InputError when a teacher was trained on other classes (or single- vs multi-label)."""
    from adrcs.pipeline import Pipeline

    total = None
    paths = check_teachers(teachers)
    for k, path in enumerate(paths, 1):
        pipe = Pipeline.load(path)
        if list(pipe.class_names) != list(class_names) or bool(pipe.multilabel) != bool(multilabel):
            raise InputError(path, f"teacher classes {list(pipe.class_names)} (multi-label {pipe.multilabel}) "
                                   f"differ from the training data's {list(class_names)} (multi-label {multilabel})")
        say(f"distillation: teacher {k}/{len(paths)} ({path.name}) labels {len(maps)} training maps (8 views)")
        probs = pipe.predict_proba(maps, batch_size=batch_size, tta=True).astype(np.float64)
        total = probs if total is None else total + probs
    return (total / len(paths)).astype(np.float32)
