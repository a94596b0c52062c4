"""A saved model: network + class names + preprocessing, in one run folder (`model.ckpt`).

`Pipeline.load(run_dir).predict_proba(dataset)` needs nothing but that folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from adrcs.data.wafer_map_set import WaferMapSet
from adrcs.inference.predictor import Predictor
from adrcs.models import create_model
from adrcs.models.fuse import fuse_conv_bn
from adrcs.transforms.dihedral import dihedral_views
from adrcs.transforms.one_hot import one_hot_maps
from adrcs.transforms.resize import resize_stack

CHECKPOINT_FORMAT = "adrcs-wafer-classifier/1"
CHECKPOINT_NAME = "model.ckpt"


def _encode(maps: torch.Tensor) -> torch.Tensor:
    """Prepared uint8 maps (N, S, S) -> the network's input: one-hot (N, 3, S, S), channels-last."""
    return one_hot_maps(maps).contiguous(memory_format=torch.channels_last)


@dataclass
class Pipeline(Predictor):
    """Everything `predict` needs: the network and how maps must be prepared for it (save / load: `Predictor`)."""

    FORMAT: ClassVar[str] = CHECKPOINT_FORMAT
    WHAT: ClassVar[str] = "wafer-map model"

    net: torch.nn.Module
    model_name: str
    model_args: dict[str, Any]
    class_names: list[str]
    multilabel: bool
    input_size: int
    tta: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    features: Any = None  # a fitted `SinogramFeatures` (maps -> 1-D features) for sequence models
    resize: str = "nearest"  # how maps reach input_size: nearest | failmax
    trust: Any = None  # a fitted `inference.trust.Trust`: temperature, prediction sets, unknown score
    proba_fn: Any = field(default=None, repr=False)  # frozen probabilities + features (see `freeze`), else eager

    def freeze(self) -> bool:
        """Serve a TorchScript-frozen network that takes the prepared uint8 maps (one-hot encoding traced in),
        so a forward pass releases the GIL once; False when the model cannot be frozen and stays eager.
        Sinogram-feature models stay eager; test-time augmentation uses the eager path."""
        from adrcs.models.freeze import freeze_predict_proba

        if self.features is not None:
            return False
        maps = [np.random.default_rng(0).integers(0, 3, (self.input_size, self.input_size), dtype=np.uint8)
                for _ in range(4)]
        self.proba_fn = freeze_predict_proba(self.net, self.prepare(maps).to(self.device), encode=_encode,
                                             with_features=True)
        return self.proba_fn is not None

    @property
    def preprocessing(self) -> dict[str, Any]:
        pre = {"resize": self.resize, "input_size": self.input_size, "encoding": "one_hot_3",
               "die_codes": {"off_wafer": 0, "good": 1, "fail": 2}, "tta": self.tta}
        if self.features is not None:
            pre["features"] = {"kind": "sinogram", "encoder": self.features.encoder,
                               "selector": self.features.selector, "n_features": self.features.n_features_out}
        return pre

    def checkpoint_fields(self) -> dict[str, Any]:
        return {"model": self.model_name, "model_args": self.model_args, "class_names": self.class_names,
                "multilabel": self.multilabel, "input_size": self.input_size,
                **({"features": self.features.state()} if self.features is not None else {}),
                **({"trust": self.trust.state()} if self.trust is not None else {})}

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any], path: Path, device: str) -> "Pipeline":
        net = create_model(ck["model"], num_classes=len(ck["class_names"]), multilabel=ck["multilabel"],
                           **ck["model_args"])
        net.load_state_dict(ck["state_dict"])
        fuse_conv_bn(net).to(device)  # inference only: BatchNorm folded into the convolutions
        net.adrcs_fused = True  # `save` refuses: the folded weights no longer fit the model's layout
        features = None
        if ck.get("features") is not None:
            from adrcs.features.sinogram import SinogramFeatures

            features = SinogramFeatures.from_state(ck["features"], device=device)
        trust = None
        if ck.get("trust") is not None:
            from adrcs.inference.trust import Trust

            trust = Trust.from_state(ck["trust"])
        return cls(net=net, model_name=ck["model"], model_args=ck["model_args"], class_names=ck["class_names"],
                   multilabel=ck["multilabel"], input_size=ck["input_size"], tta=ck["preprocessing"].get("tta", False),
                   features=features, resize=ck["preprocessing"].get("resize", "nearest"), trust=trust)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def prepare(self, maps: list[np.ndarray]) -> torch.Tensor:
        """Die-code maps of any sizes -> uint8 tensor (N, S, S)."""
        return torch.from_numpy(resize_stack(maps, self.input_size, self.resize))

    def predict_tensor(self, x: torch.Tensor, batch_size: int = 1024, tta: bool | None = None,
                       calibrated: bool = True) -> np.ndarray:
        """Probabilities for prepared maps (N, S, S) uint8 -> (N, C) float32 numpy (temperature-scaled when the
        model has a fitted `trust` and `calibrated`)."""
        return self.predict_outputs(x, batch_size, tta, calibrated)[0]

    @torch.inference_mode()
    def predict_outputs(self, x: torch.Tensor, batch_size: int = 1024, tta: bool | None = None,
                        calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (N, C) and the network's features (N, F) (mean over the views with TTA) for prepared maps."""
        tta = self.tta if tta is None else tta
        n = len(self.class_names)
        if self.proba_fn is not None and not tta and self.features is None and len(x):
            # frozen: one call per chunk and no other torch op (each would release and re-take the GIL)
            dev = self.device
            chunks = [x] if len(x) <= batch_size else list(x.split(batch_size))
            out = [self.proba_fn(c if dev.type == "cpu" else c.to(dev)) for c in chunks]
            out = out[0] if len(out) == 1 else torch.cat(out)
            both = out.numpy() if out.device.type == "cpu" else out.cpu().numpy()
            return self._calibrate(both[:, :n], calibrated), both[:, n:]
        self.net.eval()
        probs_out, feats_out = [], []
        for i in range(0, len(x), batch_size):
            if self.features is not None:  # sinogram pipeline: maps -> selected 1-D features -> net
                views = dihedral_views(x[i:i + batch_size]) if tta else [x[i:i + batch_size]]
                views = [torch.from_numpy(self.features.transform(v.numpy())).to(self.device) for v in views]
            else:
                xb = _encode(x[i:i + batch_size].to(self.device))
                views = dihedral_views(xb) if tta else [xb]
            probs, feats = 0, 0
            for v in views:
                f = self.net.forward_features(v)
                logits = self.net.forward_head(f)
                probs = probs + (torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1))
                feats = feats + f.flatten(1)
            probs_out.append((probs / len(views)).float().cpu())
            feats_out.append((feats / len(views)).float().cpu())
        if not probs_out:
            return np.zeros((0, n), np.float32), np.zeros((0, 0), np.float32)
        return self._calibrate(torch.cat(probs_out).numpy(), calibrated), torch.cat(feats_out).numpy()

    def _calibrate(self, probs: np.ndarray, calibrated: bool) -> np.ndarray:
        if not calibrated or self.trust is None:
            return probs
        return self.trust.calibrate(probs)

    def predict_proba(self, ds: WaferMapSet | list[np.ndarray], batch_size: int = 1024,
                      tta: bool | None = None) -> np.ndarray:
        """Probabilities for every map of a dataset (labeled or not)."""
        maps = ds.maps if isinstance(ds, WaferMapSet) else ds
        return self.predict_tensor(self.prepare(maps), batch_size=batch_size, tta=tta)

    def decide(self, probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Class index per map (single-label) or 0/1 matrix (multi-label)."""
        from adrcs.inference.decisions import decide

        return decide(probs, self.multilabel, threshold)
