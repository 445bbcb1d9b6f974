"""The ``realistic`` and ``box-noise`` degradations: kernels, noise, JPEG, reproducibility, parameters."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage.measure import block_reduce

from medsr.degrade import get_degradation, lr_scale, lr_shape, parse_params
from medsr.degrade.bicubic import pil_resize
from medsr.degrade.realistic import box_downscale, box_noise, jpeg_roundtrip, realistic
from medsr.errors import ConfigError

CLEAN = {"noise_sigma": 0.0, "poisson_prob": 0.0, "jpeg_prob": 0.0}
LEVEL = 1.0 / 255.0


def _hr(height: int = 48, width: int = 64, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A random textured image on 8-bit levels, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (height, width, channels)) / 255.0).astype(np.float32)


def _smooth_hr(height: int, width: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A smooth random image in [0.1, 0.9] on 8-bit levels: no bicubic overshoot to clip."""
    from scipy.ndimage import gaussian_filter

    image = gaussian_filter(np.random.default_rng(seed).random((height, width, channels)), (1.5, 1.5, 0))
    image = 0.1 + 0.8 * (image - image.min()) / (image.max() - image.min())
    return (np.rint(image * 255.0) / 255.0).astype(np.float32)


def _on_8bit_levels(image: np.ndarray) -> bool:
    return bool(np.all(np.abs(image * 255.0 - np.rint(image * 255.0)) < 1e-3))


def _quantised(image: np.ndarray) -> np.ndarray:
    return (np.rint(np.clip(image, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def _box_loop(image: np.ndarray, scale: int) -> np.ndarray:
    height, width, channels = image.shape
    out = np.zeros((height // scale, width // scale, channels))
    for y in range(height // scale):
        for x in range(width // scale):
            for c in range(channels):
                out[y, x, c] = sum(
                    float(image[y * scale + i, x * scale + j, c]) for i in range(scale) for j in range(scale)
                ) / scale**2
    return out


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", ["realistic", "box-noise"])
def test_shapes_dtype_range_and_8bit_levels(name, scale, channels):
    hr = _hr(48, 36, channels)
    fn = get_degradation(name)
    for seed in range(4):
        lr = fn(hr, scale, rng=np.random.default_rng(seed))
        assert lr.shape == (48 // scale, 36 // scale, channels)
        assert lr.dtype == np.float32
        assert lr.min() >= 0.0 and lr.max() <= 1.0
        assert _on_8bit_levels(lr)


def test_jpeg_output_is_on_8bit_levels_too():
    lr = realistic(_hr(32, 32, 3), 2, rng=np.random.default_rng(0), jpeg_prob=1.0)
    assert lr.dtype == np.float32 and lr.shape == (16, 16, 3) and _on_8bit_levels(lr)


def test_deep_data_stay_float_and_skip_jpeg():
    hr = (np.random.default_rng(3).random((32, 32, 1))).astype(np.float32)
    lr = realistic(hr, 4, bit_depth=16, rng=np.random.default_rng(0), kernels="box", **CLEAN)
    np.testing.assert_allclose(lr, box_downscale(hr, 4), rtol=0, atol=1e-7)
    assert not _on_8bit_levels(lr)
    params = {"kernels": "box", "noise_sigma": 0.0, "poisson_prob": 0.0}
    with_jpeg = realistic(hr, 4, bit_depth=16, rng=np.random.default_rng(0), jpeg_prob=1.0, **params)
    np.testing.assert_array_equal(with_jpeg, lr)  # JPEG is 8-bit only


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_box_downscale_is_the_block_mean(scale):
    image = np.random.default_rng(scale).random((12, 24, 3)).astype(np.float32)
    got = box_downscale(image, scale)
    assert got.dtype == np.float32 and got.shape == (12 // scale, 24 // scale, 3)
    np.testing.assert_allclose(got, block_reduce(image.astype(np.float64), (scale, scale, 1), np.mean), atol=1e-6)
    np.testing.assert_allclose(got, _box_loop(image, scale), atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_box_kernel_without_noise_is_the_quantised_block_mean(channels):
    hr = _hr(40, 24, channels, seed=4)
    for seed in range(3):
        lr = realistic(hr, 4, rng=np.random.default_rng(seed), kernels="box", noise_sigma=0.0, poisson_prob=0.0)
        np.testing.assert_array_equal(lr, _quantised(box_downscale(hr, 4)))
        # independent of box_downscale: within half a level (plus float rounding) of the exact block mean
        assert np.abs(lr - block_reduce(hr.astype(np.float64), (4, 4, 1), np.mean)).max() <= 0.5 * LEVEL + 1e-6


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_kernel_without_noise_is_pillows_bicubic(scale, channels):
    hr = _smooth_hr(48, 72, channels, seed=scale)
    u8 = np.rint(hr * 255.0).astype(np.uint8)
    pil = Image.fromarray(u8[..., 0], "L") if channels == 1 else Image.fromarray(u8, "RGB")
    ref = np.asarray(pil.resize((72 // scale, 48 // scale), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    ref = ref.reshape(48 // scale, 72 // scale, channels)
    lr = realistic(hr, scale, rng=np.random.default_rng(0), kernels="bicubic", **CLEAN)
    # realistic resizes in Pillow's float path, the reference in its 8-bit path (which rounds between its two
    # passes): at most one level apart, and mostly equal
    assert np.abs(lr - ref).max() <= LEVEL + 1e-5
    assert np.mean(lr == ref) > 0.7
    # ... and clearly not the box mean
    assert np.abs(lr - _quantised(box_downscale(hr, scale))).max() > 3 * LEVEL


def test_box_noise_residual_is_two_grey_levels():
    grey = 128 / 255.0  # on an 8-bit level, so the clean box average needs no rounding
    hr = np.full((512, 512, 1), grey, dtype=np.float32)
    lr = box_noise(hr, 4, rng=np.random.default_rng(123))
    residual = lr.astype(np.float64) - grey
    assert 1.7 * LEVEL < residual.std() < 2.3 * LEVEL
    assert abs(residual.mean()) < 0.1 * LEVEL
    stronger = box_noise(hr, 4, rng=np.random.default_rng(123), noise_sigma=6.0)
    assert 5.5 * LEVEL < (stronger - grey).std() < 6.5 * LEVEL
    clean = box_noise(hr, 4, rng=np.random.default_rng(123), noise_sigma=0.0)
    np.testing.assert_array_equal(clean, np.full((128, 128, 1), grey, dtype=np.float32))


def test_poisson_noise_grows_with_brightness():
    def noise_std(level: int) -> float:
        hr = np.full((256, 256, 1), level / 255.0, dtype=np.float32)
        lr = realistic(hr, 2, rng=np.random.default_rng(5), kernels="box", poisson_prob=1.0, photons=2000.0)
        return float((lr - level / 255.0).std())

    dark, bright = noise_std(51), noise_std(204)  # 0.2 and 0.8 of full scale
    assert abs(dark - np.sqrt(0.2 / 2000)) < 0.15 * np.sqrt(0.2 / 2000)
    assert abs(bright - np.sqrt(0.8 / 2000)) < 0.15 * np.sqrt(0.8 / 2000)
    assert 1.6 < bright / dark < 2.4  # sqrt(4) = 2: shot noise, not additive


@pytest.mark.parametrize("name", ["realistic", "box-noise"])
def test_same_seed_same_output_other_seed_other_output(name):
    fn = get_degradation(name)
    hr = _hr(64, 64, 1, seed=9)
    a = fn(hr, 4, rng=np.random.default_rng(7))
    b = fn(hr, 4, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    others = [fn(hr, 4, rng=np.random.default_rng(seed)) for seed in (8, 9, 10)]
    assert all(not np.array_equal(a, other) for other in others)


def test_all_three_kernels_are_drawn():
    hr = _hr(48, 48, 1, seed=2)
    box = _quantised(box_downscale(hr, 4))
    bicubic = _quantised(pil_resize(hr, (12, 12), "bicubic", 16))
    assert not np.array_equal(box, bicubic)
    drawn = {"box": 0, "bicubic": 0, "gaussian": 0}
    for seed in range(30):
        lr = realistic(hr, 4, rng=np.random.default_rng(seed), noise_sigma=0.0, poisson_prob=0.0)
        if np.array_equal(lr, box):
            drawn["box"] += 1
        elif np.array_equal(lr, bicubic):
            drawn["bicubic"] += 1
        else:
            drawn["gaussian"] += 1
            assert lr.std() < bicubic.std()  # blurred before the bicubic: smoother than bicubic alone
    assert all(count >= 3 for count in drawn.values()), drawn


def test_a_kernel_listed_twice_is_drawn_twice_as_often():
    hr = _hr(48, 48, 1, seed=2)
    box = _quantised(box_downscale(hr, 4))
    draws = 400
    boxes = sum(np.array_equal(realistic(hr, 4, rng=np.random.default_rng(seed), kernels="bicubic,box,box,gaussian",
                                         noise_sigma=0.0, poisson_prob=0.0), box) for seed in range(draws))
    # binomial(400, 1/2): 3 standard deviations are 30 draws; uniform over three names would give about 133
    assert abs(boxes - draws / 2) < 30, boxes


def test_gaussian_kernel_with_fixed_sigma_is_blur_then_bicubic():
    from scipy.ndimage import gaussian_filter

    hr = _hr(48, 48, 1, seed=6)
    lr = realistic(hr, 4, rng=np.random.default_rng(0), kernels="gaussian", blur_sigma=1.5, **CLEAN)
    blurred = gaussian_filter(hr.astype(np.float64), sigma=(1.5, 1.5, 0), mode="reflect").astype(np.float32)
    expected = _quantised(pil_resize(blurred, (12, 12), "bicubic", 16))
    assert np.abs(lr - expected).max() <= LEVEL + 1e-6


def test_jpeg_round_trip_happens_when_asked():
    hr = _smooth_hr(64, 64, 1, seed=11)
    params = {"kernels": "bicubic", "noise_sigma": 1.0, "poisson_prob": 0.0, "jpeg_quality": 80}
    plain = realistic(hr, 2, rng=np.random.default_rng(4), jpeg_prob=0.0, **params)
    jpeg = realistic(hr, 2, rng=np.random.default_rng(4), jpeg_prob=1.0, **params)
    assert not np.array_equal(plain, jpeg)
    # the same chain up to the JPEG (the same draws), then one JPEG round trip at the fixed quality
    np.testing.assert_array_equal(jpeg, jpeg_roundtrip(plain, 80))
    assert np.abs(jpeg - plain).mean() < 8 * LEVEL  # a JPEG of the same picture, not something else
    other = realistic(hr, 2, rng=np.random.default_rng(4), jpeg_prob=1.0, **{**params, "jpeg_quality": 30})
    assert not np.array_equal(other, jpeg)  # the quality is used


def test_jpeg_roundtrip_grey_and_rgb_keep_shape():
    for channels in (1, 3):
        image = _hr(16, 24, channels, seed=channels)
        out = jpeg_roundtrip(image, 95)
        assert out.shape == image.shape and out.dtype == np.float32
        assert np.abs(out - image).mean() < 0.2


@pytest.mark.parametrize("kernels", ["lanczos", "box,nearest", "", " , "])
def test_unknown_kernel_is_a_config_error(kernels):
    with pytest.raises(ConfigError):
        realistic(_hr(16, 16), 2, rng=np.random.default_rng(0), kernels=kernels)


def test_kernel_list_allows_spaces():
    lr = realistic(_hr(16, 16), 2, rng=np.random.default_rng(0), kernels=" box , bicubic ", **CLEAN)
    assert lr.shape == (8, 8, 1)


@pytest.mark.parametrize("name", ["realistic", "box-noise"])
@pytest.mark.parametrize("shape", [(30, 32, 1), (32, 30, 1), (30, 30, 3)])
def test_size_not_a_multiple_of_the_scale_is_a_value_error(name, shape):
    with pytest.raises(ValueError):
        get_degradation(name)(np.zeros(shape, dtype=np.float32), 4, rng=np.random.default_rng(0))


def test_registry_parameters_and_scales():
    assert parse_params("realistic", ["kernels=box", "noise_sigma=2", "jpeg_prob=0.5"]) == {
        "kernels": "box",
        "noise_sigma": 2.0,
        "jpeg_prob": 0.5,
    }
    assert parse_params("realistic", ["noise_sigma=0,3", "blur-sigma=1"]) == {
        "noise_sigma": (0.0, 3.0),
        "blur_sigma": 1.0,
    }
    assert parse_params("box-noise", ["noise_sigma=4"]) == {"noise_sigma": 4.0}
    with pytest.raises(ConfigError):
        parse_params("box-noise", ["kernels=box"])
    assert lr_scale("box-noise", 4) == (4, 4)
    assert lr_scale("realistic", 2) == (2, 2)
    assert lr_shape("box-noise", (64, 48), 4) == (16, 12)
    assert get_degradation("realistic") is realistic and get_degradation("box-noise") is box_noise
