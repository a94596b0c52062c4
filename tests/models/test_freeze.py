"""Frozen TorchScript serving of wafer-map classifiers (`Pipeline.freeze`, `models.freeze`)."""
import numpy as np
import pytest
import torch

from adrcs.models import create_model
from adrcs.models.freeze import freeze_predict_proba
from adrcs.pipeline import Pipeline


def _pipeline(name: str, multilabel: bool = False, **args) -> Pipeline:
    torch.manual_seed(0)
    net = create_model(name, num_classes=4, multilabel=multilabel, **args).eval()
    return Pipeline(net=net, model_name=name, model_args=args, class_names=list("abcd"), multilabel=multilabel,
                    input_size=24)


@pytest.mark.slow
@pytest.mark.parametrize("name,multilabel,args", [("ffn", False, {"width": 8}), ("ffn", True, {"width": 8}),
                                                  ("cnn", False, {})])
def test_frozen_pipeline_matches_eager_for_any_batch_size(name, multilabel, args):
    pipe = _pipeline(name, multilabel, **args)
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, 3, (int(rng.integers(10, 40)), int(rng.integers(10, 40))), dtype=np.uint8)
            for _ in range(9)]
    eager = pipe.predict_proba(maps)
    assert pipe.freeze() and pipe.proba_fn is not None
    for n in (1, 3, 9):  # traced on 4 maps: other batch sizes must give the same numbers
        np.testing.assert_allclose(pipe.predict_proba(maps[:n]), eager[:n], atol=1e-5)


class _ShapeDependent(torch.nn.Module):
    """Python control flow on the batch size: tracing freezes one branch, so the frozen copy is wrong."""

    multilabel = False

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        y = x.flatten(1)[:, :2]
        return torch.softmax(y if x.shape[0] > 1 else -y, dim=1)


def test_a_model_that_does_not_trace_faithfully_stays_eager():
    x = torch.rand(4, 3, 8, 8)
    assert freeze_predict_proba(_ShapeDependent(), x) is None
