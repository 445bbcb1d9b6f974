"""Degradation models: each one's defining property, the registry, and the ``medsr degrade`` command."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medsr.degrade import (
    DEGRADATIONS,
    REGISTRY,
    degradation_params,
    degradation_spec,
    degrade_image,
    get_degradation,
    hr_multiple,
    lr_scale,
    lr_shape,
    parse_params,
)
from medsr.degrade.bicubic import crop_to_multiple, pil_resize
from medsr.degrade.blur_noise import gaussian_blur
from medsr.errors import ConfigError
from medsr.io.image import MedicalImage

BICUBIC = Image.Resampling.BICUBIC


def _random_u8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _smooth_image(height: int, width: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A float32 (H, W, C) image in [0, 1] with structure at several scales (random noise, blurred)."""
    noise = np.random.default_rng(seed).random((height, width, channels)).astype(np.float32)
    return np.clip(gaussian_blur(noise, 2.0) * 2.0 - 0.5, 0.0, 1.0)


def _on_8bit_grid(image: np.ndarray) -> bool:
    return bool(np.allclose(image * 255.0, np.rint(image * 255.0), atol=1e-3))


# --- bicubic ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_bicubic_equals_pillow_on_uint8(channels: int) -> None:
    u8 = _random_u8((48, 64, channels))
    lr = get_degradation("bicubic")(u8.astype(np.float32) / 255.0, 4)
    pil = Image.fromarray(u8[..., 0] if channels == 1 else u8)
    expected = np.asarray(pil.resize((16, 12), BICUBIC)).reshape(12, 16, channels)
    assert lr.shape == (12, 16, channels) and lr.dtype == np.float32
    np.testing.assert_array_equal(np.rint(lr * 255.0).astype(np.uint8), expected)


def test_bicubic_16bit_matches_pillow_integer_mode_and_keeps_levels() -> None:
    u16 = np.random.default_rng(1).integers(0, 65536, (32, 40), dtype=np.int32)
    lr = get_degradation("bicubic")((u16 / 65535.0).astype(np.float32)[..., None], 4, bit_depth=16)
    expected = np.clip(np.asarray(Image.fromarray(u16, "I").resize((10, 8), BICUBIC)), 0, 65535)
    assert np.abs(lr[..., 0] * 65535.0 - expected).max() <= 1.0
    assert not _on_8bit_grid(lr)


# --- bicubic-blur-noise -----------------------------------------------------------------------------------


def test_blur_noise_is_reproducible_per_seed() -> None:
    hr = _smooth_image(64, 64)
    fn = get_degradation("bicubic-blur-noise")
    first = fn(hr, 4, rng=np.random.default_rng(7))
    again = fn(hr, 4, rng=np.random.default_rng(7))
    other = fn(hr, 4, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 0
    assert first.shape == (16, 16, 1) and _on_8bit_grid(first)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_gaussian_noise_std_on_flat_image(bit_depth: int) -> None:
    flat = np.full((256, 256, 1), 0.5, dtype=np.float32)
    lr = get_degradation("bicubic-blur-noise")(
        flat, 2, bit_depth=bit_depth, rng=np.random.default_rng(0), noise="gaussian", noise_sigma=0.05
    )
    assert lr.mean() == pytest.approx(0.5, abs=0.005)
    assert lr.std() == pytest.approx(0.05, rel=0.05)


def test_poisson_noise_follows_photon_count() -> None:
    flat = np.full((256, 256, 1), 0.5, dtype=np.float32)
    fn = get_degradation("bicubic-blur-noise")
    stds = {}
    for photons in (50.0, 2000.0):
        lr = fn(flat, 2, bit_depth=16, rng=np.random.default_rng(0), noise="poisson", photons=photons)
        stds[photons] = lr.std()
        # Poisson counts: variance = mean count, so std on the [0, 1] scale is sqrt(value / photons).
        assert lr.std() == pytest.approx(np.sqrt(0.5 / photons), rel=0.06)
    assert stds[50.0] > 4 * stds[2000.0]  # low dose: more quantum noise


def test_blur_noise_without_noise_is_gaussian_blur_then_pillow() -> None:
    from skimage.filters import gaussian

    hr = _smooth_image(64, 48, channels=3, seed=2)
    lr = get_degradation("bicubic-blur-noise")(hr, 4, bit_depth=16, blur_sigma=1.5, noise="none")
    blurred = gaussian(hr, sigma=1.5, mode="reflect", channel_axis=-1, preserve_range=True)
    expected = np.stack([
        np.asarray(Image.fromarray(blurred[..., c].astype(np.float32), "F").resize((12, 16), BICUBIC))
        for c in range(3)
    ], axis=-1)
    np.testing.assert_allclose(lr, np.clip(expected, 0, 1), atol=1e-4)


def test_blur_noise_rejects_unknown_noise() -> None:
    with pytest.raises(ConfigError, match="poisson"):
        get_degradation("bicubic-blur-noise")(_smooth_image(16, 16), 2, noise="speckle")


# --- ultrasound -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_ultrasound_leaves_column_profiles_unchanged(bit_depth: int) -> None:
    profile = np.random.default_rng(3).random(72).astype(np.float32)
    if bit_depth == 8:
        profile = np.rint(profile * 255.0) / 255.0
    hr = np.repeat(profile[:, None, None], 64, axis=1)  # varies in y (depth) only
    lr = get_degradation("ultrasound")(hr, 4, bit_depth=bit_depth)
    assert lr.shape == (72, 16, 1)
    for column in range(lr.shape[1]):
        np.testing.assert_allclose(lr[:, column, 0], profile, atol=1e-6)


def test_ultrasound_resamples_each_row_independently_like_pillow() -> None:
    u8 = _random_u8((20, 48, 3), seed=4)
    lr = get_degradation("ultrasound")(u8.astype(np.float32) / 255.0, 3)
    assert lr.shape == (20, 16, 3)
    whole = np.asarray(Image.fromarray(u8).resize((16, 20), BICUBIC))
    np.testing.assert_array_equal(np.rint(lr * 255).astype(np.uint8), whole)
    for row in (0, 7, 19):  # a one-row image gives the same row: nothing is mixed across depth
        single = np.asarray(Image.fromarray(u8[row:row + 1]).resize((16, 1), BICUBIC))[0]
        np.testing.assert_array_equal(np.rint(lr[row] * 255).astype(np.uint8), single)


# --- ct-sparse-view / ct-sinogram -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    """Shepp-Logan phantom (bundled with scikit-image), 128x128, zero outside its inscribed circle."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    image = resize(shepp_logan_phantom(), (128, 128), anti_aliasing=True)
    yy, xx = np.mgrid[:128, :128]
    return image * (((yy - 64) ** 2 + (xx - 64) ** 2) <= 63**2)


def _inside(n: int) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return ((yy - n // 2) ** 2 + (xx - n // 2) ** 2) <= (n // 2 - 1) ** 2


def test_ct_all_angles_reproduce_input_within_fbp_error(phantom: np.ndarray) -> None:
    from skimage.transform import iradon, radon

    from medsr.degrade.ct import sparse_view_ct

    inside = _inside(128)

    def rmse(image: np.ndarray) -> float:
        return float(np.sqrt(np.mean((image[inside] - phantom[inside]) ** 2)))

    angles = np.linspace(0.0, 180.0, 180, endpoint=False)
    reference = iradon(radon(phantom, angles, circle=True), angles, filter_name="ramp", circle=True)
    full = sparse_view_ct(phantom, 1)
    # The FBP error of a 180-view ramp-filtered reconstruction (about 0.037 here, from the phantom's sharp
    # edges) is scikit-image's own: our padding to the circle must not add to it.
    assert rmse(full.fbp) <= rmse(reference) + 1e-3
    assert rmse(full.fbp) < 0.05
    assert full.fbp.shape == phantom.shape
    assert full.sinogram_full.shape == (full.sinogram_full.shape[0], 180)
    sparse4 = sparse_view_ct(phantom, 4)
    sparse6 = sparse_view_ct(phantom, 6)
    assert sparse4.sinogram_sparse.shape[1] == 45 and len(sparse4.angles_sparse) == 45
    np.testing.assert_array_equal(sparse4.sinogram_sparse, sparse4.sinogram_full[:, ::4])
    assert rmse(sparse4.fbp) > 1.15 * rmse(full.fbp)  # streaks: clearly worse than all views
    assert rmse(sparse6.fbp) > 1.5 * rmse(full.fbp)


def test_ct_hu_route_round_trips(phantom: np.ndarray) -> None:
    from medsr.degrade.ct import sparse_view_ct

    hu = -1000.0 + phantom * 2000.0  # air .. dense bone
    value_range = (-1024.0, 3071.0)
    working = (hu - value_range[0]) / (value_range[1] - value_range[0])
    in_hu = sparse_view_ct(hu, 1, hu=True).fbp
    in_working = sparse_view_ct(working, 1, value_range=value_range).fbp
    inside = _inside(128)
    assert np.sqrt(np.mean((in_hu - hu)[inside] ** 2)) < 0.05 * 2000.0
    back_to_hu = in_working * (value_range[1] - value_range[0]) + value_range[0]
    np.testing.assert_allclose(back_to_hu, in_hu, atol=1e-6)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_ct_registry_routes_shapes(phantom: np.ndarray, bit_depth: int) -> None:
    hr = phantom[:96, :80, None].astype(np.float32)  # not square: padded to the circle, cropped back
    fbp = get_degradation("ct-sparse-view")(hr, 4, bit_depth=bit_depth)
    assert fbp.shape == hr.shape == (*lr_shape("ct-sparse-view", (96, 80), 4), 1)
    assert 0.0 <= fbp.min() and fbp.max() <= 1.0
    assert _on_8bit_grid(fbp) == (bit_depth == 8)
    sinogram = get_degradation("ct-sinogram")
    full = sinogram(hr, 1, bit_depth=bit_depth)
    sparse = sinogram(hr, 4, bit_depth=bit_depth)
    assert sparse.shape == (*lr_shape("ct-sinogram", (96, 80), 4), 1)
    assert full.shape[1] == 180 and sparse.shape[1] == 45 and sparse.shape[0] == full.shape[0]
    np.testing.assert_array_equal(sparse, full[:, ::4])  # HR target of the route at scale 1; LR = HR[:, ::S]


def test_ct_rejects_colour_and_uneven_angle_steps() -> None:
    with pytest.raises(ConfigError, match="grayscale"):
        get_degradation("ct-sparse-view")(np.zeros((16, 16, 3), np.float32), 2)
    with pytest.raises(ConfigError, match="multiple"):
        get_degradation("ct-sparse-view")(np.zeros((16, 16, 1), np.float32), 7)


# --- endoscopy --------------------------------------------------------------------------------------------


def _jpeg(u8: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(u8).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


@pytest.mark.parametrize("channels", [1, 3])
def test_endoscopy_is_blur_bicubic_then_pillow_jpeg(channels: int) -> None:
    hr = _smooth_image(96, 128, channels, seed=5)
    lr = get_degradation("endoscopy")(hr, 4, quality=60)
    soft = pil_resize(gaussian_blur(hr, 0.8), (24, 32), "bicubic", 8)
    soft_u8 = np.rint(soft * 255.0).astype(np.uint8)
    expected = _jpeg(soft_u8[..., 0] if channels == 1 else soft_u8, 60).reshape(soft.shape)
    assert lr.shape == (24, 32, channels)
    np.testing.assert_array_equal(np.rint(lr * 255.0).astype(np.uint8), expected)
    assert np.abs(lr - soft).max() > 0  # JPEG changed it


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_endoscopy_lower_quality_gives_larger_error(bit_depth: int) -> None:
    hr = _smooth_image(128, 128, 3, seed=6)
    soft = pil_resize(gaussian_blur(hr, 0.8), (64, 64), "bicubic", bit_depth)
    fn = get_degradation("endoscopy")
    errors = [
        float(np.sqrt(np.mean((fn(hr, 2, bit_depth=bit_depth, quality=q) - soft) ** 2))) for q in (95, 50, 10)
    ]
    assert 0 < errors[0] < errors[1] < errors[2]
    if bit_depth == 16:
        assert not _on_8bit_grid(fn(hr, 2, bit_depth=16))


# --- registry, parameters, whole images -------------------------------------------------------------------


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match="bicubic-blur-noise.*ultrasound.*ct-sparse-view.*endoscopy"):
        get_degradation("gaussian")
    with pytest.raises(ConfigError):
        lr_shape("nope", (8, 8), 2)


def test_import_is_lazy() -> None:
    code = "import sys, medsr.degrade; assert 'skimage' not in sys.modules and 'scipy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_every_model_matches_lr_shape_and_range(name: str, bit_depth: int) -> None:
    hr = crop_to_multiple(_smooth_image(50, 42, 1, seed=9), hr_multiple(name, 2))
    lr = get_degradation(name)(hr, 2, bit_depth=bit_depth, rng=np.random.default_rng(0))
    assert lr.shape == (*lr_shape(name, hr.shape[:2], 2), 1)
    assert lr.dtype == np.float32 and lr.min() >= 0.0 and lr.max() <= 1.0
    assert _on_8bit_grid(lr) or bit_depth > 8
    sy, sx = lr_scale(name, 2)
    if degradation_spec(name).output == "image":
        assert (lr.shape[0] * sy, lr.shape[1] * sx) == hr.shape[:2]


def test_registry_records_answer_what_callers_used_to_read_from_names() -> None:
    assert set(REGISTRY) == set(DEGRADATIONS)
    ct_models = {name for name, spec in REGISTRY.items() if spec.value_units is not None}
    assert ct_models == {"ct-sparse-view", "ct-sinogram"}
    assert all(REGISTRY[name].hr_multiple(4) == (1, 1) for name in ct_models)
    assert [name for name, spec in REGISTRY.items() if spec.whole_image] == ["ct-sparse-view"]
    assert [name for name, spec in REGISTRY.items() if not spec.rotations] == ["ultrasound"]
    assert hr_multiple("ultrasound", 3) == lr_scale("ultrasound", 3) == (1, 3)
    assert lr_shape("ct-sinogram", (96, 80), 4, n_angles=120) == (127, 30)  # hypot(96, 80) = 124.96 -> 125 + 2
    # the CT value range is added once, only where the model works in modality units and params lack one
    assert degradation_spec("ct-sparse-view").with_value_range({}, (-1024, 3071)) == {"value_range": (-1024.0, 3071.0)}
    assert degradation_spec("ct-sparse-view").with_value_range({"value_range": (0, 1)}, (-1024, 3071)) == {
        "value_range": (0, 1)}
    assert degradation_spec("bicubic").with_value_range({}, (-1024, 3071)) == {}
    with pytest.raises(ConfigError, match="choose one of: bicubic"):
        degradation_spec("gaussian")


def test_degrade_help_lists_the_whole_registry() -> None:
    from typer.testing import CliRunner

    from medsr.cli import app

    result = CliRunner().invoke(app, ["degrade", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name, spec in REGISTRY.items():
        assert f"{name}: {spec.summary}" in result.output


def test_parse_params_types_and_errors() -> None:
    assert degradation_params("endoscopy") == {"blur_sigma": 0.8, "quality": 75}
    params = parse_params("bicubic-blur-noise", ["noise=poisson", "photons=50", "blur-sigma=2"])
    assert params == {"noise": "poisson", "photons": 50.0, "blur_sigma": 2.0}
    assert parse_params("ct-sparse-view", ["value_range=-1024,3071", "n_angles=90"]) == {
        "value_range": (-1024.0, 3071.0), "n_angles": 90}
    with pytest.raises(ConfigError, match="blur_sigma"):
        parse_params("endoscopy", ["sharpness=3"])
    with pytest.raises(ConfigError, match="quality"):
        parse_params("endoscopy", ["quality=high"])


def test_degrade_image_multiframe_spacing_and_ct_value_range() -> None:
    frames = np.stack([_smooth_image(34, 50, seed=s) for s in range(3)])
    image = MedicalImage(frames, "dicom", 12, (0.0, 4095.0), pixel_spacing=(0.5, 0.25))
    lr = degrade_image(image, "ultrasound", 4)
    assert lr.pixels.shape == (3, 34, 12, 1) and lr.pixel_spacing == (0.5, 1.0) and lr.bit_depth == 12
    expected = get_degradation("ultrasound")(frames[1, :, 1:49], 4, bit_depth=12)  # width 50 -> 48, centred
    np.testing.assert_array_equal(lr.pixels[1], expected)
    ct = MedicalImage(frames[0], "dicom", 16, (-1024.0, 3071.0), modality="CT", pixel_spacing=(0.7, 0.7))
    fbp = degrade_image(ct, "ct-sparse-view", 2)
    expected = get_degradation("ct-sparse-view")(frames[0], 2, bit_depth=16, value_range=(-1024.0, 3071.0))
    np.testing.assert_array_equal(fbp.pixels, expected)
    assert fbp.pixel_spacing == (0.7, 0.7)


# --- medsr degrade ----------------------------------------------------------------------------------------


def test_cli_degrade_writes_lr_files(tmp_path) -> None:
    from typer.testing import CliRunner

    from medsr.cli import app

    src = tmp_path / "hr"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(_random_u8((50, 66), seed=1)).save(src / "gray.png")
    u16 = np.random.default_rng(2).integers(0, 65536, (41, 36), dtype=np.uint16)
    Image.fromarray(u16).save(src / "sub" / "deep.png")
    (src / "broken.png").write_bytes(b"not a png at all")
    out = tmp_path / "lr"
    runner = CliRunner()
    result = runner.invoke(app, ["degrade", str(src), "-o", str(out), "--model", "bicubic", "--scale", "4"])
    assert result.exit_code == 1, result.output
    assert "broken.png" in result.output
    with Image.open(out / "gray.png") as gray:
        assert gray.size == (16, 12) and gray.mode == "L"
        np.testing.assert_array_equal(
            np.asarray(gray), np.asarray(Image.fromarray(_random_u8((50, 66), seed=1)[1:49, 1:65]).resize(
                (16, 12), BICUBIC)))
    with Image.open(out / "sub" / "deep.png") as deep:
        assert deep.size == (9, 10) and deep.mode.startswith("I")
    assert not (out / "broken.png").exists()

    us_out = tmp_path / "us"
    gray_png = str(src / "gray.png")
    result = runner.invoke(app, ["degrade", gray_png, "-o", str(us_out), "-m", "ultrasound", "-s", "3"])
    assert result.exit_code == 0, result.output
    with Image.open(us_out / "gray.png") as lr:
        assert lr.size == (22, 50)

    noisy = [tmp_path / name for name in ("seed0", "seed0-again", "seed1")]
    for folder, seed in zip(noisy, (0, 0, 1), strict=True):
        args = ["degrade", str(src / "gray.png"), "-o", str(folder), "-m", "bicubic-blur-noise",
                "--seed", str(seed), "--param", "noise_sigma=0.05"]
        assert runner.invoke(app, args).exit_code == 0
    pixels = [np.asarray(Image.open(folder / "gray.png")) for folder in noisy]
    np.testing.assert_array_equal(pixels[0], pixels[1])
    assert np.abs(pixels[0].astype(int) - pixels[2]).max() > 0

    bad = runner.invoke(app, ["degrade", str(src), "-o", str(out), "-m", "endoscopy", "-p", "sharpness=1"])
    assert isinstance(bad.exception, ConfigError)
