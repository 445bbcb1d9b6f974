"""``medsr.upscale(..., return_consistency=True)``, ``consistency="project"`` and ``medsr upscale --consistency``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from typer.testing import CliRunner

from medsr.cli import app
from medsr.consistency import downscale
from medsr.degrade.realistic import box_noise
from medsr.errors import ConfigError
from medsr.infer import InferenceSettings, upscale
from medsr.models import build_generator, save_model

DATA = Path(__file__).parents[1] / "data"
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A small Swift-SRGAN x4 with random weights: far from consistent with its input."""
    torch.manual_seed(0)
    model = build_generator("swift-srgan", in_channels=1, scale=4, num_blocks=2, num_channels=16).eval()
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny-x4.safetensors", {"name": "tiny-x4"})


def chest_lr() -> np.ndarray:
    """A 64x48 float crop of a real chest X-ray fixture, made LR by the box-noise degradation (16x12)."""
    pixels = np.asarray(Image.open(DATA / "xray_b343e657.png").convert("L"), dtype=np.float32)[200:264, 300:348]
    return box_noise(pixels[..., None] / 255.0, 4, bit_depth=16, rng=np.random.default_rng(0))[..., 0]


@pytest.mark.parametrize("kernel", ["bicubic", "box"])
def test_projected_output_degrades_to_its_input(tiny_model, kernel):
    lr = chest_lr()
    raw, raw_map = upscale(lr, tiny_model, InferenceSettings(device="cpu", consistency_kernel=kernel),
                           return_consistency=True)
    settings = InferenceSettings(device="cpu", consistency="project", consistency_kernel=kernel)
    out, found = upscale(lr, tiny_model, settings, return_consistency=True)
    assert out.shape == (64, 48) and found.shape == (16, 12) and raw_map.shape == (16, 12)
    np.testing.assert_allclose(downscale(out[..., None], 4, kernel)[..., 0], lr, atol=1e-5)
    assert np.sqrt(np.mean(raw_map**2)) > 5  # a random network says much the input does not
    assert np.abs(found).max() < 0.01


def test_bundled_model_is_made_consistent_on_a_medical_image(tmp_path):
    path = tmp_path / "lr.png"
    Image.fromarray(np.rint(chest_lr() * 255).astype(np.uint8), "L").save(path)
    settings = InferenceSettings(device="cpu", consistency="project", consistency_kernel="box")
    image, found = upscale(path, "xray-x4", settings, return_consistency=True)
    assert image.pixels.shape == (64, 48, 1) and found.shape == (16, 12, 1)
    assert np.abs(found).max() < 0.01


def test_unknown_consistency_settings_are_refused():
    with pytest.raises(ConfigError, match="unknown consistency 'exact'"):
        InferenceSettings(consistency="exact")
    with pytest.raises(ConfigError, match="unknown consistency kernel"):
        InferenceSettings(consistency_kernel="gaussian")


def test_cli_writes_projected_output_and_its_map(tiny_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.rint(chest_lr() * 255).astype(np.uint8), "L").save(folder / "chest.png")
    out = tmp_path / "out"
    args = ["upscale", str(folder), "-o", str(out), "--model", str(tiny_model), "--device", "cpu",
            "--consistency-map"]
    result = CliRunner().invoke(app, [*args, "--consistency", "project", "--consistency-kernel", "box"])
    assert result.exit_code == 0, result.output
    assert "consistency RMS" in result.output
    written = np.asarray(Image.open(out / "chest.png"), dtype=np.float64) / 255.0
    lr = np.asarray(Image.open(folder / "chest.png"), dtype=np.float64) / 255.0
    # the written 8-bit output is consistent up to its rounding (half a grey level)
    assert np.abs(downscale(written[..., None], 4, "box")[..., 0] - lr).max() <= 0.5 / 255 + 1e-6
    found = tifffile.imread(out / "chest.consistency.tiff")
    assert found.dtype == np.float32 and found.squeeze().shape == (16, 12) and np.abs(found).max() < 0.01
    raw = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "raw")])
    assert raw.exit_code == 0, raw.output
    assert np.abs(tifffile.imread(tmp_path / "raw" / "chest.consistency.tiff")).max() > 5


def test_cli_refuses_an_unknown_consistency_before_any_work(tiny_model, tmp_path):
    result = CliRunner().invoke(app, ["upscale", str(tmp_path), "-o", str(tmp_path / "o"), "--model",
                                      str(tiny_model), "--consistency", "exact"])
    # main() prints a MedsrError as one line "medsr: ..." and exits 2
    assert isinstance(result.exception, ConfigError) and "unknown consistency 'exact'" in str(result.exception)


def test_strength_scales_the_models_change_to_bicubic(tiny_model):
    from medsr.degrade.bicubic import pil_resize

    lr = chest_lr()
    raw = InferenceSettings(device="cpu", clip_to_input=False)
    model = upscale(lr, tiny_model, raw)
    bicubic = pil_resize(lr[..., None], (64, 48), "bicubic", 16)[..., 0]
    half = upscale(lr, tiny_model, raw.with_(strength=0.5))
    np.testing.assert_allclose(half, bicubic + 0.5 * (model - bicubic), atol=1e-5)
    np.testing.assert_allclose(upscale(lr, tiny_model, raw.with_(strength=0.0)), bicubic, atol=1e-6)
    with pytest.raises(ConfigError, match="strength must be between 0"):
        InferenceSettings(strength=1.5)


def test_fidelity_moves_part_of_the_way_to_the_projection(tiny_model):
    lr = chest_lr()
    base = InferenceSettings(device="cpu", consistency_kernel="box")
    model = upscale(lr, tiny_model, base)
    full = upscale(lr, tiny_model, base.with_(consistency="project"))
    half = upscale(lr, tiny_model, base.with_(consistency="project", fidelity=0.5))
    inside = (full > 0) & (full < 1) & (model > 0) & (model < 1)  # where clipping to [0, 1] did not bind
    np.testing.assert_allclose(half[inside], (0.5 * (model + full))[inside], atol=1e-5)
    residual = downscale(half[..., None], 4, "box")[..., 0] - lr
    np.testing.assert_allclose(residual, 0.5 * (downscale(model[..., None], 4, "box")[..., 0] - lr), atol=1e-3)
    with pytest.raises(ConfigError, match="fidelity must be between 0"):
        InferenceSettings(fidelity=-0.1)
