"""What a task is: one kind of saved model (its checkpoint format) and the train / evaluate / predict / load
entry points the CLI and the service dispatch to. Adding a task is one module that calls `register_task`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from adrcs.errors import InputError

Printer = Callable[[str], None]


@dataclass(frozen=True)
class Request:
    """What a CLI verb was given: data paths (wafer maps: several files; images: one list file / folder),
    optional VOC folders, the output, and the wafer-only options (how pickles are read, TTA, threshold)."""

    data: Sequence[Path]
    out: Path | None = None
    val: Sequence[Path] | None = None
    images: Path | None = None
    annotations: Path | None = None
    reading: dict[str, Any] | None = None   # trust_pickle / limits / fab / on_error (see cli.common._reading)
    tta: bool | None = None
    threshold: float | None = None
    score_threshold: float | None = None
    labels: Path | None = None              # lot,wafer,label CSV for files without labels (wafer maps)
    annotated: bool = True                  # detection predict: write annotated images
    alpha: float | None = None              # prediction sets at this level (default: the model's)
    unlabeled: Sequence[Path] | None = None  # train: wafer-map files whose maps join without labels
    runtime: str = "torch"                  # evaluate / predict: torch | onnx | onnx-int8 (detectors: no int8)
    engine: str = "local"                   # predict: local | ray (wafer maps; `deploy.ray_predict`)
    address: str | None = None              # predict --engine ray: the cluster (auto | HOST:PORT); None: local Ray
    workers: int | None = None              # predict --engine ray: scoring actors


@dataclass(frozen=True)
class Task:
    """One task: `name` (the config's `task` value and the service's model kind), the `format` written into
    its `model.ckpt`, what it is called in messages, and its entry points (each takes a `Request`)."""

    name: str
    format: str
    what: str
    image: bool
    train: Callable[[dict[str, Any], Request, Printer], Any]
    evaluate: Callable[[Path, Request, Printer], Any]
    predict: Callable[[Path, Request, Printer], Any]
    load: Callable[[str | Path, str], Any]   # (run_dir, device) -> the saved model (a predictor)

    def check_image_request(self, req: Request) -> None:
        """Image tasks read one data path and have no TTA / multi-label threshold: say so, never ignore."""
        if req.engine != "local" and self.image:
            raise InputError(None, f"--engine {req.engine} is for wafer-map models so far; this is an image model "
                                   "(use --engine local)")
        if req.runtime == "onnx-int8" and self.name == "detect":
            raise InputError(None, "--runtime onnx-int8: INT8 is not supported for detectors yet (use --runtime "
                                   "onnx)")
        if not self.image:
            if req.images or req.annotations:
                raise InputError(None, "--images/--annotations are for image data (task: detect or image_classify)")
            return
        if len(req.data) > 1 or (req.val and len(req.val) > 1):
            extra = req.data[1] if len(req.data) > 1 else req.val[1]
            raise InputError(extra, "image models take one --data path (a list file or a folder) and at most "
                                    "one --val")
        for flag, value in (("tta", req.tta), ("threshold", req.threshold), ("labels", req.labels),
                            ("unlabeled", req.unlabeled)):
            if value is not None:
                raise InputError(None, f"--{flag} is for wafer-map models; this is an image model")
