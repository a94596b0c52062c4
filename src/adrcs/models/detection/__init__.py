"""Defect detectors (boxes + classes) for inspection images: torchvision models trained from scratch.

`create_detector(name, num_classes, in_chans=1)` builds one; `list_detectors()` names them.
Families: FCOS (`fcos.py`), RetinaNet (`retinanet.py`), Faster R-CNN (`faster_rcnn.py`), each
at resnet18 width (`*_r18`) and quarter width (`*_r18_slim`, CPU-practical). Labels follow
torchvision: 0 is background, defect class c is label c + 1 (`LABEL_OFFSET`).
"""
from adrcs.models.detection.registry import (DEFAULT_DETECTOR, create_detector, detector_preset, list_detectors,
                                             register_detector)
from adrcs.models.detection.backbone import count_parameters
from adrcs.models.detection.reference import reference_channels
from adrcs.models.detection import faster_rcnn, fcos, retinanet  # noqa: F401  (registers)

LABEL_OFFSET = 1
"""Detector label = class index + LABEL_OFFSET (0 is torchvision's background)."""

__all__ = ["DEFAULT_DETECTOR", "LABEL_OFFSET", "count_parameters", "create_detector", "detector_preset",
           "list_detectors", "reference_channels", "register_detector"]
