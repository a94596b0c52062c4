"""Class activation maps (CAMs, the `grad-cam` package): which dies of a wafer map, or which pixels of an inspection
image, the model's decision rests on. Every CAM comes back float32 in [0, 1] at the input's ORIGINAL size (dies of
the map, pixels of the image); on wafer maps it is 0 off the wafer (die code 0).

Methods (`METHODS`): ``hirescam`` (default for classifiers) and ``layercam`` weight each activation by its own
gradient, so they stay class-specific at shallow layers, and are taken at the finest layer the whole decision
passes through (die / pixel resolution). HiResCAM (gradient x activation, summed over channels, then ReLU) keeps
the sign of each channel's contribution, so scattered weak evidence cancels and its maps are the tightest (issue
18's blob test on `ffn`, 5 training seeds: 10/10 blobs each with >= 71 % of the mass within 2 dies; LayerCAM
>= 62 %). ``gradcam`` and ``gradcam++`` average the gradients per channel and are taken, as published, at the last
convolutional layer (coarse: 1/8 of the input side for `cnn`; at a shallow layer their channel weights light every
failing die alike); ``eigencam`` is class-agnostic (first principal component of the activations, sign-corrected),
the one method for detectors (on the finest FPN level).

The layer is found generically (`find_cam_layer`): a model may name one in a ``cam_layer`` attribute (a module path);
otherwise a forward pass records every module with a convolution and its output size, and the layer is one that the
whole decision passes through: `cnn` -> features.1 (full input resolution) or features.10 (the last conv block);
the multi-branch `ffn` -> its stem (input / 2) for every method, since no later layer carries all three branches.
Sinogram-feature wafer models (1-D inputs) have no die grid to map back onto: InputError.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from adrcs.errors import InputError
from adrcs.inference.decisions import DEFAULT_THRESHOLD

METHODS = ("hirescam", "layercam", "gradcam", "gradcam++", "eigencam")
DEFAULT_METHOD = "hirescam"
FINE_METHODS = ("hirescam", "layercam")   # taken at die / pixel resolution; the others at the last conv block


@dataclass
class CamResult:
    """CAMs of N inputs. cams: one float32 (H, W) array in [0, 1] per input, at its original size;
    probabilities (N, K) (detectors: (N, 0)); targets: the class indices explained per input ([] when
    class-agnostic); method and layer (module path) used; detections (detectors only, see `DetectorPipeline`)."""

    cams: list[np.ndarray]
    probabilities: np.ndarray
    targets: list[list[int]]
    method: str
    layer: str
    detections: list[dict[str, Any]] | None = field(default=None, repr=False)

    def array(self) -> np.ndarray:
        """(N, H, W) float32 when every input has one size; else a 1-D object array of the N 2-D CAMs."""
        return as_array(self.cams)


def as_array(cams: Sequence[np.ndarray]) -> np.ndarray:
    """Stack 2-D CAMs of one shape into (N, H, W); CAMs of mixed shapes go into a 1-D object array."""
    if len({c.shape for c in cams}) <= 1:
        return np.stack(cams).astype(np.float32) if len(cams) else np.zeros((0, 0, 0), np.float32)
    out = np.empty(len(cams), dtype=object)
    for i, c in enumerate(cams):
        out[i] = c
    return out


def check_method(method: str | None, allowed: Sequence[str] = METHODS) -> str:
    """A method name from `allowed` (None: the default); InputError naming the choices."""
    m = DEFAULT_METHOD if method is None else str(method).strip().lower()
    if m not in allowed:
        raise InputError(None, f"--method must be one of {' | '.join(allowed)} (got {method!r})")
    return m


def _cam_class(method: str) -> type:
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM

    if method == "eigencam":
        return _signed_eigencam()
    return {"layercam": LayerCAM, "hirescam": HiResCAM, "gradcam": GradCAM, "gradcam++": GradCAMPlusPlus}[method]


def _signed_eigencam() -> type:
    """grad-cam's EigenCAM, thin-SVD and sign-corrected (a class made on first use: grad-cam loads lazily)."""
    from pytorch_grad_cam import EigenCAM

    class SignedEigenCAM(EigenCAM):
        """EigenCAM with a thin SVD (feature maps of 80 x 80 cells stay cheap) and the sign correction of
        Seg-Eigen-CAM (Eq. 13): the first component is flipped so its largest magnitude is positive."""

        def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):
            a = torch.as_tensor(np.nan_to_num(activations), dtype=torch.float32)
            flat = a.flatten(2).transpose(1, 2)                     # (N, h*w, C)
            flat = flat - flat.mean(dim=1, keepdim=True)
            _, _, vt = torch.linalg.svd(flat, full_matrices=False)
            proj = (flat @ vt[:, 0, :, None])[..., 0]               # (N, h*w)
            flip = proj.amin(dim=1).abs() > proj.amax(dim=1).abs()
            proj = torch.where(flip[:, None], -proj, proj)
            return proj.reshape(a.shape[0], *a.shape[2:]).numpy()

    return SignedEigenCAM


class _LogitSum:
    """A grad-cam target: the sum of the logits at `indices` (one class, or every label a multi-label model set)."""

    def __init__(self, indices: Sequence[int]) -> None:
        self.indices = list(indices)

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return output[..., self.indices].sum(dim=-1)


def _feature_maps(net: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module, int]]:
    """(path, module, output area) of every module holding a Conv2d whose output is a 4-D feature map, in the
    order they finish in one forward pass of `example`; a module handing on the very tensor of one before it (a
    Sequential ending in a block) is left out, so the innermost name stays."""
    found: list[tuple[str, nn.Module, int]] = []
    outs: list[torch.Tensor] = []   # kept alive so ids stay unique

    def hook(name: str) -> Any:
        def record(mod: nn.Module, args: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor) and out.dim() == 4 and all(out is not o for o in outs):
                outs.append(out)
                found.append((name, mod, int(out.shape[-2] * out.shape[-1])))
        return record

    hooks = [m.register_forward_hook(hook(n)) for n, m in net.named_modules()
             if n and any(isinstance(k, nn.Conv2d) for k in m.modules())]
    try:
        with torch.no_grad():
            net(example)
    finally:
        for h in hooks:
            h.remove()
    return found


def _everything_passes(net: nn.Module, module: nn.Module, example: torch.Tensor) -> bool:
    """True when every path from the input to the output runs through `module`: with its output detached, the
    output no longer depends on the input (parameters must not require gradients)."""
    h = module.register_forward_hook(lambda mod, args, out: out.detach())
    try:
        with torch.enable_grad():
            out = net(example.detach().clone().float().requires_grad_(True))
    finally:
        h.remove()
    return not out.requires_grad


def find_cam_layer(net: nn.Module, example: torch.Tensor, fine: bool, layer: str | None = None
                   ) -> tuple[str, nn.Module]:
    """(module path, module) to take the CAM at: `layer`, else the model's ``cam_layer``, else the conv layer
    (or block) that the whole decision passes through (not one branch of several, not a residual body) and that
    ran last: among those at the largest output size when `fine` (die / pixel resolution), else among all (the
    classic Grad-CAM layer: the last convolutional one)."""
    named = dict(net.named_modules())
    wanted = layer or getattr(net, "cam_layer", None)
    if wanted:
        if wanted not in named:
            raise InputError(None, f"no layer {wanted!r} in this model")
        return wanted, named[wanted]
    maps = _feature_maps(net, example)
    if not maps:
        raise InputError(None, "this model has no 2-D convolution to take a class activation map at")
    order = list(range(len(maps)))[::-1]                     # last to run first
    if fine:
        order.sort(key=lambda i: -maps[i][2])                # stable: largest maps first, last to run first
    trainable = [p for p in net.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        pick = next((i for i in order if _everything_passes(net, maps[i][1], example)), order[0])
    finally:
        for p in trainable:
            p.requires_grad_(True)
    return maps[pick][0], maps[pick][1]


def explainable_copy(net: nn.Module) -> nn.Module:
    """A private copy of `net` for hooks and gradients (a served model is never touched): eval mode, no in-place
    activations (they would overwrite the saved feature maps), parameters without gradients."""
    net = copy.deepcopy(net).eval()
    for m in net.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
        for p in m.parameters(recurse=False):
            p.requires_grad_(False)
    return net


def cams_at_input(net: nn.Module, x: torch.Tensor, module: nn.Module, method: str,
                  targets: Sequence[Sequence[int]] | None) -> np.ndarray:
    """grad-cam's `method` at `module` for a float input batch (N, C, S, S) -> (N, S, S) float32 in [0, 1];
    targets: class indices per input whose logits (summed) are explained (unused by eigencam)."""
    cam = _cam_class(method)(model=net, target_layers=[module])
    try:
        x = x.detach().clone().float().requires_grad_(method != "eigencam")
        tg = [_LogitSum(t) for t in targets] if targets is not None else [_LogitSum([0])] * len(x)
        with torch.enable_grad():
            out = cam(input_tensor=x, targets=tg)
    finally:
        cam.activations_and_grads.release()  # no `with`: grad-cam's __exit__ swallows IndexError
    return np.asarray(out, np.float32)


def to_original(cam: np.ndarray, shape: tuple[int, int], keep: np.ndarray | None = None) -> np.ndarray:
    """A CAM at the network's input size -> `shape` (bilinear, centre-aligned like the map / image resize,
    anti-aliased when shrinking), 0 where `keep` is False, scaled so its peak is 1 (all 0 stays 0)."""
    t = torch.from_numpy(np.ascontiguousarray(cam, np.float32))[None, None]
    out = F.interpolate(t, size=tuple(int(s) for s in shape), mode="bilinear", align_corners=False,
                        antialias=True)[0, 0].clamp_(min=0).numpy()
    if keep is not None:
        out[~keep] = 0.0
    peak = float(out.max()) if out.size else 0.0
    return (out / peak if peak > 0 else out).astype(np.float32)


def resolve_targets(probs: np.ndarray, class_names: Sequence[str], multilabel: bool, target: Any,
                    threshold: float = DEFAULT_THRESHOLD) -> list[list[int]]:
    """Class indices to explain per row of `probs`. target None / "predicted": the decided class (multi-label:
    every label at or above `threshold`, else the top label); an int or a class name: that class for all."""
    if target is None or (isinstance(target, str) and target.strip().lower() == "predicted"):
        if not multilabel:
            return [[int(i)] for i in probs.argmax(axis=1)]
        return [[int(j) for j in np.flatnonzero(p >= threshold)] or [int(p.argmax())] for p in probs]
    names = list(class_names)
    if isinstance(target, str) and target in names:
        k = names.index(target)
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool) and 0 <= int(target) < len(names):
        k = int(target)
    else:
        raise InputError(None, f"--target must be predicted or a class of the model ({', '.join(names)}); "
                               f"got {target!r}")
    return [[k] for _ in range(len(probs))]


# ---------------------------------------------------------------- wafer maps

def map_explanations(pipeline: Any, maps: Any, target: Any = "predicted", method: str | None = None, *,
                     layer: str | None = None, threshold: float = DEFAULT_THRESHOLD,
                     batch_size: int = 64) -> CamResult:
    """CAMs of a wafer-map `Pipeline` for `maps` (a list of uint8 die-code maps of any sizes, or a WaferMapSet):
    the maps are prepared as for `predict` (resize to the input size, one-hot), explained at the input size,
    then mapped back onto each map's own die grid; 0 off the wafer. Raises InputError for sinogram-feature
    pipelines, an unknown method / target / layer."""
    from adrcs.data.wafer_map_set import WaferMapSet
    from adrcs.pipeline import _encode

    if getattr(pipeline, "features", None) is not None:
        raise InputError(None, "explain supports 2-D map models; this is a sinogram-feature model (its 1-D "
                               "features cannot be mapped back onto the die grid)")
    method = check_method(method)
    maps = list(maps.maps if isinstance(maps, WaferMapSet) else maps)
    arrays = [np.asarray(m) for m in maps]
    for i, m in enumerate(arrays):
        if m.ndim != 2 or m.size == 0:
            raise InputError(None, f"map {i} is not a non-empty 2-D die-code array (shape {m.shape})")
    prepared = pipeline.prepare(arrays) if arrays else torch.zeros(0, pipeline.input_size, pipeline.input_size)
    probs = pipeline.predict_tensor(prepared) if arrays else np.zeros((0, len(pipeline.class_names)), np.float32)
    targets = resolve_targets(probs, pipeline.class_names, bool(pipeline.multilabel), target, threshold)
    net = explainable_copy(pipeline.net)
    dev = next(net.parameters()).device
    if not arrays:
        return CamResult([], probs, targets, method, layer or "")
    name, module = find_cam_layer(net, _encode(prepared[:1].to(dev)).float(), method in FINE_METHODS, layer)
    cams: list[np.ndarray] = []
    for s in range(0, len(arrays), batch_size):
        x = _encode(prepared[s:s + batch_size].to(dev)).float()
        small = cams_at_input(net, x, module, method, targets[s:s + batch_size])
        cams += [to_original(c, m.shape, m > 0) for c, m in zip(small, arrays[s:s + batch_size])]
    return CamResult(cams, probs, targets, method, name)


def explain_maps(pipeline: Any, maps: Any, target: Any = "predicted", method: str | None = None,
                 **kw: Any) -> np.ndarray:
    """CAMs (N, H, W) float32 in [0, 1] for wafer maps (see `map_explanations`; maps of mixed sizes: a 1-D
    object array of their 2-D CAMs, ``cams[i]`` always at map i's own size)."""
    return map_explanations(pipeline, maps, target, method, **kw).array()


# ---------------------------------------------------------------- inspection images

def _image_arrays(images: Any, mode: str, use_template: bool, templates: Sequence[Any] | None
                  ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """(images, templates) as decoded arrays from an ImageSet or in-memory arrays (colour converted to `mode`)."""
    from adrcs.data.image_set import ImageSet
    from adrcs.detector_pipeline import to_mode

    if isinstance(images, ImageSet):
        imgs = [images.read_image(i, mode) for i in range(len(images))]
        tmps = [images.read_template(i, mode) if use_template else None for i in range(len(images))]
        return imgs, tmps
    try:
        imgs = [to_mode(np.asarray(a), mode) for a in images]
        tmps = [to_mode(np.asarray(t), mode) if (use_template and t is not None) else None
                for t in (templates if templates is not None else [None] * len(imgs))]
    except ValueError as e:
        raise InputError(None, str(e)) from e
    if use_template and any(t is None for t in tmps):
        raise InputError(None, "this model needs a template for every image")
    return imgs, tmps


def image_explanations(pipeline: Any, images: Any, target: Any = "predicted", method: str | None = None, *,
                       templates: Sequence[Any] | None = None, layer: str | None = None,
                       batch_size: int = 16) -> CamResult:
    """CAMs of an `ImageClassifierPipeline` for `images` (an ImageSet or uint8 arrays (H, W) / (H, W, 3), with
    `templates` when the model uses them), each at its image's size in pixels."""
    from adrcs.engine.image_tensors import image_channels

    method = check_method(method)
    imgs, tmps = _image_arrays(images, pipeline.image_mode, pipeline.use_template, templates)
    x_all = torch.from_numpy(np.stack([image_channels(a, t, pipeline.input_size, pipeline.use_template)
                                       for a, t in zip(imgs, tmps)])) if imgs else None
    k = len(pipeline.class_names)
    probs = pipeline.predict_tensor(x_all) if imgs else np.zeros((0, k), np.float32)
    targets = resolve_targets(probs, pipeline.class_names, False, target)
    if not imgs:
        return CamResult([], probs, targets, method, layer or "")
    net = explainable_copy(pipeline.net)
    dev = next(net.parameters()).device

    def batch(s: int) -> torch.Tensor:
        return (x_all[s:s + batch_size].to(dev).float() / 255.0).contiguous(memory_format=torch.channels_last)

    name, module = find_cam_layer(net, batch(0)[:1], method in FINE_METHODS, layer)
    cams: list[np.ndarray] = []
    for s in range(0, len(imgs), batch_size):
        small = cams_at_input(net, batch(s), module, method, targets[s:s + batch_size])
        cams += [to_original(c, a.shape[:2]) for c, a in zip(small, imgs[s:s + batch_size])]
    return CamResult(cams, probs, targets, method, name)


def explain_images(pipeline: Any, images: Any, target: Any = "predicted", method: str | None = None,
                   **kw: Any) -> np.ndarray:
    """CAMs (N, H, W) float32 in [0, 1] for an image classifier (see `image_explanations`)."""
    return image_explanations(pipeline, images, target, method, **kw).array()


# ---------------------------------------------------------------- detectors

class _FinestLevel(nn.Module):
    """A detector's trunk + FPN as a plain module: normalised input -> the finest pyramid level (its `level`
    identity is the layer the CAM hooks)."""

    def __init__(self, det: nn.Module) -> None:
        super().__init__()
        self.det = det
        self.level = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.det.backbone(self.det.transform.normalize(x))
        return self.level(next(iter(feats.values())))


def check_detector_request(method: str | None, target: Any) -> str:
    """"eigencam" when `method` is None or eigencam and `target` None or "predicted"; else InputError (a detector
    has no one class score to explain)."""
    if method is not None and str(method).strip().lower() != "eigencam":
        raise InputError(None, f"detector explanations are class-agnostic: --method eigencam (got {method!r})")
    if target is not None and not (isinstance(target, str) and target.strip().lower() == "predicted"):
        raise InputError(None, f"detector explanations are class-agnostic: --target predicted only (got {target!r})")
    return "eigencam"


def detector_explanations(pipeline: Any, images: Any, *, templates: Sequence[Any] | None = None,
                          method: str | None = "eigencam", target: Any = None,
                          score_threshold: float | None = None) -> CamResult:
    """Class-agnostic CAMs of a `DetectorPipeline`: EigenCAM (no gradients, no targets) on the finest FPN level
    (stride 8: trunk features merged top-down), each at its image's size; the detections come along (boxes in
    the image's pixels). Other methods or a class target: InputError (the detector has no one class score)."""
    from adrcs.detector_pipeline import prepare_input

    check_detector_request(method, target)
    imgs, tmps = _image_arrays(images, pipeline.image_mode, pipeline.use_template, templates)
    try:
        xs = [prepare_input(a, t, pipeline.input_size, pipeline.use_template) for a, t in zip(imgs, tmps)]
    except ValueError as e:
        raise InputError(None, str(e)) from e
    sizes = [(a.shape[1], a.shape[0]) for a in imgs]
    dets = pipeline.predict_tensors(xs, sizes, score_threshold) if xs else []
    wrapper = explainable_copy(_FinestLevel(pipeline.net))
    dev = next(wrapper.parameters()).device
    cams: list[np.ndarray] = []
    for x, a in zip(xs, imgs):
        small = cams_at_input(wrapper, x[None].to(dev), wrapper.level, "eigencam", None)
        cams.append(to_original(small[0], a.shape[:2]))
    return CamResult(cams, np.zeros((len(imgs), 0), np.float32), [[] for _ in imgs], "eigencam",
                     "backbone.fpn (finest level)", dets)


def explain_detections(pipeline: Any, images: Any, **kw: Any) -> np.ndarray:
    """Class-agnostic CAMs (N, H, W) float32 in [0, 1] for a detector (see `detector_explanations`)."""
    return detector_explanations(pipeline, images, **kw).array()
