"""Batched torch Radon transform: shape, agreement with scikit-image, pool size."""
import numpy as np
import pytest
import torch

from adrcs.features.radon import RadonFeatures, radon_batch


def test_matches_skimage():
    from skimage.transform import radon as skimage_radon  # the test extra: always installed
    rng = np.random.default_rng(0)
    s = 13
    yy, xx = np.mgrid[:s, :s]
    inside = (yy - s // 2) ** 2 + (xx - s // 2) ** 2 <= (s // 2) ** 2  # circle=True needs zeros outside
    img = rng.random((s, s)) * inside
    theta = np.arange(s) * 180.0 / s
    ours = radon_batch(torch.tensor(img, dtype=torch.float32)[None, None], theta)[0, 0].numpy()
    np.testing.assert_allclose(ours, skimage_radon(img, theta=theta, circle=True), atol=1e-4)


def test_feature_pool_shape_and_rotation():
    codes = np.random.default_rng(1).random((5, 4, 10, 10)).astype(np.float32)
    feats = RadonFeatures().fit_transform(codes)
    assert feats.shape == (5, 4 * 10 * 10)  # m*n*c/4 for 20x20 maps encoded to 10x10x4
    assert RadonFeatures(angles=6).transform(codes).shape == (5, 4 * 10 * 6)
    # angle 0 is the plain column sum
    sino = radon_batch(torch.from_numpy(codes), [0.0])
    torch.testing.assert_close(sino[..., 0], torch.from_numpy(codes).sum(dim=2))
    with pytest.raises(ValueError, match="square"):
        radon_batch(torch.zeros(1, 1, 4, 6), [0.0])
