"""Tiling a model whose output depends on its pooling grid (the U-Net): tiled equals whole-image inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from torch import nn

from medsr.infer import InferenceSettings, export_onnx, get_predictor, upscale_array
from medsr.infer.api import tile_for
from medsr.infer.tiling import (
    axis_weights,
    fit_tile,
    shared_pixels,
    smallest_tile,
    tile_layout,
    tile_needs,
    upscale_tiled,
)
from medsr.models import build_generator, load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DATA = Path(__file__).resolve().parents[1] / "data"


def small_unet(scale: int = 1, seed: int = 0) -> nn.Module:
    """A 4-level U-Net of 4 to 32 channels with random weights and a head that changes its input."""
    torch.manual_seed(seed)
    model = build_generator("unet", scale=scale, num_channels=4)
    nn.init.normal_(model.head.weight, std=0.3)
    return model.eval()


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.5 + 0.3 * np.sin(yy / 7.0) * np.cos(xx / 5.0)
    return np.clip(base[..., None] + 0.15 * rng.random((height, width, 1), dtype=np.float32), 0, 1)


def whole_image(model: nn.Module, lr: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(lr.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)


def tile_count(shape: tuple[int, ...], tile: int, overlap: int, multiple: int, context: int) -> int:
    grid = {"multiple": multiple, "context": context}
    return len(tile_layout(shape[0], tile, overlap, **grid)[1]) * len(tile_layout(shape[1], tile, overlap, **grid)[1])


# --- the layout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 100, 149, 150, 333, 512, 1001])
@pytest.mark.parametrize(("tile", "overlap"), [(149, 0), (160, 32), (256, 8), (512, 32)])
def test_tiles_start_on_the_grid_and_weigh_only_pixels_with_the_models_context(length, tile, overlap) -> None:
    multiple, context = 8, 51
    size, starts = tile_layout(length, tile, overlap, multiple=multiple, context=context)
    assert size <= tile and starts[0] == 0 and starts[-1] + size == length
    assert all(start % multiple == 0 for start in starts)
    assert all(a + size - b >= shared_pixels(overlap, context) for a, b in zip(starts, starts[1:], strict=False))
    weights = axis_weights(length, tile, overlap, 2, multiple=multiple, context=context)
    total = np.zeros(length * 2)
    for i, (start, w) in enumerate(zip(starts, weights, strict=True)):
        if i > 0:
            assert np.all(w[: 2 * context] == 0)  # less than `context` input pixels before it in this tile
        if i < len(starts) - 1:
            assert np.all(w[-2 * context :] == 0)
        total[2 * start : 2 * (start + size)] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


def test_a_tile_too_small_for_the_model_is_raised_to_what_it_needs() -> None:
    shared = shared_pixels(32, 51)
    assert shared == 134 and smallest_tile(512, 32, multiple=8, context=51) == 2 * shared
    with pytest.raises(ValueError, match="at least 149"):
        tile_layout(400, 140, 32, multiple=8, context=51)
    side = fit_tile(700, 600, 1, tile=140, overlap=32, multiple=8, context=51)  # raised to twice the shared pixels
    assert side == max(tile_layout(n, 2 * shared, 32, multiple=8, context=51)[0] for n in (700, 600)) < 600
    wide = {"overlap": 110, "multiple": 8, "context": 51}  # overlap / 2 covers the context: the tile is kept
    assert fit_tile(700, 600, 1, tile=300, **wide) == max(tile_layout(n, 300, **wide)[0] for n in (700, 600))
    assert smallest_tile(64, 16) == 64 and fit_tile(700, 600, 1, tile=40, overlap=16) <= 40  # no needs: as before


def test_memory_budget_keeps_the_grid_and_its_own_estimate() -> None:
    def cost(n: int, c: int, h: int, w: int) -> float:
        return n * c * h * w

    for budget in (1, 200 * 200, 300 * 280, 10**9):
        side = fit_tile(600, 500, 1, tile=512, overlap=32, cost=cost, max_memory=budget, multiple=8, context=51)
        (th, ys), (tw, xs) = (tile_layout(n, side, 32, multiple=8, context=51) for n in (600, 500))
        assert all(y % 8 == 0 for y in ys) and all(x % 8 == 0 for x in xs)
        if side > smallest_tile(512, 32, multiple=8, context=51):
            assert cost(1, 1, th, tw) <= budget
        assert max(th, tw) == side


# --- tiled == whole, through both backends -------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_tiled_unet_equals_whole_image_inference(backend) -> None:
    model = small_unet()
    settings = InferenceSettings(device="cpu", backend=backend, max_memory=None)
    predictor = get_predictor(model, settings)
    assert tile_needs(predictor) == (8, 51)
    for shape, tile, overlap in [((303, 271), 160, 0), ((303, 271), 290, 32), ((451, 301), 256, 8),
                                 ((301, 451), 149, 3), ((400, 333), 128, 32)]:
        image = textured(*shape, seed=tile)
        reference = whole_image(model, image)
        out = upscale_array(model, image, settings.with_(tile=tile, overlap=overlap))
        assert tile_count(shape, fit_tile(*shape, 1, tile=tile, overlap=overlap, multiple=8, context=51), overlap,
                          8, 51) >= 2
        assert np.abs(out - reference).max() < 1e-5, (shape, tile, overlap)
    # the budget picks the tile: still the same pixels
    budgeted = settings.with_(tile=512, max_memory=int(predictor.memory(1, 1, 300, 300)))
    image = textured(421, 363, seed=5)
    assert tile_for(model, image.shape, budgeted) <= 300
    assert np.abs(upscale_array(model, image, budgeted) - whole_image(model, image)).max() < 1e-5


def test_tiles_off_the_grid_would_change_the_output() -> None:
    """Without its tile needs the same U-Net tiled differs from whole-image inference: the test above can fail."""
    model = small_unet()
    predictor = get_predictor(model, InferenceSettings(device="cpu"))

    class Blind:  # the predictor without tile_multiple and tile_context
        scale = predictor.scale

        def __call__(self, batch: np.ndarray) -> np.ndarray:
            return predictor(batch)

    image = textured(303, 271)
    reference = whole_image(model, image)
    assert np.abs(upscale_tiled(Blind(), image, tile=270, overlap=32) - reference).max() > 1e-3
    assert np.abs(upscale_tiled(predictor, image, tile=270, overlap=32) - reference).max() < 1e-5


def test_tiled_x2_unet_equals_whole_image_inference() -> None:
    model = small_unet(scale=2, seed=1)
    predictor = get_predictor(model, InferenceSettings(device="cpu"))
    assert tile_needs(predictor) == (4, 28)
    image = textured(261, 203, seed=2)
    out = upscale_tiled(predictor, image, tile=96, overlap=8)  # raised to 128: twice the 64 pixels tiles share
    assert tile_count(image.shape, fit_tile(261, 203, 1, tile=96, overlap=8, multiple=4, context=28), 8, 4, 28) >= 4
    assert np.abs(out - whole_image(model, image)).max() < 1e-5


def test_tile_needs_travel_with_the_exported_graph(tmp_path) -> None:
    import onnx

    proto = onnx.load(str(export_onnx(small_unet(), tmp_path / "u.onnx")))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert (meta["tile_multiple"], meta["tile_context"]) == ("8", "51")
    plain = build_generator("srresnet", scale=2, num_channels=8, num_blocks=1)
    settings = InferenceSettings(device="cpu", backend="onnxruntime")
    assert tile_needs(get_predictor(plain, settings)) == (1, 0)
    assert tile_needs(get_predictor(plain, settings.with_(backend="torch"))) == (1, 0)


# --- the bundled CT model -----------------------------------------------------------------------------


def test_bundled_ct_model_tiled_equals_whole_slice() -> None:
    """``ct-sparse-view`` on a 300x280 CT (the 128x128 fixture resized, HU + 1024 over 4095), tile 256."""
    hu_plus_1024 = pydicom.dcmread(DATA / "ct_small.dcm").pixel_array.astype(np.float32)  # intercept -1024
    x = np.clip(hu_plus_1024 / 4095.0, 0.0, 1.0)
    image = np.asarray(Image.fromarray(x, mode="F").resize((280, 300), Image.Resampling.BICUBIC))
    image = np.clip(image, 0.0, 1.0)[..., None]
    model = load_model("ct-sparse-view", "cpu")
    whole = upscale_array(model, image, InferenceSettings(device="cpu", tile=512, max_memory=None))
    settings = InferenceSettings(device="cpu", tile=256, max_memory=None)
    assert tile_for(model, image.shape, settings) < 280
    tiled = upscale_array(model, image, settings)
    assert np.abs(tiled - whole).max() * 4095 < 0.01  # HU
