"""Class activation maps (`adrcs.inference.explain`) and their overlays (`adrcs.report.cam_overlay`).

Untrained in-memory models and the tiny committed legacy runs check shapes, ranges and geometry; the acceptance
test of issue 18 ("on synthetic maps with one blob, at least 60 % of the CAM mass lies within 2 dies of the blob,
on at least 9 of 10 randomly placed blobs") trains a small FFN with the project's own `fit` (about 2 s on one
thread: 300 maps of 28-36 dies at 32 px, 10 epochs).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from adrcs.errors import InputError
from adrcs.inference.explain import (explain_detections, explain_images, explain_maps, find_cam_layer,
                                     map_explanations, resolve_targets)
from adrcs.models import create_model
from adrcs.models.base import WaferClassifier
from adrcs.pipeline import Pipeline
from adrcs.report.cam_overlay import image_cam_png, wafer_cam_png
from adrcs.report.wafer_render import DIE_RGB

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy" / "runs"
BLOB_SIDES = (28, 37)   # die grid sides of the synthetic maps (drawn per map)


def _disc(side: int) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    c = (side - 1) / 2
    return np.hypot(yy - c, xx - c) <= side / 2 - 0.5


def blob_map(rng: np.random.Generator, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A round wafer of passing dies with 2 % scattered failing dies and one blob (a disc of radius 1.5-2.5 dies:
    9-21 failing dies) at a random place at least 4 dies inside the edge; (map, blob mask)."""
    m = _disc(side).astype(np.uint8)
    m[(rng.random(m.shape) < 0.02) & (m > 0)] = 2
    c = (side - 1) / 2
    while True:
        r, q = (int(v) for v in rng.integers(0, side, 2))
        if np.hypot(r - c, q - c) < side / 2 - 4:
            break
    yy, xx = np.mgrid[0:side, 0:side]
    blob = (np.hypot(yy - r, xx - q) <= rng.uniform(1.5, 2.5)) & (m > 0)
    m[blob] = 2
    return m, blob


def noise_map(rng: np.random.Generator, side: int, extra: bool) -> np.ndarray:
    """"clean": 2 % scattered failing dies; "random" (`extra`): as many more as a blob would have, scattered, so
    only their clustering tells a blob map from a random one (and the blob tells it from a clean one)."""
    m = _disc(side).astype(np.uint8)
    m[(rng.random(m.shape) < 0.02) & (m > 0)] = 2
    if extra:
        good = np.argwhere(m == 1)
        pick = good[rng.choice(len(good), int(blob_map(rng, side)[1].sum()), replace=False)]
        m[pick[:, 0], pick[:, 1]] = 2
    return m


def blob_set(rng: np.random.Generator, n: int):
    """`n` maps cycling blob / random / clean, sides drawn in BLOB_SIDES."""
    from adrcs.data.wafer_map_set import WaferMapSet

    maps = []
    for i in range(n):
        side = int(rng.integers(*BLOB_SIDES))
        maps.append(blob_map(rng, side)[0] if i % 3 == 0 else noise_map(rng, side, i % 3 == 1))
    return WaferMapSet(maps, np.arange(n) % 3, ["blob", "random", "clean"],
                       pd.DataFrame({"source": "synthetic", "index": np.arange(n)}))


def near_blob(blob: np.ndarray, dies: int = 2) -> np.ndarray:
    """Dies within `dies` (Chebyshev distance) of a blob die."""
    out = np.zeros_like(blob)
    for r, c in zip(*np.nonzero(blob)):
        out[max(0, r - dies):r + dies + 1, max(0, c - dies):c + dies + 1] = True
    return out


def _pipeline(model: str = "cnn", classes: int = 3, size: int = 16, multilabel: bool = False, **args) -> Pipeline:
    torch.manual_seed(0)
    net = create_model(model, num_classes=classes, multilabel=multilabel, width=4, **args).eval()
    return Pipeline(net=net, model_name=model, model_args={"width": 4, **args},
                    class_names=["blob", "random", "clean"][:classes], multilabel=multilabel, input_size=size)


# ---------------------------------------------------------------- wafer maps (fast)

def test_cams_come_back_at_each_maps_size_in_0_1_and_zero_off_wafer():
    rng = np.random.default_rng(0)
    maps = [blob_map(rng, s)[0] for s in (20, 31, 26)] + [noise_map(rng, 12, True)[:, :9]]  # any size, not square
    pipe = _pipeline()
    res = map_explanations(pipe, maps)
    assert res.method == "hirescam" and res.layer == "features.1" and res.probabilities.shape == (4, 3)
    for cam, m in zip(res.cams, maps):
        assert cam.dtype == np.float32 and cam.shape == m.shape
        assert cam.min() >= 0 and cam.max() == pytest.approx(1.0) and (cam[m == 0] == 0).all()
    mixed = explain_maps(pipe, maps, method="gradcam")
    assert mixed.dtype == object and [c.shape for c in mixed] == [m.shape for m in maps]
    same = explain_maps(pipe, maps[:1] * 3, target="clean", method="layercam")
    assert same.shape == (3, 20, 20) and same.dtype == np.float32


class FailCounter(WaferClassifier):
    """Logit 0 = mean over the map of one conv unit that copies the failing-die channel: its CAM is exactly the
    failing dies, so any shift or flip on the way back to the die grid would show."""

    def __init__(self) -> None:
        super().__init__()
        self.block = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3, padding=1, bias=False), torch.nn.ReLU())
        self.head = torch.nn.Linear(1, 2)
        with torch.no_grad():
            self.block[0].weight.zero_()
            self.block[0].weight[0, 2, 1, 1] = 1.0
            self.head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.head.bias.zero_()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x).mean(dim=(2, 3))

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats)


@pytest.mark.parametrize("method", ["layercam", "hirescam", "gradcam"])
def test_cam_lands_on_the_failing_dies_it_comes_from(method):
    pipe = Pipeline(net=FailCounter().eval(), model_name="fail_counter", model_args={}, class_names=["fail", "x"],
                    multilabel=False, input_size=32)
    rng = np.random.default_rng(5)
    m, blob = blob_map(rng, 32)
    cam = explain_maps(pipe, [m], target="fail", method=method)[0]
    assert np.array_equal(cam, (m == 2).astype(np.float32))            # input size: exactly the failing dies
    for side in (24, 45):                                               # resized up / down on the way in
        m, blob = blob_map(rng, side)
        cam = explain_maps(pipe, [m], target=0, method=method)[0]
        assert cam[near_blob(m == 2, 1)].sum() > 0.99 * cam.sum()         # all within 1 die of a failing die
        if side < 32:                                                   # every die seen: centred on them
            yy, xx = np.nonzero(cam)
            centre = np.average(np.stack([yy, xx]), axis=1, weights=cam[yy, xx])
            assert np.abs(centre - np.argwhere(m == 2).mean(axis=0)).max() < 0.25


def test_targets_methods_and_the_served_net_is_left_untouched():
    pipe = _pipeline()
    hooks = sum(len(m._forward_hooks) for m in pipe.net.modules())
    maps = [blob_map(np.random.default_rng(1), 24)[0]] * 2
    by_name = explain_maps(pipe, maps, target="random")
    assert np.allclose(by_name, explain_maps(pipe, maps, target=1))
    assert not np.allclose(by_name, explain_maps(pipe, maps, target="clean"))
    for method in ("gradcam++", "eigencam"):
        assert explain_maps(pipe, maps, method=method).shape == (2, 24, 24)
    assert sum(len(m._forward_hooks) for m in pipe.net.modules()) == hooks
    assert all(m.inplace for m in pipe.net.modules() if isinstance(m, torch.nn.ReLU))
    assert all(p.requires_grad for p in pipe.net.parameters())
    with pytest.raises(InputError, match="--target must be predicted or a class"):
        explain_maps(pipe, maps, target="Scratch")
    with pytest.raises(InputError, match="--method must be one of"):
        explain_maps(pipe, maps, method="smoothgrad")
    with pytest.raises(InputError, match="2-D die-code"):
        explain_maps(pipe, [np.ones(5, np.uint8)])
    assert explain_maps(pipe, []).shape == (0, 0, 0)


class _Residual(WaferClassifier):
    """stem conv -> x + relu(conv(x)) -> mean -> linear: the inner conv is not on every path."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.body = _Skip()
        self.head = torch.nn.Linear(4, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(x)).mean(dim=(2, 3))

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats)


class _Skip(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.conv(x))


def test_layer_choice_fine_coarse_and_declared():
    x = torch.zeros(1, 3, 16, 16)
    cnn, ffn = _pipeline("cnn").net, _pipeline("ffn").net
    assert find_cam_layer(cnn, x, fine=True)[0] == "features.1"       # last block at full input resolution
    assert find_cam_layer(cnn, x, fine=False)[0] == "features.10"     # the classic last conv layer
    assert find_cam_layer(ffn, x, fine=True)[0] == "stem.1"          # input / 2: the branches split after it
    assert find_cam_layer(ffn, x, fine=False)[0] == "stem.1"         # no later layer carries all 3 branches
    res = _Residual()
    assert find_cam_layer(res, x, fine=False)[0] == "body"          # the block, not the conv its skip bypasses
    cnn.cam_layer = "features.4"
    assert find_cam_layer(cnn, x, fine=True)[0] == "features.4"
    with pytest.raises(InputError, match="no layer"):
        find_cam_layer(cnn, x, fine=True, layer="features.99")


def test_multilabel_explains_every_decided_label_or_the_top_one():
    probs = np.array([[0.9, 0.7, 0.1], [0.2, 0.4, 0.1]])
    assert resolve_targets(probs, ["a", "b", "c"], True, "predicted") == [[0, 1], [1]]
    assert resolve_targets(probs, ["a", "b", "c"], False, None) == [[0], [1]]
    pipe = Pipeline.load(LEGACY / "multilabel")
    maps = [blob_map(np.random.default_rng(2), 30)[0]]
    res = map_explanations(pipe, maps, threshold=0.0)   # every label set: their logits summed
    assert res.targets == [list(range(len(pipe.class_names)))] and res.cams[0].shape == (30, 30)


def test_sinogram_feature_models_are_refused():
    pipe = Pipeline.load(LEGACY / "sinogram")
    with pytest.raises(InputError, match="explain supports 2-D map models"):
        explain_maps(pipe, [blob_map(np.random.default_rng(0), 26)[0]])


# ---------------------------------------------------------------- images and detectors (fast)

def test_image_classifier_and_detector_cams_at_image_size():
    from adrcs.detector_pipeline import DetectorPipeline
    from adrcs.image_classifier_pipeline import ImageClassifierPipeline

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (40, 56), dtype=np.uint8), rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)]
    clf = ImageClassifierPipeline.load(LEGACY / "image_classify")
    cams = explain_images(clf, imgs, templates=imgs if clf.use_template else None)
    assert [c.shape for c in cams] == [(40, 56), (30, 30)] and all(c.max() <= 1 and c.min() >= 0 for c in cams)
    det = DetectorPipeline.load(LEGACY / "detect")
    tmps = [a if a.ndim == 2 else a.mean(-1).astype(np.uint8) for a in imgs] if det.use_template else None
    dcams = explain_detections(det, imgs, templates=tmps)
    assert [c.shape for c in dcams] == [(40, 56), (30, 30)] and max(float(c.max()) for c in dcams) == 1.0
    with pytest.raises(InputError, match="class-agnostic"):
        explain_detections(det, imgs, templates=tmps, method="gradcam")


# ---------------------------------------------------------------- overlays (fast)

def test_overlays_are_pngs_with_off_wafer_left_white():
    m, blob = blob_map(np.random.default_rng(3), 20)
    cam = np.where(blob, 1.0, 0.0).astype(np.float32)
    png = Image.open(io.BytesIO(wafer_cam_png(m, cam, scale=4)))
    rgb = np.asarray(png.convert("RGB"))
    assert png.format == "PNG" and rgb.shape == (80, 80, 3)
    assert (rgb[:4, :4] == 255).all()                                         # corner: off-wafer stays white
    r, c = np.argwhere(m == 1)[0]                                            # a pass die away from the blob...
    if not blob[r, c]:
        assert (rgb[r * 4, c * 4] == DIE_RGB[1]).all()                       # ...unchanged where the CAM is 0
    br, bc = np.argwhere(blob)[0]
    assert not (rgb[br * 4, bc * 4] == DIE_RGB[2]).all()                     # heat over the blob
    img = np.full((12, 18), 100, np.uint8)
    out = np.asarray(Image.open(io.BytesIO(image_cam_png(img, np.zeros((12, 18), np.float32)))))
    assert out.shape == (12, 18, 3) and (out == 100).all()
    with pytest.raises(ValueError, match="differ in size"):
        wafer_cam_png(m, cam[:5])


# ---------------------------------------------------------------- the acceptance test

def test_cam_mass_lies_on_the_blob(tmp_path):
    """Issue 18: >= 60 % of the CAM mass within 2 dies of the blob on >= 9 of 10 new randomly placed blobs."""
    from adrcs.config import load_config
    from adrcs.tasks.fitting import fit

    rng = np.random.default_rng(0)
    train, val = blob_set(rng, 300), blob_set(rng, 30)
    cfg = load_config(None, {"model": "ffn", "model_args": {"width": 8}, "input_size": 32, "epochs": 10,
                             "batch_size": 32, "seed": 0, "device": "cpu", "progress": False,
                             "early_stopping_patience": 0})
    fit(cfg, train, val, tmp_path / "run", console_print=lambda s: None)
    pipe = Pipeline.load(tmp_path / "run")
    tests = [blob_map(rng, int(rng.integers(*BLOB_SIDES))) for _ in range(10)]
    res = map_explanations(pipe, [m for m, _ in tests], target="blob")
    shares = [float(cam[near_blob(b)].sum() / cam.sum()) for cam, (_, b) in zip(res.cams, tests)]
    print("CAM mass within 2 dies of the blob:", np.round(shares, 3))
    assert sum(s >= 0.6 for s in shares) >= 9, shares
