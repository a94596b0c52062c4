"""1-D classifiers for selected sinogram features: registry, forward shapes, parameter counts."""
import pytest
import torch

from adrcs.errors import InputError
from adrcs.models import create_model, list_models

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEQUENCE_MODELS = ["cnn1d", "inception1d", "lenet5_1d", "resnet50_1d", "vgg16_1d"]


def test_registry_separates_map_and_sequence_models():
    assert list_models("sequence") == SEQUENCE_MODELS
    assert set(list_models("map")) == {"cnn", "ffn"}


@pytest.mark.parametrize("name,kwargs", [("cnn1d", {}), ("lenet5_1d", {}), ("inception1d", {"width": 8}),
                                         ("vgg16_1d", {"width": 8, "hidden": 32}),
                                         ("resnet50_1d", {"width": 8})])
@pytest.mark.parametrize("length", [5, 64, 301])
def test_forward_shapes(name, kwargs, length):
    torch.manual_seed(0)
    net = create_model(name, num_classes=9, **kwargs).eval()
    x = torch.randn(3, length)
    out = net(x)
    assert out.shape == (3, 9) and torch.isfinite(out).all()
    assert net.forward_features(x.unsqueeze(1)).shape == (3, net.num_features)
    p = net.predict_proba(x)
    torch.testing.assert_close(p.sum(1), torch.ones(3))


def test_parameter_counts():
    count = {n: sum(p.numel() for p in create_model(n, num_classes=9).parameters()) for n in SEQUENCE_MODELS}
    assert 160_000 <= count["cnn1d"] <= 200_000  # the paper's proposed 1DCNN: about 180 K
    assert count["lenet5_1d"] < count["cnn1d"] < count["vgg16_1d"] < count["resnet50_1d"]
    assert count["resnet50_1d"] > 10_000_000  # full-width ResNet-50 shape (3-4-6-3 bottlenecks)


def test_multilabel_head():
    net = create_model("cnn1d", num_classes=4, multilabel=True).eval()
    p = net.predict_proba(torch.randn(2, 40))
    assert ((p >= 0) & (p <= 1)).all() and not torch.allclose(p.sum(1), torch.ones(2))


def test_config_rejects_sequence_model_for_wafer_maps():
    from adrcs.config import load_config

    with pytest.raises(InputError, match="1-D feature vectors"):
        load_config(None, {"model": "cnn1d"})


def test_cnn1d_positions_head_keeps_feature_order():
    """positions > 0: the FC sees P pooled positions (the paper's conv-pool-FC), any input length."""
    torch.manual_seed(0)
    net = create_model("cnn1d", num_classes=5, positions=8).eval()
    assert net.num_features == 8 * 128
    for length in (5, 150, 333):
        assert net(torch.randn(3, length)).shape == (3, 5)
    pooled = create_model("cnn1d", num_classes=5).eval()
    assert pooled.global_pool and not net.global_pool


@pytest.mark.parametrize("length", [1, 7, 16, 43, 100])
def test_position_pool_equals_adaptive_average_pooling(length):
    from adrcs.models.cnn1d import PositionPool

    x = torch.randn(2, 3, length)
    torch.testing.assert_close(PositionPool(16)(x), torch.nn.AdaptiveAvgPool1d(16)(x))


def test_cnn1d_positions_head_exports_to_onnx_for_any_length(tmp_path):
    import warnings

    import numpy as np
    import onnxruntime as ort

    net = create_model("cnn1d", num_classes=4, positions=16).eval()
    x = torch.randn(3, 343)  # 43 positions after the three pools: not a multiple of 16
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(tmp_path / "m.onnx"), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}}, opset_version=17)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": x.numpy()})[0]
    assert np.abs(got - net(x).detach().numpy()).max() < 1e-4
