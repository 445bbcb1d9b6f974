"""medsr.metrics against scikit-image's reference PSNR and SSIM, at 8-bit and 16-bit ranges."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medsr.metrics import psnr, ssim

DATA = Path(__file__).parent / "data"
TOL = 1e-4


def ref_ssim(pred: np.ndarray, target: np.ndarray, data_range: float) -> float:
    """scikit-image SSIM with the Wang et al. 2004 settings; channel axis last for (H, W, C)."""
    return structural_similarity(
        pred, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=data_range,
        channel_axis=-1 if pred.ndim == 3 else None,
    )


def noisy_pair(
    shape: tuple[int, ...], peak: int, seed: int, sigma: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """An integer image with smooth structure plus noise, and a noisier copy: (pred, target) on 0..peak."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    base = 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy)
    if len(shape) == 3:
        base = base[..., None] * np.linspace(0.8, 1.0, shape[2])
    target = np.clip(base + rng.normal(0, 0.03, shape), 0, 1)
    pred = np.clip(target + rng.normal(0, sigma, shape), 0, 1)
    dtype = np.uint8 if peak == 255 else np.uint16
    return np.rint(pred * peak).astype(dtype), np.rint(target * peak).astype(dtype)


def fixture_xrays() -> list[np.ndarray]:
    paths = sorted(DATA.glob("xray_*.png"))
    if not paths:
        pytest.skip("tests/data/xray_*.png fixtures are missing")
    return [np.asarray(Image.open(p).convert("L")) for p in paths]


@pytest.mark.parametrize("peak", [255, 65535])
@pytest.mark.parametrize("shape", [(40, 52), (40, 52, 3)])
def test_matches_skimage_on_random_images(peak: int, shape: tuple[int, ...]) -> None:
    for seed in range(3):
        pred, target = noisy_pair(shape, peak, seed)
        assert psnr(pred, target, data_range=peak) == pytest.approx(
            peak_signal_noise_ratio(target, pred, data_range=peak), abs=TOL)
        assert ssim(pred, target, data_range=peak) == pytest.approx(ref_ssim(pred, target, peak), abs=TOL)


@pytest.mark.parametrize("peak", [255, 65535])
def test_matches_skimage_on_real_xrays(peak: int) -> None:
    for hr in fixture_xrays():
        hr = hr[:200, :240]
        small = Image.fromarray(hr).resize((60, 50), Image.Resampling.BICUBIC)
        degraded = np.asarray(small.resize((240, 200), Image.Resampling.BICUBIC))
        if peak == 65535:  # the same picture stored at 16 bits
            hr, degraded = hr.astype(np.uint16) * 257, degraded.astype(np.uint16) * 257
        assert psnr(degraded, hr, data_range=peak) == pytest.approx(
            peak_signal_noise_ratio(hr, degraded, data_range=peak), abs=TOL)
        assert ssim(degraded, hr, data_range=peak) == pytest.approx(ref_ssim(degraded, hr, peak), abs=TOL)


def test_unit_range_equals_own_scale() -> None:
    """Scores on [0, 1] floats with data_range 1 equal scores on 8-bit integers with data_range 255."""
    pred, target = noisy_pair((48, 48), 255, seed=4)
    for metric in (psnr, ssim):
        assert metric(pred / 255.0, target / 255.0, data_range=1.0) == pytest.approx(
            metric(pred, target, 255), abs=1e-9)


def test_data_range_is_never_taken_from_the_data() -> None:
    """A dark 16-bit image scored at 65535 differs from the same image scored at its own maximum."""
    pred, target = noisy_pair((32, 32), 255, seed=5)
    pred, target = pred.astype(np.uint16), target.astype(np.uint16)  # values 0..255 in a 16-bit container
    assert psnr(pred, target, data_range=65535) == pytest.approx(
        peak_signal_noise_ratio(target, pred, data_range=65535), abs=TOL)
    assert psnr(pred, target, data_range=65535) > psnr(pred, target, data_range=255) + 40


@pytest.mark.parametrize("channels", [1, 3])
def test_batch_gives_per_image_values(channels: int) -> None:
    pairs = [noisy_pair((36, 44, channels), 255, seed, sigma=0.02 * (seed + 1)) for seed in range(4)]
    preds = np.stack([p for p, _ in pairs])
    targets = np.stack([t for _, t in pairs])
    batch_psnr = psnr(preds, targets, data_range=255)
    batch_ssim = ssim(preds, targets, data_range=255)
    assert isinstance(batch_psnr, np.ndarray) and batch_psnr.shape == (4,)
    assert isinstance(batch_ssim, np.ndarray) and batch_ssim.shape == (4,)
    for i, (p, t) in enumerate(pairs):
        assert batch_psnr[i] == pytest.approx(peak_signal_noise_ratio(t, p, data_range=255), abs=TOL)
        assert batch_ssim[i] == pytest.approx(ref_ssim(p, t, 255), abs=TOL)
    # per image then averaged: not the PSNR of the pooled MSE
    pooled = 10 * math.log10(255**2 / np.mean((preds.astype(float) - targets) ** 2))
    assert abs(batch_psnr.mean() - pooled) > 0.05


def test_border_crops_each_edge() -> None:
    pred, target = noisy_pair((40, 48, 3), 255, seed=6)
    b = 4
    crop = (slice(b, -b), slice(b, -b))
    assert psnr(pred, target, 255, border=b) == pytest.approx(
        peak_signal_noise_ratio(target[crop], pred[crop], data_range=255), abs=TOL)
    assert ssim(pred, target, 255, border=b) == pytest.approx(
        ref_ssim(pred[crop], target[crop], 255), abs=TOL)
    # damage confined to the border does not count once it is cropped
    spoiled = pred.copy()
    spoiled[:b] = 0
    assert psnr(spoiled, target, 255, border=b) == pytest.approx(psnr(pred, target, 255, border=b))
    assert psnr(spoiled, target, 255) < psnr(pred, target, 255)


def test_torch_and_numpy_agree() -> None:
    pairs = [noisy_pair((32, 40, 3), 255, seed) for seed in range(2)]
    np_pred = np.stack([p for p, _ in pairs]).astype(np.float32) / 255
    np_target = np.stack([t for _, t in pairs]).astype(np.float32) / 255
    t_pred = torch.from_numpy(np_pred).permute(0, 3, 1, 2)
    t_target = torch.from_numpy(np_target).permute(0, 3, 1, 2)
    for metric in (psnr, ssim):
        batch = metric(t_pred, t_target, data_range=1.0, border=2)
        assert isinstance(batch, torch.Tensor) and batch.shape == (2,)
        np.testing.assert_allclose(batch.numpy(), metric(np_pred, np_target, 1.0, border=2), atol=1e-10)
        single = metric(t_pred[0], t_target[0], data_range=1.0, border=2)  # (C, H, W)
        assert isinstance(single, float)
        assert single == pytest.approx(metric(np_pred[0], np_target[0], 1.0, border=2), abs=1e-10)


def test_grayscale_shapes_agree() -> None:
    pred, target = noisy_pair((30, 30), 255, seed=7)
    for metric in (psnr, ssim):
        flat = metric(pred, target, 255)
        assert metric(pred[..., None], target[..., None], 255) == pytest.approx(flat, abs=1e-12)
        assert metric(torch.from_numpy(pred)[None].float(), torch.from_numpy(target)[None].float(), 255) == \
            pytest.approx(flat, abs=1e-9)


def test_identical_images() -> None:
    _, target = noisy_pair((24, 24), 255, seed=8)
    assert psnr(target, target, 255) == math.inf
    assert ssim(target, target, 255) == pytest.approx(1.0, abs=1e-12)


def test_ssim_is_differentiable_for_tensors() -> None:
    pred = torch.rand(1, 1, 24, 24, dtype=torch.float64, requires_grad=True)
    value = ssim(pred, torch.rand(1, 1, 24, 24, dtype=torch.float64))
    value.sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_bad_inputs_raise() -> None:
    a = np.zeros((20, 20))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, np.zeros((20, 21)))
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, a, data_range=0)
    with pytest.raises(ValueError, match="11x11"):
        ssim(a, a, border=5)
    with pytest.raises(ValueError, match="border"):
        psnr(a, a, border=10)
