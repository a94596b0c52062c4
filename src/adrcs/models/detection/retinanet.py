"""RetinaNet (anchor-based, one stage, focal loss) on a from-scratch ResNet-18-style FPN.

Anchors are sized for small inspection defects: P3..P6 with base sizes 16/32/64/128 px, three
scales per octave and aspect ratios 1:2, 1:1, 2:1 (torchvision's default starts at 32 px on P3-P7).
The head uses GroupNorm (RetinaNet v2 style), which trains from scratch far better than v1's none.
"""
from __future__ import annotations

from typing import Any, Sequence

from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead

from adrcs.models.detection.backbone import fpn_backbone, group_norm, input_stats, num_levels
from adrcs.models.detection.registry import register_detector


def build_retinanet(num_classes: int, in_chans: int = 1, min_size: int = 640, max_size: int = 640, *,
                    width_mult: float = 1.0, fpn_channels: int = 128, norm: str = "bn",
                    returned_layers: Sequence[int] = (2, 3, 4), extra: str = "maxpool",
                    anchor_sizes: Sequence[float] = (16, 32, 64, 128),
                    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
                    score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100,
                    image_mean: Any = None, image_std: Any = None, **kw: Any) -> RetinaNet:
    """RetinaNet with `num_classes` defect classes (+1 background slot: labels are 1-based).

    anchor_sizes: one base size per pyramid level (3 octave scales are added to each).
    """
    backbone = fpn_backbone(in_chans, width_mult, fpn_channels, returned_layers, extra, norm)
    n = num_levels(returned_layers, extra)
    if len(anchor_sizes) != n:
        raise ValueError(f"anchor_sizes needs one entry per pyramid level ({n}), got {len(anchor_sizes)}")
    sizes = tuple(tuple(float(s) * 2 ** (k / 3) for k in range(3)) for s in anchor_sizes)
    anchors = AnchorGenerator(sizes, (tuple(float(a) for a in aspect_ratios),) * n)
    head = RetinaNetHead(fpn_channels, anchors.num_anchors_per_location()[0], num_classes + 1,
                         norm_layer=group_norm)
    mean, std = input_stats(in_chans, image_mean, image_std)
    return RetinaNet(backbone, num_classes + 1, min_size=min_size, max_size=max_size, image_mean=mean,
                     image_std=std, anchor_generator=anchors, head=head, score_thresh=score_thresh,
                     nms_thresh=nms_thresh, detections_per_img=detections_per_img, **kw)


register_detector("retinanet_r18", build_retinanet, width_mult=1.0, fpn_channels=128)
register_detector("retinanet_r18_slim", build_retinanet, width_mult=0.25, fpn_channels=64)
