"""DetectorModule + the default detector: a few dozen steps on 4 synthetic images lift mAP@0.5 clearly."""
from __future__ import annotations

import json
import logging

import lightning as L
import pytest
import torch
from helpers.images import make_box_set
from torch.utils.data import DataLoader

from adrcs.engine.detection_data import DetectionDataset, detection_collate
from adrcs.engine.detector_module import DetectorModule, warmup_cosine
from adrcs.models.detection import DEFAULT_DETECTOR

SIZE = 128


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_default_detector_overfits_four_images(tmp_path):
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    L.seed_everything(0, verbose=False)
    images = make_box_set(tmp_path / "imgs", n=4, size=SIZE, seed=0)
    loader = DataLoader(DetectionDataset(images, size=SIZE), batch_size=4, collate_fn=detection_collate)
    module = DetectorModule(DEFAULT_DETECTOR, num_classes=2, class_names=images.class_names, min_size=SIZE,
                            max_size=SIZE, lr=1e-3, scheduler="cosine")
    before = module.evaluate(loader)
    steps = 40
    trainer = L.Trainer(max_epochs=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        check_val_every_n_epoch=steps, default_root_dir=tmp_path)
    trainer.fit(module, loader, loader)
    assert trainer.global_step == steps
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert {"train_loss", "val_map_50", "val_map_50_95", "val_f1"} <= set(m)
    assert before["map_50"] < 0.2
    assert m["val_map_50"] > before["map_50"] + 0.5, (before["map_50"], m)
    assert len(module.val_predictions) == len(module.val_targets) == 4
    after = module.evaluate(loader)
    assert after["map_50"] == pytest.approx(m["val_map_50"], abs=1e-4)
    json.dumps(after, allow_nan=False)


def test_optimizer_choices():
    module = DetectorModule(DEFAULT_DETECTOR, num_classes=2, optimizer="sgd", lr=0.01, scheduler="none")
    opt = module.configure_optimizers()
    assert isinstance(opt, torch.optim.SGD)
    assert opt.param_groups[1]["weight_decay"] == 0.0  # norms and biases are not decayed
    f = warmup_cosine(100, warmup_steps=10)
    assert f(0) < f(9) <= 1.0 and f(10) == pytest.approx(1.0) and f(99) < 0.05
    with pytest.raises(ValueError, match="optimizer"):
        DetectorModule(num_classes=2, optimizer="lbfgs")
