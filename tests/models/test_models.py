import pytest
import torch

from adrcs.models import create_model, list_models


@pytest.mark.parametrize("name", ["ffn", "cnn"])
@pytest.mark.parametrize("size", [16, 48])
def test_single_label_output(name, size):
    m = create_model(name, num_classes=9).eval()
    x = torch.rand(4, 3, size, size)
    assert m(x).shape == (4, 9)
    p = m.predict_proba(x)
    assert torch.allclose(p.sum(1), torch.ones(4), atol=1e-5)


@pytest.mark.parametrize("name", ["ffn", "cnn"])
def test_multi_label_output(name):
    m = create_model(name, num_classes=8, multilabel=True).eval()
    p = m.predict_proba(torch.rand(3, 3, 56, 56))
    assert p.shape == (3, 8)
    assert ((p > 0) & (p < 1)).all() and not torch.allclose(p.sum(1), torch.ones(3))


def test_registry():
    assert {"ffn", "cnn"} <= set(list_models())
    with pytest.raises(ValueError, match="unknown model"):
        create_model("nope", num_classes=2)


def test_ffn_has_three_branches_fused():
    m = create_model("ffn", num_classes=9, width=8)
    assert len(m.branches) == 3
    feats = m.forward_features(torch.rand(2, 3, 32, 32))
    assert feats.shape == (2, m.num_features) == (2, 3 * 4 * 8)


@pytest.mark.parametrize("name", ["ffn", "cnn"])
def test_fuse_conv_bn_is_exact(name):
    from adrcs.models.fuse import fuse_conv_bn

    torch.manual_seed(0)
    m = create_model(name, num_classes=5)
    m.train()
    for _ in range(3):  # give BatchNorm non-trivial running statistics
        m(torch.rand(8, 3, 32, 32))
    m.eval()
    x = torch.rand(4, 3, 32, 32)
    ref = m(x)
    fused = fuse_conv_bn(m)
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in fused.modules())
    assert torch.allclose(fused(x), ref, atol=1e-4)
