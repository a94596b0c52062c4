"""FCOS (anchor-free, one stage) on a from-scratch ResNet-18-style FPN.

Pyramid P3..P6 (strides 8-64): FCOS assigns a box to the level where its largest centre-to-edge
distance falls in [4, 8] x stride (P3 takes everything up to 64 px, P6 everything above 256 px),
which covers DeepPCB's 20-170 px defects with P3-P4.
"""
from __future__ import annotations

from typing import Any, Sequence

from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOS, FCOSClassificationHead, FCOSHead, FCOSRegressionHead

from adrcs.models.detection.backbone import fpn_backbone, group_norm, input_stats, level_strides
from adrcs.models.detection.registry import register_detector


def build_fcos(num_classes: int, in_chans: int = 1, min_size: int = 640, max_size: int = 640, *,
               width_mult: float = 1.0, fpn_channels: int = 128, head_convs: int = 4, norm: str = "bn",
               returned_layers: Sequence[int] = (2, 3, 4), extra: str = "maxpool",
               score_thresh: float = 0.05, nms_thresh: float = 0.6, detections_per_img: int = 100,
               image_mean: Any = None, image_std: Any = None, **kw: Any) -> FCOS:
    """FCOS with `num_classes` defect classes (+1 background slot: labels are 1-based).

    width_mult: trunk width relative to resnet18; fpn_channels: pyramid and head width;
    head_convs: conv layers per head branch (GroupNorm); kw: passed on to torchvision's FCOS.
    """
    backbone = fpn_backbone(in_chans, width_mult, fpn_channels, returned_layers, extra, norm)
    strides = level_strides(returned_layers, extra)
    anchors = AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides))  # anchor size == stride
    head = FCOSHead(fpn_channels, 1, num_classes + 1, head_convs)
    head.classification_head = FCOSClassificationHead(fpn_channels, 1, num_classes + 1, head_convs,
                                                      norm_layer=group_norm)
    head.regression_head = FCOSRegressionHead(fpn_channels, 1, head_convs, norm_layer=group_norm)
    mean, std = input_stats(in_chans, image_mean, image_std)
    return FCOS(backbone, num_classes + 1, min_size=min_size, max_size=max_size, image_mean=mean, image_std=std,
                anchor_generator=anchors, head=head, score_thresh=score_thresh, nms_thresh=nms_thresh,
                detections_per_img=detections_per_img, **kw)


register_detector("fcos_r18", build_fcos, width_mult=1.0, fpn_channels=128, head_convs=4)
register_detector("fcos_r18_slim", build_fcos, width_mult=0.25, fpn_channels=64, head_convs=2)
