"""The web app's viewing aids: windows from the header, model cards, run-time estimates, difference maps,
downloads that keep real values, batch runs, the viewer page, and ``medsr demo``'s clean shutdown.

Pure functions are tested directly; the page parts through ``streamlit.testing.v1.AppTest`` with a tiny model
from a temporary models folder (fixtures of ``test_app.py``).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
import torch
from PIL import Image
from test_app import DATA, pick_tiny_model, png_bytes, sample_crop, start_app, upload, viewer_args

from medsr.app import batch, cards, diffs, estimate, exports, logic, stack_viewer, viewer, windows
from medsr.io import read_image
from medsr.io.image import MedicalImage


def with_window(path: Path, width: float, level: float) -> bytes:
    """The DICOM at ``path`` with a header window (WindowWidth/WindowCenter) added, as bytes."""
    ds = pydicom.dcmread(path)
    ds.WindowWidth, ds.WindowCenter = width, level
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


# --- windows ------------------------------------------------------------------------------------------------


def test_header_window_is_the_default_and_ct_has_four_presets(tmp_path: Path) -> None:
    path = tmp_path / "head.dcm"
    path.write_bytes(with_window(DATA / "ct_small.dcm", 100, 40))
    options, default = windows.window_options(read_image(path))
    assert default == "DICOM header (W 100 / L 40)" and options[default] == (100.0, 40.0)
    assert {"Lung (W 1500 / L -600)", "Mediastinum (W 350 / L 50)", "Bone (W 2000 / L 300)",
            "Brain (W 80 / L 40)"} <= set(options)
    cr = read_image(DATA / "cr_mono1_small.dcm")  # a CR with its own window opens in it, not in full range
    options, default = windows.window_options(cr)
    assert default.startswith("DICOM header") and "Lung (W 1500 / L -600)" not in options
    _, default = windows.window_options(read_image(DATA / "xray_ac4f6e4e.png"))
    assert default == windows.FULL_RANGE


def test_full_range_window_shows_the_working_image_and_auto_spans_the_pixels() -> None:
    image = read_image(DATA / "xray_ac4f6e4e.png")
    shown = logic.to_display(image.pixels, image.value_range, windows.full_range_window(image))
    np.testing.assert_array_equal(shown, logic.to_display(image.pixels))
    pixels = np.full((10, 10, 1), 0.25, dtype=np.float32)
    pixels[:5] = 0.5  # a 12-bit MR using a quarter of its range
    mr = MedicalImage(pixels, "dicom", 12, (0.0, 4095.0), modality="MR")
    width, level = windows.auto_window(mr)
    assert width == pytest.approx(4095 * 0.25 + 1, abs=1) and level == pytest.approx(4095 * 0.375 + 0.5, abs=1)
    assert windows.window_options(mr)[1] == windows.AUTO  # no header window: auto, not washed-out full range


def test_page_opens_a_dicom_in_its_header_window_with_the_ct_presets(models_dir: Path) -> None:
    at = start_app()
    upload(at, "head.dcm", with_window(DATA / "ct_small.dcm", 100, 40))
    [preview] = viewer_args(at)
    assert preview["window"] == [100, 40] and preview["presets"]["DICOM header (W 100 / L 40)"] == [100, 40]
    assert preview["presets"]["Brain (W 80 / L 40)"] == [80, 40] and not at.exception


def test_the_consistency_layer_is_medsrs_consistency_map_on_the_input_grid() -> None:
    from medsr.consistency import consistency_map

    rng = np.random.default_rng(0)
    lr = rng.random((12, 10, 1)).astype(np.float32)
    sr = np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1)  # blocky: degrades back to almost the input
    sr[:8, :8] += 0.3  # ... except one corner, made brighter
    image = MedicalImage(lr, "png", 8, (0.0, 255.0))
    indices, legend = diffs.consistency_layer(np.clip(sr, 0, 1), lr, (4, 4), image)
    sigmas = consistency_map(np.clip(sr, 0, 1), lr, (4, 4), "bicubic", 255.0)[..., 0]
    assert indices.shape == (12, 10)
    np.testing.assert_array_equal(indices, diffs.signed_indices(sigmas, diffs.CONSISTENCY_SIGMAS, 0))
    assert indices[0, 0] > 127 and "noise sd" in legend.ticks[0]


def test_the_viewer_gets_modality_values_once_in_a_compact_exact_form() -> None:
    ds = pydicom.dcmread(DATA / "ct_small.dcm")
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    image = read_image(DATA / "ct_small.dcm")
    values = stack_viewer.panel_values(image.pixels, image)
    np.testing.assert_array_equal(values[0], hu)  # what the readout shows: stored x slope + intercept
    data, dtype, delta = stack_viewer.encode_values(values)
    assert (dtype, delta) == ("i16", True) and len(data) < hu.size * 2  # smaller than the raw 16-bit array
    decoded = np.cumsum(np.frombuffer(zlib.decompress(data), "<i2").reshape(values.shape), axis=-1, dtype=np.int16)
    np.testing.assert_array_equal(decoded[0], hu)  # the running sum the browser does gives the values back
    colour = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3)).astype(np.uint8)
    data, dtype, delta = stack_viewer.encode_values(colour)
    rows = np.frombuffer(zlib.decompress(data), np.uint8).reshape(colour.shape)
    np.testing.assert_array_equal(np.cumsum(rows, axis=2, dtype=np.uint8), colour)
    data, dtype, delta = stack_viewer.encode_values(np.array([[[0.25, -3.5]]]))
    assert (dtype, delta) == ("f32", False)
    np.testing.assert_array_equal(np.frombuffer(zlib.decompress(data), "<f4"), [0.25, -3.5])


# --- model cards ----------------------------------------------------------------------------------------------


def test_bundled_cards_are_distinct_and_complete() -> None:
    from medsr.models import list_bundled_models

    names = [m["name"] for m in list_bundled_models()]
    if len(names) < 2:
        pytest.skip("fewer than two bundled models")
    made = {name: cards.model_card(name) for name in names}
    for name, card in made.items():
        assert card.name == name and card.summary and card.architecture and card.data and card.limits
        # each test table has its baseline: bicubic (x-ray, ultrasound) or the sparse-view FBP input (CT)
        assert card.tests and all("bicubic" in t.lower() or "fbp" in t.lower() for t in card.tests.values())
        assert "licen" in card.data.lower() or "CC BY" in card.data
    assert len({card.summary for card in made.values()}) == len(made)


def test_a_checkpoint_without_card_shows_its_header() -> None:
    meta = {"name": "mine", "arch": "swift-srgan", "arch_args": {"scale": [4, 4]},
            "training": {"config": {"manifest": "m.csv", "degradation": "bicubic"}, "epoch": 3, "step": 90},
            "metrics": {"test": {"psnr": 35.1, "ssim": 0.83, "bicubic_psnr": 34.9, "bicubic_ssim": 0.82}}}
    card = cards.model_card("/models/mine.safetensors", meta)
    assert card.source == "header" and "swift-srgan" in card.architecture and "m.csv" in card.data
    [table] = card.tests.values()
    assert "| bicubic | 34.90 | 0.8200 |" in table and "35.10" in table


def test_sidebar_shows_the_card_of_the_chosen_model(models_dir: Path) -> None:
    from medsr.models import DEFAULT_MODEL, list_bundled_models

    at = start_app()
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    if DEFAULT_MODEL in {m["name"] for m in list_bundled_models()}:
        assert f"### {DEFAULT_MODEL}" in sidebar and "bicubic" in sidebar
    pick_tiny_model(at)
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert "### tiny" in sidebar and "no model card" in sidebar


# --- estimates --------------------------------------------------------------------------------------------------


def test_estimate_follows_pixels_and_measured_speed(tiny_model: torch.nn.Module) -> None:
    speed = estimate.measure_speed(tiny_model, logic.SETTINGS, side=32)
    assert speed > 0
    assert estimate.estimate_seconds(2000, 1000.0) == 2.0
    assert estimate.work_pixels(480, 640, 3) == 3 * estimate.work_pixels(480, 640, 1)
    per_channel = logic.SETTINGS.__class__(colour="per-channel")
    assert estimate.passes(3, 1, per_channel) == 3 and estimate.passes(1, 1, per_channel) == 1
    assert estimate.passes(3, 1, logic.SETTINGS.__class__(colour="luminance")) == 1
    book = estimate.SpeedBook()
    assert book.get(("m", "cpu")) is None
    book.record(("m", "cpu"), 20_000, 2.0)
    assert book.get(("m", "cpu")) == (10_000.0, "last run")
    book.record(("m", "cpu"), 1, 0.5)  # a 1 x 1 run (all overhead) would make every estimate hours long
    assert book.get(("m", "cpu")) == (10_000.0, "last run")
    line = estimate.format_estimate(14.2, 378_240, 27_000, "last run", "cpu")
    assert line.startswith("Estimated run time: about 14 s (378,240 input pixels at 27 kpx/s")


def test_page_shows_preview_and_estimate_before_run(models_dir: Path) -> None:
    at = start_app()
    pick_tiny_model(at)
    upload(at, "crop.png", png_bytes(sample_crop(48)))
    assert any(c.value.startswith("Estimated run time:") and "2,304 input pixels" in c.value for c in at.caption)
    [preview] = viewer_args(at)
    assert preview["panels"][0]["name"] == "Input (48 x 48)" and not at.success


# --- messages -----------------------------------------------------------------------------------------------


def test_messages_say_what_changed() -> None:
    old = {"image": "a", "frame": 0, "mode": "Enhance", "model": "xray-x4", "stamp": "1", "device": "auto",
           "degradation": "", "scale": 0, "seed": 0}
    text = logic.describe_changes(old, {**old, "model": "/m/tiny.safetensors", "stamp": "2"})
    assert text.startswith("The model (xray-x4 -> tiny.safetensors) has changed")
    text = logic.describe_changes(old, {**old, "mode": "Simulate", "degradation": "bicubic", "scale": 4})
    assert text.startswith("The mode (Enhance -> Simulate) has changed") and "degradation" not in text
    assert "frame (1 -> 3)" in logic.describe_changes(old, {**old, "frame": 2})


def test_new_upload_after_a_result_shows_its_preview_not_a_settings_message(models_dir: Path) -> None:
    at = start_app()
    pick_tiny_model(at)
    upload(at, "a.png", png_bytes(sample_crop(32)))
    at.button(key="run").click().run()
    assert at.success
    at.file_uploader(key="upload").clear()
    upload(at, "b.png", png_bytes(sample_crop(64)))
    assert not at.info and not at.success and not at.exception
    assert any("64 x 64 px" in m.value for m in at.markdown)
    at.radio(key="mode").set_value("Simulate").run()
    at.button(key="run").click().run()
    at.radio(key="mode").set_value("Enhance").run()
    assert any(i.value.startswith("The mode (Simulate -> Enhance) has changed") for i in at.info)


def test_simulate_offers_only_degradations_the_model_can_undo() -> None:
    assert logic.compatible_degradations((4, 4)) == ["bicubic", "bicubic-blur-noise", "endoscopy"]
    assert logic.compatible_degradations((1, 4)) == ["ultrasound"]
    assert logic.compatible_degradations((1, 1)) == ["ct-sparse-view"]


# --- differences --------------------------------------------------------------------------------------------


def test_difference_maps_mask_the_border_and_have_colour_bars() -> None:
    error = np.full((12, 10), 0.02, dtype=np.float32)
    coloured = diffs.error_map(error, 0.02, border=2)
    assert tuple(coloured[0, 0]) == diffs.MASK_GREY and tuple(coloured[-1, 5]) == diffs.MASK_GREY
    assert tuple(coloured[5, 5]) == (255, 255, 0)
    signed = diffs.signed_map(np.array([[-1.0, 0.0, 1.0]]), 0.5, border=0)
    assert [tuple(c) for c in signed[0]] == list(diffs.SIGNED_COLOURS)
    ct = read_image(DATA / "ct_small.dcm")
    legend = diffs.heat_legend(0.01, ct, "|model - original|")
    assert "HU" in legend.ticks[-1] and "border" in legend.caption
    assert "45 dB" in diffs.SCORES_EXPLAINED and "0.3 dB" in diffs.SCORES_EXPLAINED


# --- downloads ----------------------------------------------------------------------------------------------


def test_ct_downloads_a_tiff_of_real_hu_and_says_why_png_differs(tiny_model: torch.nn.Module) -> None:
    ct = read_image(DATA / "ct_small.dcm")
    outcome = logic.run_enhance(ct, tiny_model, device="cpu")
    options, notes = exports.download_options(outcome.result, ct, "enhance", False, "ct")
    assert [o.fmt for o in options] == ["png", "values-tiff", "dicom"]
    assert any("not HU" in n for n in notes)
    values = tifffile.imread(io.BytesIO(logic.encode_image(outcome.result, "values-tiff")))
    assert values.dtype == np.int16 and values.shape == (512, 512)
    np.testing.assert_allclose(values, exports.modality_array(outcome.result), atol=0)
    low, high = ct.value_range
    np.testing.assert_allclose(values, np.rint(low + outcome.result.pixels[..., 0] * (high - low)), atol=0)


def test_a_withheld_dicom_download_says_why(tiny_model: torch.nn.Module) -> None:
    ct = read_image(DATA / "ct_small.dcm")
    outcome = logic.run_enhance(ct, tiny_model, device="cpu", max_side=64)
    assert outcome.cropped
    options, notes = exports.download_options(outcome.result, ct, "enhance", True, "ct")
    assert "dicom" not in [o.fmt for o in options]
    assert any(n.startswith("No derived DICOM: this page processed only the centre crop") for n in notes)


# --- batch ----------------------------------------------------------------------------------------------------


def test_batch_keeps_a_dicom_series_together_and_reports_bad_files(tiny_model: torch.nn.Module) -> None:
    series = []
    for number in (1, 2):
        ds = pydicom.dcmread(DATA / "ct_small.dcm")
        ds.InstanceNumber, ds.SOPInstanceUID = number, pydicom.uid.generate_uid()
        buffer = io.BytesIO()
        ds.save_as(buffer)
        series.append((f"slice{number}.dcm", buffer.getvalue()))
    files = [*series, ("crop.png", png_bytes(sample_crop(24))), ("crop.png", png_bytes(sample_crop(20))),
             ("broken.png", png_bytes(sample_crop(24))[:60])]
    assert batch.pixel_count(series[0][1]) == 128 * 128 and batch.pixel_count(files[2][1]) == 24 * 24
    assert batch.pixel_count(b"not an image") == 0
    seen = []
    result = batch.run_batch(files, tiny_model, on_file=lambda done, total, row: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(1, 6)]
    assert [r.status for r in result.rows][:4] == ["done"] * 4 and result.rows[4].status.startswith("skipped")
    assert [r.file for r in result.rows][2:4] == ["crop.png", "crop-2.png"]
    with zipfile.ZipFile(io.BytesIO(result.zip_bytes)) as archive:
        names = archive.namelist()
        dicoms = [pydicom.dcmread(io.BytesIO(archive.read(n))) for n in names if n.endswith(".dcm")]
    assert len(names) == 4 and len(dicoms) == 2
    folders = {n.rsplit("/", 1)[0] for n in names if n.endswith(".dcm")}
    assert len(folders) == 1 and next(iter(folders)).startswith("series")
    assert dicoms[0].SeriesInstanceUID == dicoms[1].SeriesInstanceUID != pydicom.dcmread(
        DATA / "ct_small.dcm").SeriesInstanceUID


def test_batch_by_modality_runs_a_ct_slice_on_the_ct_model_and_the_rest_on_the_chosen_one() -> None:
    from medsr.models import build_generator

    chest = build_generator("plainrep", in_channels=1, scale=4, num_channels=4, num_convs=2).eval()
    chest.meta = {"name": "tiny-chest", "modality": "CR"}
    files = [("slice.dcm", (DATA / "ct_small.dcm").read_bytes()), ("crop.png", png_bytes(sample_crop(16)))]
    result = batch.run_batch(files, chest, by_modality=True)
    assert [(r.file, r.status, r.model) for r in result.rows] == [
        ("slice.dcm", "done", "ct-sparse-view"), ("crop.png", "done", "tiny-chest")]
    assert result.rows[0].size == "128 x 128 -> 128 x 128"  # scale 1: the CT model, not x4
    with zipfile.ZipFile(io.BytesIO(result.zip_bytes)) as archive:
        derived = pydicom.dcmread(io.BytesIO(archive.read(result.rows[0].archived_as)))
    assert "ct-sparse-view" in derived.DerivationDescription
    # off: every file on the chosen model; a model of unknown modality is never replaced
    assert {r.model for r in batch.run_batch(files, chest).rows} == {"tiny-chest"}
    chest.meta = {"name": "mine"}
    assert {r.model for r in batch.run_batch(files, chest, by_modality=True).rows} == {"mine"}


def test_page_batch_upload_gives_a_table_and_a_zip(models_dir: Path) -> None:
    at = start_app()
    pick_tiny_model(at)
    at.radio(key="source").set_value("Batch").run()
    if not hasattr(at, "file_uploader"):
        pytest.skip("this Streamlit's AppTest cannot drive st.file_uploader")
    uploader = at.file_uploader(key="batch_upload")
    uploader.upload("a.png", png_bytes(sample_crop(16)), "image/png")
    uploader.upload("b.png", png_bytes(sample_crop(20)), "image/png")
    at.run()
    at.button(key="run_batch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("2 of 2 file(s) upscaled" in s.value for s in at.success)
    assert [b.label for b in at.get("download_button")][0].startswith("Download all results (zip")


# --- the viewer page ------------------------------------------------------------------------------------------


def test_viewer_page_is_self_contained() -> None:
    grey = np.zeros((8, 10), dtype=np.uint8)
    legend = viewer.Legend(("black 0%", "yellow 100%"), ("0", "1"), "a </script> caption")
    page = viewer.viewer_html([viewer.Panel("In", grey), viewer.Panel("Out", np.zeros((32, 40, 3), np.uint8),
                                                                       legend)], height=400, wipe=(0, 1))
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched: works offline
    assert page.count("data:image/png;base64,") == 2 and page.count("</script>") == 2
    config = json.loads(re.search(r"const CONFIG = (.*?);</script>", page).group(1).replace("<\\/", "</"))
    assert config["ref"] == [40, 32] and config["wipe"] == [0, 1]
    back = Image.open(io.BytesIO(__import__("base64").b64decode(viewer.png_data_uri(grey).split(",")[1])))
    np.testing.assert_array_equal(np.asarray(back), grey)
    with pytest.raises(ValueError):
        viewer.viewer_html([], height=300)


def test_real_values_are_the_stored_ones_and_png_notes_give_the_mapping() -> None:
    cr = read_image(DATA / "cr_mono1_small.dcm")  # MONOCHROME1, 10 bits stored
    ds = pydicom.dcmread(DATA / "cr_mono1_small.dcm")
    values = exports.modality_array(cr)
    assert values.dtype == np.uint16
    np.testing.assert_array_equal(values, ds.pixel_array)
    tiff = tifffile.TiffFile(io.BytesIO(exports.encode_values_tiff(cr)))
    assert tiff.pages[0].photometric == tifffile.PHOTOMETRIC.MINISWHITE  # shown as MONOCHROME1 is meant
    np.testing.assert_array_equal(tiff.asarray(), ds.pixel_array)
    assert "(1023 - value) x 64.06" in exports.png_scaling_note(cr)
    assert "PNG = value + 33792" in exports.png_scaling_note(read_image(DATA / "ct_small.dcm"))
    assert exports.png_scaling_note(read_image(DATA / "xray_ac4f6e4e.png")) is None


def test_each_result_opens_its_difference_maps_at_its_own_scale(models_dir: Path) -> None:
    at = start_app()
    pick_tiny_model(at)
    upload(at, "crop.png", png_bytes(sample_crop(64)))
    for mode in ("Enhance", "Simulate"):
        at.radio(key="mode").set_value(mode).run()
        at.button(key="run").click().run()
        if mode == "Enhance":  # Enhance fetches its maps on request
            at.toggle(key="show_differences").set_value(True).run()
        scale = at.select_slider(key="heat_scale").value
        [maps] = [v.proto.srcdoc for v in at.get("iframe") if "Model - bicubic" in v.proto.srcdoc]
        assert f">= +{scale:.2%}" in maps  # the colour bar shows the scale the slider shows
    at.select_slider(key="heat_scale").set_value(0.5).run()
    [maps] = [v.proto.srcdoc for v in at.get("iframe") if "Model - bicubic" in v.proto.srcdoc]
    assert ">= 50.00%" in maps and not at.exception
