"""The task registry: one place knows each saved-model kind and its checkpoint format."""
from pathlib import Path

import pytest
import torch

from adrcs.errors import InputError
from adrcs.tasks import checkpoint_format, get_task, task_names, task_of


def test_registry_lists_every_task_with_its_pipeline_format():
    from adrcs.detector_pipeline import DETECTOR_FORMAT
    from adrcs.image_classifier_pipeline import IMAGE_CLASSIFIER_FORMAT
    from adrcs.pipeline import CHECKPOINT_FORMAT

    assert task_names() == ("wafer", "detect", "image_classify")
    assert task_names(image=True) == ("detect", "image_classify")
    assert [get_task(n).format for n in task_names()] == [CHECKPOINT_FORMAT, DETECTOR_FORMAT, IMAGE_CLASSIFIER_FORMAT]
    with pytest.raises(InputError, match="unknown task 'segment'"):
        get_task("segment")


@pytest.mark.parametrize("name", ["wafer", "detect", "image_classify"])
def test_task_of_reads_the_checkpoint_format(tmp_path: Path, name: str):
    torch.save({"format": get_task(name).format}, tmp_path / "model.ckpt")
    assert task_of(tmp_path).name == name and checkpoint_format(tmp_path / "model.ckpt") == get_task(name).format


def test_task_of_refuses_what_is_not_a_run(tmp_path: Path):
    with pytest.raises(InputError, match="no model.ckpt"):
        task_of(tmp_path)
    (tmp_path / "model.ckpt").write_bytes(b"\xff\xd8\xff\xe0 a JPEG")
    with pytest.raises(InputError, match="not an ADRCS model checkpoint"):
        task_of(tmp_path)
    torch.save({"format": "someone-else/3"}, tmp_path / "model.ckpt")
    with pytest.raises(InputError, match="someone-else/3"):
        task_of(tmp_path)


def test_a_new_task_is_one_registration(tmp_path: Path):
    from adrcs.tasks import Task, register_task
    from adrcs.tasks.registry import _TASKS

    t = Task(name="toy", format="adrcs-toy/1", what="toy", image=False, train=lambda c, r, s: "trained",
             evaluate=lambda m, r, s: None, predict=lambda m, r, s: None, load=lambda p, d: "model")
    register_task(t)
    try:
        torch.save({"format": "adrcs-toy/1"}, tmp_path / "model.ckpt")
        assert task_of(tmp_path) is t and get_task("toy").load(tmp_path, "cpu") == "model"
    finally:
        _TASKS.pop("toy")
