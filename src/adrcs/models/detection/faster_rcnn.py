"""Faster R-CNN (two stage: RPN + RoIAlign box head) on a from-scratch ResNet-18-style FPN.

Pyramid P2..P5 plus a max-pooled P6 (strides 4-64) with RPN anchors of 16/32/64/128/256 px, so
the smallest DeepPCB defects (~20 px) get anchors of their size. Proposal counts are trimmed
from torchvision's COCO defaults (a PCB image has a handful of defects, not dozens of objects).
"""
from __future__ import annotations

from typing import Any, Sequence

from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FasterRCNN, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign

from adrcs.models.detection.backbone import fpn_backbone, input_stats, num_levels
from adrcs.models.detection.registry import register_detector


def build_faster_rcnn(num_classes: int, in_chans: int = 1, min_size: int = 640, max_size: int = 640, *,
                      width_mult: float = 1.0, fpn_channels: int = 128, norm: str = "bn",
                      returned_layers: Sequence[int] = (1, 2, 3, 4), extra: str = "maxpool",
                      anchor_sizes: Sequence[float] = (16, 32, 64, 128, 256),
                      aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0), representation_size: int = 512,
                      score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100,
                      image_mean: Any = None, image_std: Any = None, **kw: Any) -> FasterRCNN:
    """Faster R-CNN with `num_classes` defect classes (+1 background: labels are 1-based).

    anchor_sizes: one RPN anchor size per pyramid level; representation_size: box-head MLP width;
    kw: passed on to torchvision's FasterRCNN (e.g. ``rpn_post_nms_top_n_test``).
    """
    backbone = fpn_backbone(in_chans, width_mult, fpn_channels, returned_layers, extra, norm)
    n = num_levels(returned_layers, extra)
    if len(anchor_sizes) != n:
        raise ValueError(f"anchor_sizes needs one entry per pyramid level ({n}), got {len(anchor_sizes)}")
    anchors = AnchorGenerator(tuple((float(s),) for s in anchor_sizes),
                              (tuple(float(a) for a in aspect_ratios),) * n)
    rpn_head = RPNHead(fpn_channels, anchors.num_anchors_per_location()[0])
    names = [str(i) for i in range(len(returned_layers))]  # RoIAlign on the trunk levels, not the pooled one
    roi_pool = MultiScaleRoIAlign(featmap_names=names, output_size=7, sampling_ratio=2)
    box_head = TwoMLPHead(fpn_channels * 7 * 7, representation_size)
    predictor = FastRCNNPredictor(representation_size, num_classes + 1)
    mean, std = input_stats(in_chans, image_mean, image_std)
    settings = dict(rpn_pre_nms_top_n_train=1000, rpn_post_nms_top_n_train=1000, rpn_pre_nms_top_n_test=500,
                    rpn_post_nms_top_n_test=300, box_batch_size_per_image=256)
    settings.update(kw)
    return FasterRCNN(backbone, None, min_size=min_size, max_size=max_size, image_mean=mean, image_std=std,
                      rpn_anchor_generator=anchors, rpn_head=rpn_head, box_roi_pool=roi_pool, box_head=box_head,
                      box_predictor=predictor, box_score_thresh=score_thresh, box_nms_thresh=nms_thresh,
                      box_detections_per_img=detections_per_img, **settings)


register_detector("faster_rcnn_r18", build_faster_rcnn, width_mult=1.0, fpn_channels=128)
register_detector("faster_rcnn_r18_slim", build_faster_rcnn, width_mult=0.25, fpn_channels=64,
                  representation_size=256)
