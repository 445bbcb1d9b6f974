"""Colour images with grayscale models: BT.601 YCbCr, the model on luminance, chroma by bicubic, ``--colour``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import rgb2ycbcr, ycbcr2rgb
from torch import nn
from typer.testing import CliRunner

from medsr.cli import app
from medsr.degrade.bicubic import pil_resize
from medsr.errors import ConfigError
from medsr.infer import InferenceSettings, tile_for, upscale, upscale_array, upscale_arrays
from medsr.infer.colour import rgb_to_ycbcr, upscale_luminance, ycbcr_to_rgb
from medsr.models import build_generator, save_model

torch.set_num_threads(1)
CPU = InferenceSettings(device="cpu")
PER_CHANNEL = CPU.with_(colour="per-channel")


def colour_image(height: int = 24, width: int = 20, seed: int = 0) -> np.ndarray:
    """A tinted texture with a saturated patch, float32 RGB in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    grey = 0.5 + 0.3 * np.sin(yy / 4.0) * np.cos(xx / 3.0) + 0.1 * rng.random((height, width), dtype=np.float32)
    rgb = np.stack([grey, 0.9 * grey, 0.75 * grey], axis=-1)
    rgb[height // 3 : height // 2, width // 3 : width // 2] = (0.9, 0.1, 0.2)  # a Doppler-like red blob
    return np.clip(rgb, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return build_generator("swift-srgan", in_channels=1, scale=2, num_blocks=2, num_channels=16).eval()


# --- the conversion ------------------------------------------------------------------------------------------


def test_ycbcr_equals_pillow_jpeg_conversion() -> None:
    """Pillow converts in fixed point and truncates, and centres chroma on 128 (ours: 127.5, i.e. 0.5): each
    of its integers stands for a value up to one level above it, Y and RGB, and within half a level, chroma."""
    rgb = np.random.default_rng(1).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(rgb, "RGB").convert("YCbCr")).astype(np.float32)
    assert np.abs(rgb_to_ycbcr(rgb / 255.0) * 255.0 - (pillow + [0.5, 0, 0])).max() <= 0.55
    back = np.asarray(Image.fromarray(pillow.astype(np.uint8), "YCbCr").convert("RGB")).astype(np.float32)
    ours = ycbcr_to_rgb((pillow - [0, 0.5, 0.5]) / 255.0) * 255.0
    inside = (ours > 0.5) & (ours < 254.5)  # Pillow clips to 0..255
    assert np.abs(ours - (back + 0.5))[inside].max() <= 0.55


def test_ycbcr_equals_skimage_up_to_its_studio_range() -> None:
    rgb = np.random.default_rng(2).random((16, 12, 3))
    studio = rgb2ycbcr(rgb)  # Y in [16, 235], Cb and Cr in [16, 240]
    full = np.stack([(studio[..., 0] - 16) / 219, (studio[..., 1] - 128) / 224 + 0.5,
                     (studio[..., 2] - 128) / 224 + 0.5], axis=-1)
    np.testing.assert_allclose(rgb_to_ycbcr(rgb), full, atol=1e-5)
    np.testing.assert_allclose(ycbcr_to_rgb(full), ycbcr2rgb(studio), atol=1e-5)


def test_round_trip_and_grey_has_neutral_chroma() -> None:
    rgb = np.random.default_rng(3).random((10, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-6)
    grey = np.repeat(rgb[..., :1], 3, axis=-1)
    ycbcr = rgb_to_ycbcr(grey)
    np.testing.assert_allclose(ycbcr[..., 0], grey[..., 0], atol=1e-6)
    np.testing.assert_allclose(ycbcr[..., 1:], 0.5, atol=1e-6)


def test_bicubic_on_luminance_and_chroma_is_bicubic_on_rgb() -> None:
    """Both steps are linear, so a bicubic "model" on Y recombines into plain bicubic on R, G and B."""
    rgb = colour_image()
    size = (rgb.shape[0] * 3, rgb.shape[1] * 3)
    out = upscale_luminance(rgb, lambda y: pil_resize(y, size, "bicubic", bit_depth=32))
    reference = pil_resize(rgb, size, "bicubic", bit_depth=32)
    assert out.shape == (*size, 3) and out.dtype == np.float32
    assert np.abs(out - reference).max() < 0.03  # only where bicubic overshoots and is clipped differently
    assert np.abs(out - reference).mean() < 1e-3


# --- luminance mode in the API -----------------------------------------------------------------------------------

SEEN: list[tuple[int, ...]] = []  # input shapes of every forward of CountingModel (outside it: deep copies share it)


class CountingModel(nn.Module):
    """A 1-channel x2 model that records the shape of every batch it runs (and cannot be traced, so the
    inference copy is a plain deep copy of it)."""

    scale, in_channels = (2, 2), 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 1:  # data-dependent control flow: torch.fx gives up, the module runs as written
            raise ValueError("one channel only")
        SEEN.append(tuple(x.shape))
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def test_luminance_runs_the_model_on_one_plane_per_tile_instead_of_three() -> None:
    model, rgb = CountingModel(), colour_image(40, 40)
    settings = CPU.with_(tile=32, overlap=4, max_memory=None)  # 2 x 2 tiles, no memory probes
    planes = {}
    for mode in ("luminance", "per-channel"):
        SEEN.clear()
        out = upscale_array(model, rgb, settings.with_(colour=mode))
        assert out.shape == (80, 80, 3)
        planes[mode] = sum(n * c for n, c, _, _ in SEEN)
    assert planes == {"luminance": 4, "per-channel": 12}


def test_grey_in_rgb_gives_the_same_result_both_ways(tiny) -> None:
    grey = colour_image()[..., :1]
    rgb = np.repeat(grey, 3, axis=-1)
    luminance, per_channel = upscale(rgb, tiny, CPU), upscale(rgb, tiny, PER_CHANNEL)
    np.testing.assert_allclose(luminance, per_channel, atol=1e-5)
    np.testing.assert_allclose(luminance[..., 1], upscale(grey, tiny, CPU)[..., 0], atol=1e-5)
    as_u8 = np.rint(rgb * 255).astype(np.uint8)
    difference = upscale(as_u8, tiny, CPU).astype(int) - upscale(as_u8, tiny, PER_CHANNEL).astype(int)
    assert np.abs(difference).max() <= 1  # within quantisation


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_colour_output_keeps_layout_dtype_and_per_channel_range(tiny, dtype) -> None:
    rgb = colour_image()
    image = rgb if dtype == np.float32 else np.rint(rgb * np.iinfo(dtype).max).astype(dtype)
    out = upscale(image, tiny, CPU)
    assert out.shape == (48, 40, 3) and out.dtype == dtype
    low, high = image.min(axis=(0, 1)), image.max(axis=(0, 1))
    assert np.all(out.min(axis=(0, 1)) >= low) and np.all(out.max(axis=(0, 1)) <= high)  # clip_to_input
    frames = np.stack([image, image[::-1]])
    many = upscale(frames, tiny, CPU)
    assert many.shape == (2, 48, 40, 3) and many.dtype == dtype
    np.testing.assert_array_equal(many[0], out)
    raw = upscale_array(tiny, rgb, CPU.with_(clip_to_input=False))
    assert raw.dtype == np.float32 and raw.min() >= 0.0 and raw.max() <= 1.0


def test_colour_and_grey_images_batch_together_as_they_run_alone(tiny) -> None:
    rgb, grey = colour_image(), colour_image(seed=5)[..., :1]
    together = upscale_arrays(tiny, [rgb, grey, rgb[::-1].copy()], CPU)
    alone = [upscale_arrays(tiny, [im], CPU)[0] for im in (rgb, grey, rgb[::-1].copy())]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(upscale_array(tiny, rgb, CPU), upscale_arrays(tiny, [rgb], CPU.with_(
        clip_to_input=False))[0], atol=1e-6)


def test_grey_images_and_colour_models_are_unaffected(tiny) -> None:
    grey = colour_image()[..., :1]
    np.testing.assert_array_equal(upscale_array(tiny, grey, CPU), upscale_array(tiny, grey, PER_CHANNEL))
    torch.manual_seed(0)
    rgb_model = build_generator("swift-srgan", in_channels=3, scale=2, num_blocks=1, num_channels=8).eval()
    rgb = colour_image()
    np.testing.assert_array_equal(upscale_array(rgb_model, rgb, CPU), upscale_array(rgb_model, rgb, PER_CHANNEL))
    settings = CPU.with_(max_memory=20 * 2**20)
    assert tile_for(tiny, (700, 600, 3), settings) == tile_for(tiny, (700, 600, 1), settings)


def test_unknown_colour_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="luminance, per-channel"):
        InferenceSettings(colour="rgb")


# --- the command line --------------------------------------------------------------------------------------------


def test_cli_colour_option_is_accepted_and_changes_the_output(tiny, tmp_path: Path) -> None:
    checkpoint = save_model(tiny, tmp_path / "tiny-x2.safetensors", {"name": "tiny-x2"})
    source = tmp_path / "doppler.png"
    Image.fromarray(np.rint(colour_image() * 255).astype(np.uint8), "RGB").save(source)
    written = {}
    for mode in (None, "luminance", "per-channel"):
        out = tmp_path / f"out-{mode}"
        args = ["upscale", str(source), "-o", str(out), "--model", str(checkpoint), "--device", "cpu"]
        result = CliRunner().invoke(app, args + ([] if mode is None else ["--colour", mode]))
        assert result.exit_code == 0, result.output
        with Image.open(out / "doppler.png") as im:
            assert im.mode == "RGB" and im.size == (40, 48)
            written[mode] = np.asarray(im)
    np.testing.assert_array_equal(written[None], written["luminance"])  # the default
    assert np.abs(written["luminance"].astype(int) - written["per-channel"].astype(int)).max() > 2
    bad = CliRunner().invoke(app, ["upscale", str(source), "-o", str(tmp_path / "bad"), "--colour", "rgb"])
    assert isinstance(bad.exception, ConfigError) and "unknown colour mode 'rgb'" in str(bad.exception)
