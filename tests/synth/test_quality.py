"""Quality metrics: identical sets -> ~0 distance, disjoint classes -> large; memorisation check."""
import numpy as np
import pytest

from adrcs.metrics.generative import frechet_distance, kernel_distance, memorised_share, nearest_copy_distance


def test_frechet_and_kid_sanity():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 8))
    b = rng.normal(size=(300, 8))
    far = rng.normal(loc=5.0, size=(300, 8))
    assert frechet_distance(a, a) < 1e-6
    assert frechet_distance(a, b) < 1.0 and frechet_distance(a, far) > 100
    # same distribution: KID within noise of 0, tiny against a shifted one
    far_kid = kernel_distance(a, far)
    assert far_kid > 1000 and abs(kernel_distance(a, b)) < 1e-4 * far_kid
    assert abs(kernel_distance(a, a)) < 1e-4 * far_kid
    # one subset of the whole set: the unbiased estimator's exact value for identical samples
    x = a[:50]
    k = (x @ x.T / x.shape[1] + 1) ** 3
    n, total, diag = len(x), k.sum(), np.trace(k)
    expected = 2 * (total - diag) / (n * (n - 1)) - 2 * total / n ** 2
    assert kernel_distance(x, x, subset_size=50, subsets=1) == pytest.approx(expected, rel=1e-9)
    assert np.isnan(frechet_distance(a[:1], b))


def test_memorisation_check():
    from helpers.wafers import make_wafer

    rng = np.random.default_rng(1)
    train = np.stack([make_wafer("scratch", 20, rng) for _ in range(6)])
    rotated = np.stack([np.rot90(m, 1)[:, ::-1] for m in train])
    noise = rng.integers(0, 3, size=(6, 20, 20)).astype(np.uint8)
    np.testing.assert_allclose(nearest_copy_distance(rotated, train), 0.0)
    share, dist = memorised_share(rotated, train)
    assert share == 1.0 and dist == 0.0
    share, dist = memorised_share(noise, train)
    assert share == 0.0 and dist > 0.3


def test_classifier_feature_space_distances(tmp_path):
    """Real classifier features: a class vs itself ~0, vs another class large."""
    import torch

    from adrcs.models import create_model
    from adrcs.pipeline import Pipeline
    from adrcs.synth.evaluate import classifier_features
    from helpers.wafers import make_wafer

    torch.manual_seed(0)
    net = create_model("ffn", num_classes=2, width=8).eval()
    pipe = Pipeline(net=net, model_name="ffn", model_args={"width": 8}, class_names=["Center", "Edge-Ring"],
                    multilabel=False, input_size=16)
    rng = np.random.default_rng(2)
    center = [make_wafer("center", 24, rng) for _ in range(60)]
    ring = [make_wafer("edge_ring", 24, rng) for _ in range(60)]
    fc, pc = classifier_features(pipe, center)
    fr, _ = classifier_features(pipe, ring)
    assert fc.shape == (60, net.num_features) and pc.shape == (60, 2)
    assert frechet_distance(fc[:30], fc[30:]) < 0.2 * frechet_distance(fc, fr)
