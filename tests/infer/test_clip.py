"""Outputs stay within the input's value range: per image, per channel, by default; ``--no-clip`` keeps them raw."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from medsr.cli import app
from medsr.infer import InferenceSettings, clip_to_input, upscale, upscale_array, upscale_arrays
from medsr.io import read_image
from medsr.models import build_generator, save_model

DATA = Path(__file__).parents[1] / "data"
CPU = InferenceSettings(device="cpu")
torch.set_num_threads(1)


class Overshoot(nn.Module):
    """Nearest x2, then the contrast of each channel doubled around its mean: overshoots its input's range."""

    scale, in_channels = (2, 2), 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2, mode="nearest")
        return 2 * up - up.mean(dim=(2, 3), keepdim=True)


def rgb(seed: int = 0) -> np.ndarray:
    """R in [0.30, 0.45], G in [0.60, 0.70], B in [0.05, 0.20]: three disjoint ranges."""
    rng = np.random.default_rng(seed)
    low, high = np.array([0.30, 0.60, 0.05], np.float32), np.array([0.45, 0.70, 0.20], np.float32)
    image = low + (high - low) * rng.random((24, 20, 3), dtype=np.float32)
    image[0, 0], image[-1, -1] = low, high
    return image


def test_each_channel_is_clipped_to_its_own_input_range() -> None:
    model, image = Overshoot(), rgb()
    low, high = image.min(axis=(0, 1)), image.max(axis=(0, 1))
    raw = upscale(image, model, CPU.with_(clip_to_input=False))
    assert np.all(raw.min(axis=(0, 1)) < low - 0.02) and np.all(raw.max(axis=(0, 1)) > high + 0.02)
    assert raw[..., 0].max() < image.max()  # red overshoots its own range, not the image's: per channel matters
    clipped = upscale(image, model, CPU)
    np.testing.assert_array_equal(clipped.min(axis=(0, 1)), low)
    np.testing.assert_array_equal(clipped.max(axis=(0, 1)), high)
    np.testing.assert_array_equal(clipped, np.clip(raw, low, high))
    np.testing.assert_array_equal(clip_to_input(raw.copy(), image), clipped)
    np.testing.assert_array_equal(upscale_array(model, image, CPU), raw)  # the model's own output, as scored


def test_each_image_and_frame_is_clipped_to_its_own_range() -> None:
    model = Overshoot()
    first, second = rgb(1), 0.5 * rgb(2) + 0.4
    outs = upscale_arrays(model, [first, second], CPU)
    frames = upscale(np.stack([first, second]), model, CPU)
    for image, out, frame in zip((first, second), outs, frames, strict=True):
        np.testing.assert_array_equal(out.min(axis=(0, 1)), image.min(axis=(0, 1)))
        np.testing.assert_array_equal(out.max(axis=(0, 1)), image.max(axis=(0, 1)))
        np.testing.assert_array_equal(frame, out)
    as_u8 = np.rint(first * 255).astype(np.uint8)  # integer arrays: the same, in stored values
    out8 = upscale(as_u8, model, CPU)
    assert out8.dtype == np.uint8
    assert np.array_equal(out8.min(axis=(0, 1)), as_u8.min(axis=(0, 1)))
    assert np.array_equal(out8.max(axis=(0, 1)), as_u8.max(axis=(0, 1)))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A small random Swift-SRGAN x4 (as in test_upscale_cli): its output sits near 0.5, -1024 HU for the CT."""
    torch.manual_seed(0)
    model = build_generator("swift-srgan", in_channels=1, scale=4, num_blocks=2, num_channels=16).eval()
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny-x4.safetensors", {"name": "tiny-x4"})


def hounsfield(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_ct_upscaled_by_the_cli_stays_within_the_input_hounsfield_range(tiny_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "in" / "ct.dcm"
    source.parent.mkdir()
    shutil.copy(DATA / "ct_small.dcm", source)
    before = hounsfield(source)
    low, high = before.min(), before.max()  # -896..1167 HU
    runs = {"clipped": [], "raw": ["--no-clip"]}
    after = {}
    for name, flags in runs.items():
        out = tmp_path / name
        result = CliRunner().invoke(
            app, ["upscale", str(source), "-o", str(out), "--model", str(tiny_model), "--device", "cpu", *flags])
        assert result.exit_code == 0, result.output
        after[name] = hounsfield(out / "ct.dcm")
        assert after[name].shape == (before.shape[0] * 4, before.shape[1] * 4)
    assert after["raw"].min() < low - 50 or after["raw"].max() > high + 50  # the raw output leaves the range
    assert low <= after["clipped"].min() and after["clipped"].max() <= high
    inside = (after["raw"] >= low) & (after["raw"] <= high)
    assert inside.any()
    np.testing.assert_allclose(after["clipped"][inside], after["raw"][inside], atol=1.0)  # only the tails change
    expected = upscale(read_image(source), tiny_model, CPU)  # the Python API clips the same way
    values = expected.value_range[0] + expected.pixels[..., 0] * np.float32(np.subtract(*expected.value_range[::-1]))
    assert low - 0.5 <= values.min() and values.max() <= high + 0.5
