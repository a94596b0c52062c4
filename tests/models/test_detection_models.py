"""adrcs.models.detection: every detector trains (finite losses) and predicts, for 1 and 3 input channels."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adrcs.models.detection import (DEFAULT_DETECTOR, LABEL_OFFSET, count_parameters, create_detector,
                                    list_detectors, reference_channels)
from adrcs.models.detection.backbone import RESNET18_WIDTHS, ResNetTrunk, scaled_widths

SIZE = 96
NUM_CLASSES = 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(in_chans: int) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(in_chans, SIZE, SIZE, generator=g) for _ in range(2)]
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 40.0, 30.0], [50.0, 50.0, 70.0, 90.0]]), "labels": torch.tensor([1, 3])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},  # a defect-free image
    ]
    return images, targets


def test_registry_lists_the_families():
    names = list_detectors()
    assert DEFAULT_DETECTOR in names
    for family in ("fcos", "retinanet", "faster_rcnn"):
        assert any(n.startswith(family) for n in names)
    with pytest.raises(ValueError, match="unknown detector"):
        create_detector("yolo_v99", NUM_CLASSES)


@pytest.mark.slow
@pytest.mark.parametrize("in_chans", [1, 3])
@pytest.mark.parametrize("name", list_detectors())
def test_detector_trains_and_predicts(name, in_chans):
    torch.manual_seed(0)
    model = create_detector(name, NUM_CLASSES, in_chans=in_chans, min_size=SIZE, max_size=SIZE)
    assert len(model.transform.image_mean) == len(model.transform.image_std) == in_chans
    assert not any("Frozen" in type(m).__name__ for m in model.modules())  # trainable norms from scratch
    images, targets = _batch(in_chans)
    model.train()
    losses = model(images, targets)
    assert isinstance(losses, dict) and losses
    assert all(math.isfinite(float(v)) for v in losses.values()), losses
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == len(images)
    for det in out:
        assert set(det) >= {"boxes", "labels", "scores"}
        k = len(det["boxes"])
        assert det["boxes"].shape == (k, 4) and det["labels"].shape == (k,) and det["scores"].shape == (k,)
        assert det["labels"].dtype == torch.int64
        if k:
            assert int(det["labels"].max()) <= NUM_CLASSES + LABEL_OFFSET - 1


def test_slim_is_smaller_than_full_width():
    full = count_parameters(create_detector("fcos_r18", NUM_CLASSES))
    slim = count_parameters(create_detector("fcos_r18_slim", NUM_CLASSES))
    assert slim < full / 5
    model = create_detector("fcos_r18", NUM_CLASSES, width_mult=0.5, fpn_channels=64)  # presets can be overridden
    assert scaled_widths(0.5) == [32, 64, 128, 256]
    assert model.backbone.body.layer4[0].conv1.out_channels == 256


def test_full_width_trunk_is_resnet18():
    from torchvision.models import resnet18

    ref = resnet18(weights=None)
    n_ref = count_parameters(ref) - count_parameters(ref.fc)
    assert count_parameters(ResNetTrunk(3, RESNET18_WIDTHS)) == n_ref
    x = torch.rand(1, 1, 64, 64)
    assert ResNetTrunk(1, RESNET18_WIDTHS)(x).shape == (1, 512, 2, 2)


def test_reference_channels():
    test = np.zeros((8, 10), np.uint8)
    test[2:4, 3:6] = 255
    template = np.full((8, 10), 51, np.uint8)
    x = reference_channels(test, template)
    assert x.shape == (3, 8, 10) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.from_numpy(test / 255.0).float())
    assert torch.allclose(x[1], torch.full((8, 10), 0.2))
    assert torch.allclose(x[2], (x[0] - x[1]).abs())
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert reference_channels(torch.rand(1, 8, 10), torch.rand(8, 10)).shape == (3, 8, 10)
    with pytest.raises(ValueError, match="differ in shape"):
        reference_channels(test, template[:, :9])
