"""A saved defect detector: network + class names + preprocessing, in one run folder (`model.ckpt`).

`DetectorPipeline.load(run_dir).predict(images)` needs nothing but that folder. Predictions come
back in each image's own pixel coordinates (the network sees a square `input_size` resize) with
0-based class indices into `class_names`, so they compare directly with `ImageSet.boxes`.
With a score calibration (fitted by `train`), ``scores`` are calibrated hit probabilities and
``raw_scores`` the network's own; the score threshold always applies to the raw score.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from adrcs.data.image_set import IMAGE_MODES, ImageSet, resolve_image_mode  # noqa: F401 (old imports)
from adrcs.errors import InputError
from adrcs.inference.box_calibration import BoxScoreCalibration, calibrate_detections
from adrcs.inference.predictor import Predictor
from adrcs.models.detection import LABEL_OFFSET, create_detector
from adrcs.models.detection.reference import as_unit_tensor, reference_channels
from adrcs.transforms.boxes import resize_with_boxes

__all__ = ["DetectorPipeline", "Detections", "prepare_input", "to_mode", "DETECTOR_FORMAT", "CHECKPOINT_NAME",
           "IMAGE_MODES", "ImageSet", "resolve_image_mode"]  # the last three: old imports from here

DETECTOR_FORMAT = "adrcs-detector/1"
CHECKPOINT_NAME = "model.ckpt"

Detections = dict[str, Any]
"""One image's result: ``boxes`` float32 (K, 4) x1 y1 x2 y2 in original pixels, ``labels`` int64 (K,)
0-based class indices, ``scores`` float32 (K,), ``width`` and ``height`` of the image; with a score
calibration also ``raw_scores`` float32 (K,), the detector's scores before calibration."""


def prepare_input(img: np.ndarray, template: np.ndarray | None, size: int | None,
                  use_template: bool) -> torch.Tensor:
    """One decoded image (+ template) -> the float (C, size, size) tensor the detector takes.

    The same steps as `DetectionDataset` without augmentation: [0, 1] channels-first, template
    resized to the image when stored at another resolution, square resize, then test / template /
    difference channels when `use_template`.
    """
    x = _chw(img)
    if use_template:
        if template is None:
            raise ValueError("this detector needs a template image (it was trained with use_template)")
        t = _chw(template)
        if t.shape[0] != x.shape[0]:
            raise ValueError(f"image has {x.shape[0]} channels but its template {t.shape[0]}")
        if t.shape != x.shape:
            t = F.interpolate(t[None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0]
        x = torch.cat([x, t], dim=0)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x, _ = resize_with_boxes(x, torch.zeros((0, 4)), int(size))
    if use_template:
        c = x.shape[0] // 2
        x = reference_channels(x[:c], x[c:])
    return x.contiguous()


def _chw(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, C) -> float32 (C, H, W) in [0, 1]."""
    img = np.asarray(img)
    return as_unit_tensor(img if img.ndim == 2 else np.moveaxis(img, -1, 0))


def to_mode(img: np.ndarray, mode: str) -> np.ndarray:
    """An in-memory uint8 image (H, W), (H, W, 3) or (H, W, 4) converted to PIL `mode` ("L" or "RGB")."""
    from PIL import Image

    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    want_ndim = 2 if mode == "L" else 3
    if arr.ndim == want_ndim and (mode == "L" or arr.shape[-1] == 3):
        return arr
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape}")
    return np.asarray(Image.fromarray(arr).convert(mode))


@dataclass
class DetectorPipeline(Predictor):
    """Everything `predict` needs: the detector and how images must be prepared for it.

    net: a torchvision detector from `create_detector` (labels 1-based inside).
    detector, detector_args: its registry name and constructor options (to rebuild it).
    in_chans: input channels (1 grey, 3 RGB; tripled with `use_template`).
    input_size: the square side images are resized to.
    use_template: the input stacks test, template and |test - template|.
    image_mode: "L" or "RGB", how images are decoded.
    score_threshold: default minimum score of a reported box, compared with the RAW (uncalibrated)
        score, so the boxes kept (and P/R/F1, mAP) are the same with or without calibration.
    score_calibration: per-class monotone map of raw scores to hit probabilities
        (`inference.box_calibration.BoxScoreCalibration`), or None (old checkpoints, or not fitted).
        When set, every prediction's ``scores`` are calibrated and ``raw_scores`` holds the network's;
        within a class the order of boxes is unchanged. Saved under ``score_calibration`` (plain data).
    extra: anything else stored in the checkpoint (train_seconds, best_epoch, ...).
    """

    FORMAT: ClassVar[str] = DETECTOR_FORMAT
    WHAT: ClassVar[str] = "detector"

    net: torch.nn.Module
    detector: str
    detector_args: dict[str, Any]
    class_names: list[str]
    in_chans: int
    input_size: int
    use_template: bool
    image_mode: str = "L"
    score_threshold: float = 0.5
    score_calibration: BoxScoreCalibration | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def preprocessing(self) -> dict[str, Any]:
        """How images are prepared, as plain data (saved in the checkpoint, shown in reports)."""
        return {"image_mode": self.image_mode, "resize": "bilinear square", "input_size": self.input_size,
                "scale": "uint8 / 255", "use_template": self.use_template,
                "channels": "test, template, |test - template|" if self.use_template else "test"}

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    # ------------------------------------------------------------ save / load

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"detector": self.detector, "detector_args": dict(self.detector_args),
                "class_names": list(self.class_names), "in_chans": int(self.in_chans),
                "input_size": int(self.input_size), "use_template": bool(self.use_template),
                "image_mode": self.image_mode, "score_threshold": float(self.score_threshold),
                "score_calibration": None if self.score_calibration is None else self.score_calibration.state(),
                "label_offset": LABEL_OFFSET}

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any], path: Path, device: str) -> "DetectorPipeline":
        size = int(ck["input_size"])
        try:
            net = create_detector(ck["detector"], num_classes=len(ck["class_names"]), in_chans=int(ck["in_chans"]),
                                  min_size=size, max_size=size, **ck["detector_args"])
            net.load_state_dict(ck["state_dict"])
        except (ValueError, RuntimeError, KeyError) as e:  # unknown detector, weights of another shape
            text = " ".join(str(e).split())[:160]
            raise InputError(path, f"cannot rebuild the detector ({type(e).__name__}: {text})")
        net.to(device).eval()
        cal = ck.get("score_calibration")  # absent in checkpoints written before calibration existed
        return cls(net=net, detector=ck["detector"], detector_args=dict(ck["detector_args"]),
                   class_names=list(ck["class_names"]), in_chans=int(ck["in_chans"]), input_size=size,
                   use_template=bool(ck["use_template"]), image_mode=ck.get("image_mode", "L"),
                   score_threshold=float(ck.get("score_threshold", 0.5)),
                   score_calibration=None if cal is None else BoxScoreCalibration.from_state(cal))

    # ------------------------------------------------------------ predict

    @torch.inference_mode()
    def predict_tensors(self, xs: list[torch.Tensor], sizes: list[tuple[int, int]],
                        score_threshold: float | None = None) -> list[Detections]:
        """Detections for prepared inputs (`prepare_input`), boxes mapped to the (width, height) in `sizes`.

        Boxes are kept when their raw score is >= the threshold; with a score calibration ``scores``
        are calibrated and ``raw_scores`` added (see the class docs).
        """
        from adrcs.engine.detector_module import strip_background

        thr = self.score_threshold if score_threshold is None else float(score_threshold)
        self.net.eval()
        outs = self.net([x.to(self.device) for x in xs])
        results = []
        for x, (w, h), out in zip(xs, sizes, outs):
            out = strip_background(out)
            keep = out["scores"] >= thr
            boxes = out["boxes"][keep].float().cpu()
            sh, sw = x.shape[-2:]  # the network's input size
            boxes = boxes * torch.tensor([w / sw, h / sh, w / sw, h / sh])
            boxes = torch.minimum(boxes.clamp(min=0.0), torch.tensor([w, h, w, h], dtype=boxes.dtype))
            results.append(calibrate_detections({
                "boxes": boxes.numpy().astype(np.float32).reshape(-1, 4),
                "labels": (out["labels"][keep].cpu() - LABEL_OFFSET).numpy().astype(np.int64),
                "scores": out["scores"][keep].float().cpu().numpy().astype(np.float32),
                "width": int(w), "height": int(h),
            }, self.score_calibration))
        return results

    def predict(self, images: ImageSet, batch_size: int = 4, score_threshold: float | None = None,
                step: Callable[[str], None] | None = None) -> list[Detections]:
        """Detections for every image of `images`, in each image's original pixel coordinates.

        score_threshold: minimum score kept (default: the pipeline's); 0 keeps every box the
        detector reports (what mAP needs). Raises InputError for an image without the template
        the model needs, or one that cannot be decoded. `step(name)` after each image (progress).
        """
        if self.use_template:
            missing = [i for i, t in enumerate(images.templates) if t is None]
            if missing:
                raise InputError(images.paths[missing[0]], f"no template image ({len(missing)} of {len(images)} "
                                 "images lack one), but this detector was trained with use_template")
        results: list[Detections] = []
        bs = max(int(batch_size), 1)
        for start in range(0, len(images), bs):
            xs, sizes = [], []
            for i in range(start, min(start + bs, len(images))):
                img = images.read_image(i, self.image_mode)
                tmpl = images.read_template(i, self.image_mode) if self.use_template else None
                xs.append(prepare_input(img, tmpl, self.input_size, self.use_template))
                sizes.append((img.shape[1], img.shape[0]))
                if step is not None:
                    step(Path(images.paths[i]).name)
            results += self.predict_tensors(xs, sizes, score_threshold)
        return results

    def predict_arrays(self, img: np.ndarray, template: np.ndarray | None = None,
                       score_threshold: float | None = None) -> Detections:
        """Detections for one in-memory uint8 image (H, W) or (H, W, 3), with its template if the model uses one.

        Colour is converted to the model's `image_mode`. Raises InputError when the model needs a
        template and none is given, or the image is not an image array.
        """
        try:
            a = to_mode(img, self.image_mode)
            t = None
            if self.use_template:
                if template is None:
                    raise ValueError("this detector needs a template image (it was trained with use_template)")
                t = to_mode(template, self.image_mode)
            x = prepare_input(a, t, self.input_size, self.use_template)
        except ValueError as e:
            raise InputError(None, str(e)) from e
        return self.predict_tensors([x], [(a.shape[1], a.shape[0])], score_threshold)[0]
