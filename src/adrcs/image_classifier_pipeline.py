"""A saved inspection-image classifier: network + class names + image preprocessing (`model.ckpt`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from adrcs.data.image_set import ImageSet
from adrcs.errors import InputError
from adrcs.inference.predictor import Predictor
from adrcs.models import create_model
from adrcs.models.fuse import fuse_conv_bn

IMAGE_CLASSIFIER_FORMAT = "adrcs-image-classifier/1"
CHECKPOINT_NAME = "model.ckpt"


@dataclass
class ImageClassifierPipeline(Predictor):
    """Everything `predict` needs for whole-image defect classes (save / load: `Predictor`)."""

    FORMAT: ClassVar[str] = IMAGE_CLASSIFIER_FORMAT
    WHAT: ClassVar[str] = "image classifier"

    net: torch.nn.Module
    model_name: str
    model_args: dict[str, Any]
    class_names: list[str]
    input_size: int
    image_mode: str = "L"
    use_template: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {"resize": "bilinear", "input_size": self.input_size, "image_mode": self.image_mode,
                "use_template": self.use_template, "scale": "x / 255",
                "channels": "image" + (" + template + |image - template|" if self.use_template else "")}

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"model": self.model_name, "model_args": self.model_args, "class_names": self.class_names,
                "input_size": self.input_size, "image_mode": self.image_mode, "use_template": self.use_template}

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any], path: Path, device: str) -> "ImageClassifierPipeline":
        net = create_model(ck["model"], num_classes=len(ck["class_names"]), **ck["model_args"])
        net.load_state_dict(ck["state_dict"])
        fuse_conv_bn(net).to(device)
        return cls(net=net, model_name=ck["model"], model_args=ck["model_args"], class_names=ck["class_names"],
                   input_size=ck["input_size"], image_mode=ck["image_mode"], use_template=ck["use_template"])

    @torch.inference_mode()
    def predict_tensor(self, x: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """uint8 (N, C, S, S) prepared images -> probabilities (N, K)."""
        self.net.eval()
        dev = next(self.net.parameters()).device
        out = [self.net.predict_proba((x[i:i + batch_size].to(dev).float() / 255.0)
                                      .contiguous(memory_format=torch.channels_last)).float().cpu()
               for i in range(0, len(x), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.class_names)), np.float32)

    def predict_proba(self, images: ImageSet, batch_size: int = 64,
                      step: Callable[[str], None] | None = None) -> np.ndarray:
        """Probabilities for every image of a set (templates used when the model was trained with them);
        `step(name)` after each image is read (progress)."""
        from adrcs.engine.image_tensors import read_stack

        if self.use_template and not all(t is not None for t in images.templates):
            raise InputError(images.meta["source"].iloc[0] if len(images) else None,
                             "this model needs a template for every image")
        return self.predict_tensor(read_stack(images, self.input_size, self.image_mode, self.use_template, step),
                                   batch_size)

    def predict_arrays(self, image: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
        """Probabilities (K,) for one in-memory image (and its template when the model uses one)."""
        from adrcs.engine.image_tensors import image_channels

        if self.use_template and template is None:
            raise InputError(None, "this model needs the template image too")
        x = image_channels(image, template, self.input_size, self.use_template)
        return self.predict_tensor(torch.from_numpy(x[None]))[0]
