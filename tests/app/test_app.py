"""The web app: its logic (windows, heatmaps, wipe, linked zoom, runs, downloads) and the page, via AppTest.

The page tests drive the real Streamlit script with ``streamlit.testing.v1.AppTest``; a tiny random model in a
temporary models folder stands in where the bundled model's quality does not matter, so only the test that
checks the bundled model beats bicubic needs its weights.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_windowing

from medsr.app import APP_FILE, diffs, logic
from medsr.errors import ConfigError, ImageReadError
from medsr.io import read_image
from medsr.io.image import MedicalImage
from medsr.models import DEFAULT_MODEL

DATA = Path(__file__).parents[1] / "data"
SAMPLE = logic.sample_paths()[0]

TIMEOUT = 300


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def sample_crop(size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` of the first bundled sample, uint8 (H, W)."""
    pixels = np.asarray(Image.open(SAMPLE))
    top, left = (pixels.shape[0] - size) // 2, (pixels.shape[1] - size) // 2
    return pixels[top:top + size, left:left + size]


# --- display logic ------------------------------------------------------------------------------------------


def test_window_level_matches_pydicom_linear_voi() -> None:
    values = np.linspace(-1500.0, 1500.0, 301)
    for width, level in [*logic.WINDOW_PRESETS.values(), (2.0, 0.0), (1.0, 10.0)]:
        ds = Dataset()
        ds.BitsStored, ds.PixelRepresentation, ds.PhotometricInterpretation = 16, 0, "MONOCHROME2"
        ds.WindowWidth, ds.WindowCenter, ds.VOILUTFunction = width, level, "LINEAR"
        expected = apply_windowing(values.copy(), ds) / 65535.0
        np.testing.assert_allclose(logic.window_level(values, width, level), expected, atol=1e-9)
    with pytest.raises(ValueError):
        logic.window_level(values, 0.5, 0.0)


def test_to_display_windows_in_modality_units_and_keeps_monochrome1_bright_dense() -> None:
    hu = np.array([-1024.0, 40.0, 50.0, 3071.0])
    value_range = (-1024.0, 3071.0)
    pixels = ((hu - value_range[0]) / (value_range[1] - value_range[0])).reshape(1, 4, 1).astype(np.float32)
    shown = logic.to_display(pixels, value_range, logic.WINDOW_PRESETS["Mediastinum"])
    assert shown.dtype == np.uint8 and shown.shape == (1, 4)
    assert shown[0, 0] == 0 and shown[0, 3] == 255 and 100 < shown[0, 1] < shown[0, 2] < 160
    full = logic.to_display(pixels)
    np.testing.assert_array_equal(full, np.rint(pixels[..., 0] * 255).astype(np.uint8))
    # MONOCHROME1 (reversed range: a high value is dark): the same values show inverted, so that a window
    # over the whole range shows the working image, which is already brighter-is-denser.
    reversed_range = (float(value_range[1]), float(value_range[0]))
    mono1 = (1.0 - pixels).astype(np.float32)  # the same modality values as ``pixels``
    whole = (4096.0, 1023.5)
    shown1 = logic.to_display(mono1, reversed_range, whole).astype(int)
    np.testing.assert_array_equal(shown1, 255 - logic.to_display(pixels, value_range, whole).astype(int))
    assert np.abs(shown1 - np.rint(mono1[..., 0] * 255)).max() <= 1


def test_default_window_reads_the_dicom_header() -> None:
    image = read_image(DATA / "ct_small.dcm")
    assert "WindowWidth" not in image.dataset and logic.default_window(image) is None
    ds = pydicom.dcmread(DATA / "ct_small.dcm", stop_before_pixels=True)
    ds.WindowWidth, ds.WindowCenter = [400, 1500], [40, -600]  # several views (VM 1-n): the first counts
    assert logic.default_window(image.with_pixels(image.pixels, dataset=ds)) == (400.0, 40.0)
    ds.WindowWidth, ds.WindowCenter = 0, 40  # invalid width: no window
    assert logic.default_window(image.with_pixels(image.pixels, dataset=ds)) is None
    assert logic.default_window(read_image(SAMPLE)) is None


def test_abs_error_and_heatmap_colours() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((8, 9, 3), dtype=np.float32), rng.random((8, 9, 3), dtype=np.float32)
    np.testing.assert_allclose(logic.abs_error(a, b), np.mean(np.abs(a - b), axis=-1), atol=1e-7)
    with pytest.raises(ValueError):
        logic.abs_error(a, b[:, :8])
    error = np.linspace(0.0, 0.2, 50, dtype=np.float32).reshape(5, 10)
    heat = diffs.error_map(error, 0.1, border=0)
    assert heat.shape == (5, 10, 3) and heat.dtype == np.uint8
    assert tuple(heat[0, 0]) == (0, 0, 0)  # no error: black
    assert tuple(heat[-1, -1]) == (255, 255, 0)  # at or over full scale: yellow
    brightness = heat.astype(int).sum(axis=-1).ravel()
    assert np.all(np.diff(brightness) >= 0)  # more error, hotter colour
    with pytest.raises(ValueError):
        diffs.error_map(error, 0.0, border=0)


def test_heatmap_full_scale_follows_the_errors() -> None:
    small = np.full((10, 10), 0.004)  # a few 8-bit grey levels
    assert logic.suggest_full_scale(small) == 0.005
    tiny = np.zeros((100, 100))
    tiny[0, 0] = 0.3  # one outlier pixel does not set the scale
    assert logic.suggest_full_scale(tiny) == logic.HEATMAP_SCALES[0]
    assert logic.suggest_full_scale(np.ones((4, 4))) == logic.HEATMAP_SCALES[-1]


# --- inputs, models, runs, downloads ------------------------------------------------------------------------


def test_read_upload_names_the_upload_and_refuses_bad_files() -> None:
    image = logic.read_upload("scan.png", png_bytes(sample_crop(32)))
    assert image.path == "scan.png" and image.pixels.shape == (32, 32, 1) and image.bit_depth == 8
    with pytest.raises(ImageReadError, match=r"^cannot read broken\.png: corrupt or truncated png") as info:
        logic.read_upload("broken.png", png_bytes(sample_crop(32))[:60])
    assert "medsr-app-" not in str(info.value)  # the temporary folder is not the user's business
    with pytest.raises(ImageReadError, match=r"^cannot read header\.png: corrupt or truncated png") as info:
        logic.read_upload("header.png", b"\x89PNG\r\n\x1a\n" + b"x" * 200)  # Pillow quotes the path here
    assert "medsr-app-" not in str(info.value)
    with pytest.raises(ImageReadError, match=r"^cannot read notes\.txt: unsupported format"):
        logic.read_upload("notes.txt", b"just some text, long enough to look at its first bytes")
    with pytest.raises(ImageReadError, match="file too large"):
        logic.read_upload("big.png", png_bytes(sample_crop(32)), max_bytes=100)
    with pytest.raises(ImageReadError, match="image too large"):
        logic.read_upload("wide.png", png_bytes(sample_crop(32)), max_pixels=1000)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("..", "upload"),
        ("a\x00b.png", "ab.png"),
        ("x" * 300 + ".png", "x" * 196 + ".png"),
        ("../../etc/passwd.png", "passwd.png"),
        ("C:\\Users\\me\\scan.png", "scan.png"),
        ("line\nbreak\r.png", "linebreak.png"),
        ("", "upload"),
        ("\u00e9" * 150 + ".png", "\u00e9" * 98 + ".png"),  # 2-byte characters are not cut in half
    ],
)
def test_upload_names_are_reduced_to_a_safe_base_name(name: str, safe: str) -> None:
    assert logic.upload_name(name) == safe
    image = logic.read_upload(name, png_bytes(sample_crop(16)))
    assert image.path == safe and image.pixels.shape == (16, 16, 1)
    assert len(safe.encode()) <= 200 and "/" not in safe and ".." not in safe
    assert all(ch.isprintable() for ch in safe)


@pytest.mark.parametrize("name", ["..", "a\x00b.png", "x" * 300 + ".png", "../../etc/passwd.png"])
def test_garbage_upload_is_one_clear_error_under_its_safe_name(name: str) -> None:
    safe = logic.upload_name(name)
    with pytest.raises(ImageReadError) as info:
        logic.read_upload(name, b"\x00\xff garbage, not an image \x01\x02" * 10)
    assert str(info.value) == f"cannot read {safe}: unsupported format (not PNG, JPEG, TIFF or DICOM)"
    with pytest.raises(ImageReadError) as info:
        logic.read_upload(name, b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    message = str(info.value)
    assert message.startswith(f"cannot read {safe}: corrupt or truncated png") and "\n" not in message
    assert "medsr-app-" not in message and "/tmp" not in message


def test_any_failure_while_reading_an_upload_is_one_image_read_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(path, max_pixels):
        raise RuntimeError(f"reader crashed on {path}\nwith a traceback-like second line")

    monkeypatch.setattr(logic, "read_image", explode)
    with pytest.raises(ImageReadError) as info:
        logic.read_upload("scan.png", png_bytes(sample_crop(16)))
    assert str(info.value) == "cannot read scan.png: unreadable upload (reader crashed on scan.png)"

    def disk_full(path, max_pixels):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(logic, "read_image", disk_full)
    with pytest.raises(ImageReadError, match=r"^cannot read scan\.png: cannot store the upload \(No space left"):
        logic.read_upload("scan.png", png_bytes(sample_crop(16)))


def test_describe_dicom_gives_modality_size_and_spacing() -> None:
    info = logic.describe(read_image(DATA / "ct_small.dcm"))
    assert info["Modality"] == "CT" and info["Size"] == "128 x 128 px"
    assert info["Pixel spacing"].startswith("0.6615 x 0.6615")
    assert "Modality" not in logic.describe(read_image(SAMPLE))


def test_model_choices_list_bundled_models_and_checkpoints_in_the_folder(tmp_path: Path) -> None:
    from medsr.models import list_bundled_models

    (tmp_path / "a").mkdir()
    for name in ("a/net.safetensors", "b.pth.tar", "c.pt", "notes.txt", ".hidden.safetensors"):
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in logic.find_checkpoints(tmp_path)]
    assert found == ["a/net.safetensors", "b.pth.tar", "c.pt"]
    choices = logic.model_choices(tmp_path)
    bundled = [str(m["name"]) for m in list_bundled_models()]
    assert list(choices.values()) == [""] + bundled + [str(tmp_path / f) for f in found]
    assert list(choices)[0] == logic.AUTO_MODEL
    assert logic.find_checkpoints(tmp_path / "missing") == [] and logic.find_checkpoints(None) == []


def test_compatible_scales_follow_the_degradation() -> None:
    assert logic.compatible_scales("bicubic", (4, 4)) == [4]
    assert logic.compatible_scales("ultrasound", (1, 4)) == [4]
    assert logic.compatible_scales("ultrasound", (4, 4)) == []
    assert logic.compatible_scales("ct-sparse-view", (1, 1)) == [2, 3, 4, 8]


def test_simulate_scores_follow_the_evaluate_protocol(tiny_model: torch.nn.Module) -> None:
    from medsr.metrics import psnr, ssim
    from medsr.protocol import Protocol

    image = logic.read_upload("crop.png", png_bytes(sample_crop(130)))  # not a multiple of 4: cropped to 128
    outcome = logic.run_simulate(image, tiny_model, scale=4, device="cpu")
    assert outcome.hr.shape == outcome.sr.shape == outcome.bicubic.shape == (128, 128, 1)
    assert outcome.lr.shape == (32, 32, 1) and not outcome.cropped
    for out in (outcome.lr, outcome.bicubic, outcome.sr):  # 8-bit levels, as a saved file holds
        np.testing.assert_allclose(out * 255, np.rint(out * 255), atol=1e-3)
    protocol = Protocol(scale=4)
    pair = protocol.pair(image, "crop.png")
    rows = protocol.run(pair, protocol.baselines(["bicubic"], pair))
    assert outcome.scores["Bicubic"]["psnr"] == pytest.approx(rows[0].psnr, abs=1e-6)
    assert outcome.scores["Bicubic"]["ssim"] == pytest.approx(rows[0].ssim, abs=1e-6)
    assert outcome.scores["Model"]["psnr"] == pytest.approx(psnr(outcome.sr, outcome.hr, 1.0, border=4))
    assert outcome.scores["Model"]["ssim"] == pytest.approx(ssim(outcome.sr, outcome.hr, 1.0, border=4))
    with pytest.raises(ConfigError, match="needs x2x2"):
        logic.run_simulate(image, tiny_model, scale=2, device="cpu")


def test_simulate_crops_large_inputs(tiny_model: torch.nn.Module) -> None:
    pixels = np.random.default_rng(2).random((40, 100, 1), dtype=np.float32)
    image = MedicalImage(pixels, "png", 8, (0.0, 255.0))
    outcome = logic.run_simulate(image, tiny_model, scale=4, device="cpu", max_side=64)
    assert outcome.cropped and outcome.hr.shape == (40, 64, 1)
    np.testing.assert_allclose(outcome.hr, image.pixels[:, 18:82], atol=0)


def test_enhance_downloads_keep_bit_depth_and_dicom(tiny_model: torch.nn.Module, tmp_path: Path) -> None:
    deep = (sample_crop(24).astype(np.uint16) * 257)
    image16 = logic.read_upload("deep.png", png_bytes(deep))
    assert image16.bit_depth == 16
    outcome = logic.run_enhance(image16, tiny_model, device="cpu")
    assert outcome.sr.shape == outcome.bicubic.shape == (96, 96, 1) and outcome.scores is None
    [option] = logic.download_options(outcome, image16, "deep")
    assert option.fmt == "png" and "16-bit" in option.label
    back = logic.read_upload("back.png", logic.encode_image(outcome.result, "png"))
    assert back.bit_depth == 16
    np.testing.assert_allclose(back.pixels, outcome.sr, atol=0.5 / 65535)

    ct = read_image(DATA / "ct_small.dcm")
    outcome = logic.run_enhance(ct, tiny_model, device="cpu")
    formats = [o.fmt for o in logic.download_options(outcome, ct, "ct")]
    assert formats == ["png", "values-tiff", "dicom"]
    path = tmp_path / "ct.dcm"
    path.write_bytes(logic.encode_image(outcome.result, "dicom"))
    ds, src = pydicom.dcmread(path), pydicom.dcmread(DATA / "ct_small.dcm")
    assert (ds.Rows, ds.Columns) == (512, 512) and list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert float(ds.PixelSpacing[0]) == pytest.approx(float(src.PixelSpacing[0]) / 4)
    assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID


def test_enhance_one_frame_of_a_colour_multiframe_dicom(tiny_model: torch.nn.Module, tmp_path: Path) -> None:
    source = read_image(DATA / "us_ybr_color.dcm")
    assert logic.describe(source)["Frames"] == "30"
    frame = logic.select_frame(source, 3)
    np.testing.assert_array_equal(frame.pixels, source.pixels[3])
    outcome = logic.run_enhance(frame, tiny_model, device="cpu")
    assert outcome.sr.shape == (960, 1280, 3)  # a grey model runs on each colour channel
    path = tmp_path / "us.dcm"
    path.write_bytes(logic.encode_image(outcome.result, "dicom"))
    ds = pydicom.dcmread(path)
    assert ds.pixel_array.shape == (960, 1280, 3) and ds.PhotometricInterpretation == "RGB"
    assert "medsr" in ds.DerivationDescription


# --- the page (AppTest) -------------------------------------------------------------------------------------


def start_app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP_FILE), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    if not hasattr(at, "file_uploader"):
        pytest.skip("this Streamlit's AppTest cannot drive st.file_uploader")
    return at


def upload(at, name: str, data: bytes) -> None:
    at.radio(key="source").set_value("Upload a file").run()
    at.file_uploader(key="upload").upload(name, data, "application/octet-stream").run()


def pick_tiny_model(at) -> None:
    label = next(o for o in at.selectbox(key="model").options if o.startswith("tiny.safetensors"))
    at.selectbox(key="model").set_value(label).run()


def viewer_args(at) -> list[dict]:
    """The arguments of each reading viewer on the page (the Cornerstone3D component), in page order."""
    return [json.loads(e.proto.json_args) for e in at.get("component_instance")
            if e.proto.component_name.endswith("medsr_viewer")]


def metric_value(at, label: str) -> float:
    [metric] = [m for m in at.metric if m.label == label]
    return float(re.match(r"[-\d.]+", metric.value).group())


def test_page_states_both_modes(models_dir: Path) -> None:
    at = start_app()
    assert "medsr" in at.title[0].value
    mode = at.radio(key="mode")
    assert mode.options == ["Enhance", "Simulate"]
    captions = " ".join(mode.proto.captions)
    assert "low-resolution input" in captions and "no scores" in captions and "ground truth" in captions


def test_enhance_shows_the_output_and_no_scores(models_dir: Path) -> None:
    at = start_app()
    pick_tiny_model(at)
    upload(at, "crop.png", png_bytes(sample_crop(48)))
    at.radio(key="mode").set_value("Enhance").run()
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "48 x 48 -> 192 x 192" in at.success[0].value and "tiny" in at.success[0].value
    assert len(at.metric) == 0  # no ground truth, no scores
    assert [b.label for b in at.get("download_button")] == ["Download result (8-bit PNG)"]
    preview, result = viewer_args(at)  # the preview, then the linked comparison
    assert [p["name"] for p in result["panels"]] == ["Input (48 x 48)", "Bicubic (192 x 192)", "Model: tiny"]
    assert [p["size"] for p in result["panels"]] == [[192, 192]] * 3  # one grid: the input's pixels as 4 x 4 blocks
    assert [p["repeat"] for p in result["panels"]] == [[4, 4], [1, 1], [1, 1]]
    assert preview["panels"][0]["size"] == [48, 48] and preview["panels"][0]["repeat"] == [1, 1]
    assert not [v for v in at.get("iframe") if "medsrViewer" in v.proto.srcdoc]  # maps on request in Enhance
    at.toggle(key="show_differences").set_value(True).run()
    [differences] = [v for v in at.get("iframe") if "medsrViewer" in v.proto.srcdoc]
    assert "Model - bicubic" in differences.proto.srcdoc and "Consistency with the input" in differences.proto.srcdoc
    at.select_slider(key="heat_scale").set_value(0.05).run()  # the result stays while the views change
    assert at.success and not at.exception


def test_simulate_on_a_dicom_ct_shows_scores_and_window_presets(models_dir: Path) -> None:
    at = start_app()
    pick_tiny_model(at)
    upload(at, "ct_small.dcm", (DATA / "ct_small.dcm").read_bytes())
    info = " ".join(m.value for m in at.markdown)
    assert "**Modality:** CT" in info and "128 x 128 px" in info and "0.6615 x 0.6615 mm" in info
    [preview] = viewer_args(at)
    assert {"Lung (W 1500 / L -600)", "Mediastinum (W 350 / L 50)", "Bone (W 2000 / L 300)",
            "Brain (W 80 / L 40)"} <= set(preview["presets"])
    assert preview["window"] == [350, 50] and preview["unit"] == "HU"  # no header window: soft tissue
    assert preview["calibrated"] and preview["panels"][0]["spacing"] == pytest.approx([0.6615, 0.6615], abs=1e-4)
    at.radio(key="mode").set_value("Simulate").run()
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert {m.label for m in at.metric} == {"Bicubic PSNR", "Model PSNR", "Bicubic SSIM", "Model SSIM"}
    assert any("Reading the scores" in m.value for m in at.markdown)
    names = [p["name"] for p in viewer_args(at)[1]["panels"]]
    assert names[0] == "Input (32 x 32, degraded)" and names[-1] == "Original (ground truth)"


def test_simulate_bundled_model_beats_bicubic_on_a_sample() -> None:
    from medsr.evaluate import score_baselines
    from medsr.io.find import expand_inputs
    from medsr.models import list_bundled_models
    from medsr.protocol import Protocol

    if DEFAULT_MODEL not in {m["name"] for m in list_bundled_models()}:
        pytest.skip(f"bundled model {DEFAULT_MODEL} is not in src/medsr/weights yet")
    at = start_app()
    assert at.radio(key="source").value == "Bundled sample"
    assert at.selectbox(key="model").value == logic.AUTO_MODEL
    assert any(f"{DEFAULT_MODEL}: the image states no modality" in i.value for i in at.sidebar.info)
    at.radio(key="mode").set_value("Simulate").run()
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    bicubic, model = metric_value(at, "Bicubic PSNR"), metric_value(at, "Model PSNR")
    assert model > bicubic
    items, _ = expand_inputs([logic.sample_paths()[0]])
    protocol = Protocol(scale=4, max_size=logic.DEMO_MAX_SIDE)
    expected = score_baselines(items, protocol, ["bicubic"], [])[0].psnr
    assert bicubic == pytest.approx(expected, abs=0.005)  # the page shows medsr evaluate's bicubic score


def test_corrupt_upload_shows_an_error_and_the_app_goes_on(models_dir: Path) -> None:
    at = start_app()
    upload(at, "broken.png", png_bytes(sample_crop(64))[:80])
    assert not at.exception
    assert any("Cannot read broken.png: corrupt or truncated png" in e.value for e in at.error)
    assert not any("medsr-app-" in e.value for e in at.error)  # no temporary path in the message
    upload(at, "notes.txt", b"not an image at all, just text in a file")
    assert any("Cannot read notes.txt: unsupported format" in e.value for e in at.error)
    at.file_uploader(key="upload").clear()
    upload(at, "good.png", png_bytes(sample_crop(32)))
    assert not at.exception and not at.error
    assert any("32 x 32 px" in m.value for m in at.markdown)
