"""Tiled inference, batching, channel adaptation and the ``medsr.upscale`` API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medsr.errors import CheckpointError, ConfigError
from medsr.infer import InferenceSettings, get_predictor, upscale, upscale_array, upscale_arrays
from medsr.infer.tiling import axis_weights, tile_layout, tile_starts, upscale_many, upscale_tiled
from medsr.io import read_image
from medsr.io.image import MedicalImage
from medsr.models import build_generator

torch.set_num_threads(1)


def textured(height: int, width: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A smooth pattern plus noise in [0, 1]: structure at several scales, like an image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.5 + 0.3 * np.sin(yy / 7.0) * np.cos(xx / 5.0)
    img = base[..., None] + 0.1 * rng.random((height, width, channels), dtype=np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def calibrated(
    arch: str, *, scale=4, in_channels: int = 1, global_skip: bool = False, seed: int = 0
) -> nn.Module:
    """A generator with trained-like activation statistics: BatchNorm running stats measured on an image.

    Default PyTorch initialisation makes activations shrink layer by layer, so a random network's output
    barely depends on its input (and on tile borders). Fixing each BatchNorm's statistics on real-looking
    data, with random affine parameters, gives unit-variance features at every depth, as in a trained network:
    a much harder case for tiling.
    """
    torch.manual_seed(seed)
    model = build_generator(arch, in_channels=in_channels, scale=scale, global_skip=global_skip)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration pass
            m.reset_running_stats()
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    if global_skip:  # the residual head starts at zero: give it something to add
        last = [m for m in model.final_conv.modules() if isinstance(m, nn.Conv2d)][-1]
        nn.init.normal_(last.weight, std=0.02)
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(textured(64, 64, in_channels, seed=seed + 1).transpose(2, 0, 1)[None].copy()))
    return model.eval()


def whole_image(model: nn.Module, lr: np.ndarray) -> np.ndarray:
    """Reference: the plain model on the whole (H, W, C) image at once, clipped to [0, 1]."""
    with torch.no_grad():
        out = model(torch.from_numpy(lr.transpose(2, 0, 1)[None].copy()))[0]
    return out.numpy().transpose(1, 2, 0).clip(0, 1)


class TinySR(nn.Module):
    """conv + PixelShuffle: a fast model with a small receptive field, for exactness tests of the engine."""

    def __init__(self, scale: int = 2, channels: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.scale, self.in_channels = (scale, scale), channels
        self.body = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1),
            nn.PReLU(8),
            nn.Conv2d(8, channels * scale * scale, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.shuffle(self.body(x)))


# --- the tile grid and its weights ----------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 7, 64, 65, 100, 257, 1000, 3072])
@pytest.mark.parametrize(("tile", "overlap"), [(64, 16), (96, 32), (512, 32), (17, 0)])
def test_tiles_cover_the_axis_with_enough_shared_context(length: int, tile: int, overlap: int) -> None:
    size, starts = tile_layout(length, tile, overlap)
    assert size <= tile and starts == tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + size == length
    assert starts == sorted(set(starts))
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + size - b >= 2 * overlap  # neighbours share at least 2 * overlap pixels
    weights = axis_weights(length, tile, overlap, scale=3)
    total = np.zeros(length * 3)
    for start, w in zip(starts, weights, strict=True):
        assert w.shape == (size * 3,) and np.all(w >= 0)
        total[start * 3 : start * 3 + size * 3] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


def test_tile_must_hold_both_overlaps() -> None:
    with pytest.raises(ValueError):
        tile_starts(100, 64, 32)
    with pytest.raises(ConfigError):
        InferenceSettings(tile=64, overlap=32, device="cpu")


def test_inner_edge_pixels_get_no_weight() -> None:
    """The pixels next to an inner tile edge (which saw zero padding) must not contribute at all."""
    weights = axis_weights(300, 128, 16, scale=2)
    _, starts = tile_layout(300, 128, 16)
    first, middle = weights[0], weights[1]
    assert np.all(first[-16:] == 0)  # last overlap/2 input pixels (x2 output) of the first tile
    assert np.all(middle[:16] == 0) and np.all(middle[-16:] == 0)
    assert np.all(first[: starts[1] * 2] == 1.0)  # the first tile alone covers its start
    assert 0 < middle[16 + 16] < 1  # the middle of the ramp blends


def test_tiles_shrink_to_what_the_axis_needs() -> None:
    assert tile_layout(640, 512, 32) == (352, [0, 288])
    size, starts = tile_layout(3072, 512, 32)
    assert len(starts) == 7 and size == 494  # ceil((3072 - 64) / 448) tiles of ceil(3008 / 7) + 64


# --- tiled == whole -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arch", "global_skip", "scale", "shape", "tile", "overlap"),
    [
        ("swift-srgan", False, 4, (131, 117), 96, 32),  # odd sizes, 2x2 tiles
        ("srresnet", True, 4, (101, 150), 96, 32),  # the hardest case measured: a wide residual output
        ("swift-srgan", True, (1, 4), (150, 77), 96, 32),  # anisotropic: width only (ultrasound route)
        ("swift-srgan", True, 1, (143, 121), 80, 24),  # scale 1 (CT image restoration route)
    ],
)
def test_tiled_equals_whole_image_inference(arch, global_skip, scale, shape, tile, overlap) -> None:
    model = calibrated(arch, scale=scale, global_skip=global_skip)
    lr = textured(*shape)
    reference = whole_image(model, lr)
    assert reference.std() > 0.01  # the output really depends on the input
    tiled = upscale_array(model, lr, InferenceSettings(tile=tile, overlap=overlap, device="cpu"))
    sy, sx = model.scale
    assert tiled.shape == (shape[0] * sy, shape[1] * sx, 1) and tiled.dtype == np.float32
    assert len(tile_starts(shape[0], tile, overlap)) * len(tile_starts(shape[1], tile, overlap)) >= 2
    assert np.abs(tiled - reference).max() < 1 / 255


def test_tiles_without_context_would_not_match() -> None:
    """Guard against a vacuous test: with too little context the same network does differ across seams."""
    model = calibrated("srresnet", global_skip=True)
    lr = textured(101, 150)
    reference = whole_image(model, lr)
    naive = upscale_array(model, lr, InferenceSettings(tile=48, overlap=2, device="cpu"))
    assert np.abs(naive - reference).max() > 2 / 255


class _OffsetPerCall:
    """Nearest-neighbour x2 plus a different constant for every call: tiles that disagree by up to 0.2."""

    scale = (2, 2)

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        up = batch.repeat(2, axis=2).repeat(2, axis=3)
        return up + self.rng.uniform(0, 0.2, size=(len(batch), 1, 1, 1)).astype(np.float32)


def test_blending_leaves_no_seams_even_when_tiles_disagree() -> None:
    flat = np.full((200, 230, 1), 0.4, dtype=np.float32)
    out = upscale_tiled(_OffsetPerCall(), flat, tile=64, overlap=16)
    # A hard cut between tiles would jump by up to 0.2; the ramp spreads any jump over 32 output pixels.
    jumps = max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max())
    assert jumps <= 0.2 / 32 + 1e-6
    assert out.min() >= 0.4 and out.max() <= 0.6 + 1e-6  # a convex blend of the tiles' values


def test_tiny_model_tiling_is_exact_beyond_its_receptive_field() -> None:
    model = TinySR(scale=3).eval()
    lr = textured(70, 90)
    tiled = upscale_array(model, lr, InferenceSettings(tile=32, overlap=4, device="cpu"))
    np.testing.assert_allclose(tiled, whole_image(model, lr), atol=1e-6)


# --- batching, channels ---------------------------------------------------------------------------


class _Counting:
    """Wraps a predictor and records the batch shapes it is given."""

    def __init__(self, inner) -> None:
        self.inner, self.scale, self.calls = inner, inner.scale, []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape)
        return self.inner(batch)


def test_batching_gives_the_same_outputs_as_one_by_one() -> None:
    model = calibrated("swift-srgan")
    seeds_shapes = [(1, (40, 36)), (2, (33, 50)), (3, (40, 36)), (4, (90, 70)), (5, (40, 36))]
    images = [textured(*shape, seed=seed) for seed, shape in seeds_shapes]
    counting = _Counting(get_predictor(model, InferenceSettings(device="cpu")))
    together = upscale_many(counting, images, tile=64, overlap=16, batch_size=8)
    assert (3, 1, 40, 36) in counting.calls  # the three 40x36 images ran as one batch
    tile_shape = (tile_layout(90, 64, 16)[0], tile_layout(70, 64, 16)[0])
    assert counting.calls.count((1, 1, *tile_shape)) == 4  # the 90x70 image ran in 2x2 tiles
    assert len(together) == len(images)
    api = upscale_arrays(model, images, InferenceSettings(tile=64, overlap=16, device="cpu", batch_size=2))
    for image, out, out_api in zip(images, together, api, strict=True):
        alone = upscale_array(model, image, InferenceSettings(tile=64, overlap=16, device="cpu"))
        assert out.shape == alone.shape == out_api.shape
        np.testing.assert_allclose(out, alone, atol=1e-5)
        np.testing.assert_allclose(out_api, alone, atol=1e-5)


def test_three_channel_model_on_grayscale_returns_gray_mean() -> None:
    model = calibrated("swift-srgan", in_channels=3)
    gray = textured(40, 30)
    out = upscale_array(model, gray, InferenceSettings(tile=64, overlap=16, device="cpu"))
    assert out.shape == (160, 120, 1)
    rgb_out = whole_image(model, np.repeat(gray, 3, axis=2))
    np.testing.assert_allclose(out[..., 0], rgb_out.mean(axis=2), atol=1e-4)


def test_gray_model_on_rgb_runs_each_channel() -> None:
    model = calibrated("swift-srgan")
    rgb = textured(30, 30, channels=3)
    out = upscale_array(model, rgb, InferenceSettings(tile=64, overlap=16, device="cpu", colour="per-channel"))
    assert out.shape == (120, 120, 3)
    for c in range(3):
        np.testing.assert_allclose(out[..., c], whole_image(model, rgb[..., c : c + 1])[..., 0], atol=1e-5)


def test_default_path_matches_plain_model_and_invalidates_on_weight_change() -> None:
    model = calibrated("srresnet")
    lr = textured(30, 26)
    fast = upscale_array(model, lr, InferenceSettings(device="cpu"))
    np.testing.assert_allclose(fast, whole_image(model, lr), atol=1e-5)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.9)
    fast = upscale_array(model, lr, InferenceSettings(device="cpu"))
    np.testing.assert_allclose(fast, whole_image(model, lr), atol=1e-5)


# --- the upscale() API ----------------------------------------------------------------------------


def test_upscale_array_layouts_and_integer_dtypes() -> None:
    model = TinySR(scale=2).eval()
    gray = textured(20, 24)
    out2d = upscale(gray[..., 0], model, InferenceSettings(device="cpu"))
    assert out2d.shape == (40, 48)
    np.testing.assert_allclose(out2d, whole_image(model, gray)[..., 0], atol=1e-6)
    as_u16 = np.rint(gray[..., 0] * 65535).astype(np.uint16)
    out16 = upscale(as_u16, model, InferenceSettings(device="cpu"))
    assert out16.dtype == np.uint16 and out16.shape == (40, 48)
    np.testing.assert_allclose(out16 / 65535.0, out2d, atol=2e-5)
    frames = np.stack([gray, 1 - gray])
    out4d = upscale(frames, model, InferenceSettings(device="cpu"))
    assert out4d.shape == (2, 40, 48, 1)
    np.testing.assert_allclose(out4d[1], whole_image(model, 1 - gray), atol=1e-6)
    with pytest.raises(ConfigError):
        upscale(np.zeros((2, 2, 2, 2, 2), np.float32), model, InferenceSettings(device="cpu"))


def test_upscale_medical_image_keeps_metadata_and_divides_spacing() -> None:
    model = TinySR(scale=2).eval()
    frames = np.stack([textured(16, 20, seed=s) for s in range(3)])
    image = MedicalImage(
        pixels=frames, format="dicom", bit_depth=12, value_range=(-1024.0, 3071.0), pixel_spacing=(0.5, 0.8)
    )
    out = upscale(image, model, InferenceSettings(device="cpu"))
    assert isinstance(out, MedicalImage)
    assert out.pixels.shape == (3, 32, 40, 1) and out.pixels.dtype == np.float32
    assert out.pixel_spacing == pytest.approx((0.25, 0.4))
    assert out.value_range == image.value_range and out.bit_depth == 12
    assert out.extra["medsr_upscale"]["scale"] == (2, 2)
    np.testing.assert_allclose(out.pixels[2], whole_image(model, frames[2]), atol=1e-6)


def test_upscale_path_reads_the_file() -> None:
    model = TinySR(scale=2).eval()
    path = "tests/data/xray_bd10d5e2_512.jpg"
    src = read_image(path)
    out = upscale(path, model, InferenceSettings(tile=128, overlap=8, device="cpu"))
    assert out.pixels.shape == (src.height * 2, src.width * 2, src.channels)
    assert out.path == src.path and out.format == "jpeg"


def test_upscale_saved_model_by_path_is_loaded_and_cached(tmp_path) -> None:
    from medsr.models import load_model, save_model

    model = calibrated("swift-srgan")
    path = save_model(model, tmp_path / "tiny.safetensors", {"note": "test"})
    lr = textured(24, 24)
    out = upscale(lr, path, InferenceSettings(device="cpu"))
    np.testing.assert_allclose(out, whole_image(model, lr), atol=1e-5)
    assert load_model(path, "cpu") is load_model(str(path), "cpu")
    assert load_model(path, "cpu", cache=False) is not load_model(path, "cpu")


def test_default_model_is_the_bundled_one_or_a_clear_checkpoint_error() -> None:
    from medsr.models import DEFAULT_MODEL, list_bundled_models, load_model

    settings = InferenceSettings(device="cpu")
    if any(m["name"] == DEFAULT_MODEL for m in list_bundled_models()):
        out = upscale(textured(16, 12)[..., 0], settings=settings)
        assert out.shape == (64, 48) and out.dtype == np.float32
        assert load_model() is load_model(DEFAULT_MODEL) and load_model().meta["name"] == DEFAULT_MODEL
    else:
        with pytest.raises(CheckpointError, match=DEFAULT_MODEL):
            upscale(textured(8, 8), settings=settings)


def test_unknown_device_and_backend_are_config_errors() -> None:
    model = TinySR().eval()
    with pytest.raises(ConfigError):
        upscale_array(model, textured(8, 8), InferenceSettings(device="tpu"))
    with pytest.raises(ConfigError):
        InferenceSettings(device="cpu", backend="tensorrt")


def test_bf16_precision_stays_close_to_fp32() -> None:
    model = calibrated("swift-srgan", global_skip=True)
    lr = textured(40, 40)
    fp32 = upscale_array(model, lr, InferenceSettings(device="cpu"))
    bf16 = upscale_array(model, lr, InferenceSettings(device="cpu", precision="bf16"))
    error = np.abs(bf16 - fp32)
    assert 0 < error.max() < 0.02  # really reduced precision, yet within a few grey levels
    with pytest.raises(ConfigError):
        InferenceSettings(device="cpu", precision="fp8")


def test_tune_allocator_applies_on_glibc_and_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's allocator setting is applied where glibc is present, and MEDSR_TUNE_ALLOCATOR=0 turns it off."""
    import platform

    from medsr.allocator import tune_allocator

    monkeypatch.setenv("MEDSR_TUNE_ALLOCATOR", "0")
    assert tune_allocator() is False
    monkeypatch.delenv("MEDSR_TUNE_ALLOCATOR")
    assert tune_allocator() is (platform.libc_ver()[0] == "glibc")
