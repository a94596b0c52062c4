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
    trust: Any = None  # a fitted `inference.trust.Trust` (temperature, prediction sets, unknown score)
    multilabel: bool = False

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {"resize": "bilinear", "input_size": self.input_size, "image_mode": self.image_mode,
                "use_template": self.use_template, "scale": "x / 255",
                "channels": "image" + (" + template + |image - template|" if self.use_template else "")}

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"model": self.model_name, "model_args": self.model_args, "class_names": self.class_names,
                "input_size": self.input_size, "image_mode": self.image_mode, "use_template": self.use_template,
                **({"trust": self.trust.state()} if self.trust is not None else {})}

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any], path: Path, device: str) -> "ImageClassifierPipeline":
        net = create_model(ck["model"], num_classes=len(ck["class_names"]), **ck["model_args"])
        net.load_state_dict(ck["state_dict"])
        fuse_conv_bn(net).to(device)
        net.adrcs_fused = True  # `save` refuses: the folded weights no longer fit the model's layout
        trust = None
        if ck.get("trust") is not None:
            from adrcs.inference.trust import Trust

            trust = Trust.from_state(ck["trust"])
        return cls(net=net, model_name=ck["model"], model_args=ck["model_args"], class_names=ck["class_names"],
                   input_size=ck["input_size"], image_mode=ck["image_mode"], use_template=ck["use_template"],
                   trust=trust)

    def predict_tensor(self, x: torch.Tensor, batch_size: int = 64, calibrated: bool = True) -> np.ndarray:
        """uint8 (N, C, S, S) prepared images -> probabilities (N, K) (temperature-scaled with a `trust`)."""
        return self.predict_outputs(x, batch_size, calibrated)[0]

    @torch.inference_mode()
    def predict_outputs(self, x: torch.Tensor, batch_size: int = 64,
                        calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (N, K) and the network's features (N, F) for prepared images."""
        self.net.eval()
        dev = next(self.net.parameters()).device
        probs, feats = [], []
        for i in range(0, len(x), batch_size):
            f = self.net.forward_features((x[i:i + batch_size].to(dev).float() / 255.0)
                                          .contiguous(memory_format=torch.channels_last))
            probs.append(torch.softmax(self.net.forward_head(f), dim=1).float().cpu())
            feats.append(f.flatten(1).float().cpu())
        if not probs:
            return np.zeros((0, len(self.class_names)), np.float32), np.zeros((0, 0), np.float32)
        p = torch.cat(probs).numpy()
        if calibrated and self.trust is not None:
            p = self.trust.calibrate(p)
        return p, torch.cat(feats).numpy()

    def predict_proba(self, images: ImageSet, batch_size: int = 64,
                      step: Callable[[str], None] | None = None) -> np.ndarray:
        """Probabilities for every image of a set (templates used when the model was trained with them);
        `step(name)` after each image is read (progress)."""
        return self.predict_tensor(self.read_tensor(images, step), batch_size)

    def read_tensor(self, images: ImageSet, step: Callable[[str], None] | None = None) -> torch.Tensor:
        """The images (and templates) of a set as the prepared uint8 tensor (N, C, S, S) the network takes."""
        from adrcs.engine.image_tensors import read_stack

        if self.use_template and not all(t is not None for t in images.templates):
            raise InputError(images.meta["source"].iloc[0] if len(images) else None,
                             "this model needs a template for every image")
        return read_stack(images, self.input_size, self.image_mode, self.use_template, step)

    def predict_arrays(self, image: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
        """Probabilities (K,) for one in-memory image (and its template when the model uses one)."""
        from adrcs.engine.image_tensors import image_channels

        if self.use_template and template is None:
            raise InputError(None, "this model needs the template image too")
        x = image_channels(image, template, self.input_size, self.use_template)
        return self.predict_tensor(torch.from_numpy(x[None]))[0]
