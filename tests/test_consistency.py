"""The consistency projection and map against the degradations the protocol makes LR with."""

from __future__ import annotations

import numpy as np
import pytest

from medsr.consistency import axis_operator, consistency_map, downscale, input_noise, project
from medsr.degrade.bicubic import pil_resize
from medsr.degrade.realistic import box_downscale, box_noise


def smooth_image(shape=(64, 48, 1), seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]] / 10.0
    base = 0.5 + 0.2 * np.sin(y) * np.cos(1.3 * x)
    return np.clip(base[..., None] + 0.05 * rng.normal(size=shape), 0, 1).astype(np.float32)


def test_bicubic_operator_is_pillows_float_resize():
    hr = smooth_image()
    expected = pil_resize(hr, (16, 12), "bicubic", bit_depth=16)  # the protocol's path for deep images
    np.testing.assert_allclose(downscale(hr, 4, "bicubic"), expected, atol=1e-6)


def test_box_operator_is_the_detector_average():
    hr = smooth_image((32, 32, 3))
    np.testing.assert_allclose(downscale(hr, 4, "box"), box_downscale(hr, 4), atol=1e-6)
    assert axis_operator(8, 4, "box").tolist() == [[0.25] * 4 + [0] * 4, [0] * 4 + [0.25] * 4]


@pytest.mark.parametrize("scale", [4, (1, 4), 2])
def test_projection_makes_bicubic_degradation_give_the_input(scale):
    hr = smooth_image()
    sy, sx = (scale, scale) if isinstance(scale, int) else scale
    lr = pil_resize(smooth_image(seed=1), (64 // sy, 48 // sx), "bicubic", bit_depth=16)  # another image's LR
    projected = project(hr, lr, scale, "bicubic")
    before = np.abs(pil_resize(hr, lr.shape[:2], "bicubic", 16) - lr).max()
    after = np.abs(pil_resize(projected, lr.shape[:2], "bicubic", 16) - lr).max()
    assert before > 0.01 and after < 2e-6


def test_projection_makes_box_degradation_give_the_noisy_input():
    hr = smooth_image((48, 48, 1))
    lr = box_noise(hr, 4, bit_depth=16, rng=np.random.default_rng(0), noise_sigma=2.0)
    sr = np.repeat(np.repeat(box_downscale(hr, 4), 4, 0), 4, 1)  # nearest upscale of the noise-free LR
    projected = project(sr, lr, 4, "box")
    np.testing.assert_allclose(box_downscale(projected, 4), lr, atol=1e-6)
    # the least change: the correction is the residual spread evenly over each block
    np.testing.assert_allclose(projected - sr, np.repeat(np.repeat(lr - box_downscale(sr, 4), 4, 0), 4, 1),
                               atol=1e-6)


def test_projection_of_a_consistent_image_changes_nothing():
    hr = smooth_image()
    lr = downscale(hr, 4, "bicubic")
    np.testing.assert_allclose(project(hr, lr, 4, "bicubic"), hr, atol=1e-6)


def test_consistency_map_is_the_noise_in_units_of_the_noise():
    rng = np.random.default_rng(3)
    hr = np.full((256, 256, 1), 0.5, dtype=np.float32)
    noise = 3.0 / 255.0
    lr = (box_downscale(hr, 4) + rng.normal(0, noise, size=(64, 64, 1))).astype(np.float32)
    assert input_noise(lr)[0] == pytest.approx(noise, rel=0.15)
    clean = consistency_map(hr, lr, 4, "box")  # a perfect denoiser: it disagrees by the noise only
    assert clean.shape == (64, 64, 1) and np.std(clean) == pytest.approx(1.0, rel=0.15)
    invented = hr.copy()
    invented[100:120, 100:120] += 0.1  # something the input does not hold
    marked = np.abs(consistency_map(invented, lr, 4, "box"))[..., 0]
    assert marked[26:29, 26:29].min() > 4 and np.median(marked) < 2


def test_input_noise_is_floored_at_quantisation():
    flat = np.full((32, 32, 1), 0.5)
    assert input_noise(flat, 255.0)[0] == pytest.approx(1 / (255 * np.sqrt(12)))


def test_mismatched_shapes_and_kernels_are_refused():
    with pytest.raises(ValueError, match="does not match"):
        project(np.zeros((16, 16, 1)), np.zeros((5, 4, 1)), 4)
    with pytest.raises(ValueError, match="unknown consistency kernel"):
        downscale(np.zeros((16, 16, 1)), 4, "gaussian")
