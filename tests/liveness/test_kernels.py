"""Each Numba kernel equals its NumPy reference on random and structured inputs."""

import numpy as np
import pytest

from edge.liveness import kernels, reference

RNG = np.random.default_rng(7)
SHAPES = [(3, 3), (17, 23), (112, 112), (160, 121)]


@pytest.mark.parametrize("shape", SHAPES)
def test_lbp(shape):
    grey = RNG.integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_allclose(kernels.lbp_histogram(grey), reference.lbp_histogram(grey), atol=1e-7)
    flat = np.full(shape, 9, np.uint8)  # all neighbours >= centre: code 255 everywhere
    assert kernels.lbp_histogram(flat)[255] == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(16, 16), (64, 48), (112, 112)])
def test_spectral_peak_ratio(shape):
    mag = RNG.random(shape).astype(np.float32) + 0.1
    assert kernels.spectral_peak_ratio(mag, 0.3) == pytest.approx(reference.spectral_peak_ratio(mag, 0.3), rel=1e-6)
    mag[shape[0] // 2, shape[1] // 2 + int(shape[1] * 0.4)] = 100.0  # a moire-like peak
    assert kernels.spectral_peak_ratio(mag, 0.3) > 50


@pytest.mark.parametrize("shape", SHAPES)
def test_glare_block_fraction(shape):
    grey = RNG.integers(200, 256, shape, dtype=np.uint8)
    for blocks in (1, 2, 4):
        assert kernels.glare_block_fraction(grey, 250, blocks) == pytest.approx(
            reference.glare_block_fraction(grey, 250, blocks))


@pytest.mark.parametrize("shape", SHAPES)
def test_straight_edge_profile(shape):
    grey = RNG.integers(0, 256, shape, dtype=np.uint8)
    for got, want in zip(kernels.straight_edge_profile(grey, 60), reference.straight_edge_profile(grey, 60),
                         strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    edge = np.zeros((50, 50), np.uint8)
    edge[:, 25:] = 200
    cols, _ = kernels.straight_edge_profile(edge, 60)
    assert cols[24] == pytest.approx(1.0) and cols[10] == 0


@pytest.mark.parametrize("shape", SHAPES)
def test_colour_stats(shape):
    bgr = RNG.integers(0, 256, (*shape, 3), dtype=np.uint8)
    np.testing.assert_allclose(kernels.colour_stats(bgr), reference.colour_stats(bgr), rtol=1e-5, atol=1e-6)
    grey = np.repeat(RNG.integers(0, 256, shape, dtype=np.uint8)[..., None], 3, axis=2)
    assert kernels.colour_stats(grey)[1] == pytest.approx(0.0, abs=1e-9)  # no chroma in a grey image
