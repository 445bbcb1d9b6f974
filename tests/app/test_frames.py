"""Every frame of a multi-frame file in the web app: run as ``medsr upscale`` runs it (the same values as its
derived DICOM), bounded by the page's output-pixel limit, scrolled as three stacks, and downloaded as one
derived multi-frame DICOM.

The file is made from ``tests/data/ct_small.dcm`` cut to 64 x 64: frame k holds its values + 100 k HU.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from test_app import DATA, pick_tiny_model, start_app, upload, viewer_args

from dicom_checks import DCIODVFY, dciodvfy_errors, dicom_bytes, hu, new_errors
from medsr import upscale, write_image
from medsr.app import frames, logic, stack_viewer
from medsr.app.series import MAX_SERIES_PIXELS


def multiframe_ct(count: int = 3, side: int = 64) -> bytes:
    """ct_small's top-left ``side`` x ``side``, ``count`` frames: frame k + 100 k HU (bytes of a DICOM)."""
    ds = pydicom.dcmread(DATA / "ct_small.dcm")
    stored = ds.pixel_array[:side, :side]
    ds.Rows = ds.Columns = side
    ds.NumberOfFrames = count
    ds.PixelData = np.stack([stored + 100 * k for k in range(count)]).astype(stored.dtype).tobytes()
    return dicom_bytes(ds)


def test_every_frame_runs_as_medsr_upscale_and_downloads_as_one_derived_file(tiny_model: torch.nn.Module,
                                                                           tmp_path: Path) -> None:
    data = multiframe_ct()
    image = logic.read_upload("frames.dcm", data)
    seen: list[tuple[int, int]] = []
    outcome = frames.run_frames(image, tiny_model, device="cpu", progress=lambda done, total: seen.append((done,
                                                                                                          total)))
    assert outcome.lr.shape == (3, 64, 64, 1) and outcome.sr.shape == outcome.bicubic.shape == (3, 256, 256, 1)
    assert seen[-1] == (3, 3) and outcome.scale == (4, 4)
    derived = logic.encode_image(outcome.result, "dicom")  # what the download button sends
    reference = tmp_path / "reference.dcm"  # what `medsr upscale` writes for the same file and model
    write_image(upscale(image, tiny_model), reference, format="dicom")
    got, expected = pydicom.dcmread(io.BytesIO(derived)), pydicom.dcmread(reference)
    assert int(got.NumberOfFrames) == 3 and (got.Rows, got.Columns) == (256, 256) and "DERIVED" in list(got.ImageType)
    assert np.abs(got.pixel_array.astype(int) - expected.pixel_array.astype(int)).max() <= 1
    values, source = hu(derived), hu(data)
    for k in range(3):  # frame k of the result is frame k of the input, upscaled (not another frame)
        assert abs(values[k].mean() - source[k].mean()) < 30
    # the stack the viewer gets for frame k of the input is frame k's HU
    np.testing.assert_array_equal(stack_viewer.panel_values(outcome.lr, image)[2], source[2])
    if DCIODVFY is None:
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools): the derived file was read back only")
    (tmp_path / "source.dcm").write_bytes(data)
    (tmp_path / "derived.dcm").write_bytes(derived)
    assert new_errors(dciodvfy_errors(tmp_path / "source.dcm"), dciodvfy_errors(tmp_path / "derived.dcm")) == []


def test_every_frame_is_bounded_by_the_pages_output_pixel_limit() -> None:
    image = logic.read_upload("frames.dcm", multiframe_ct(4))
    assert frames.too_large(image, (4, 4)) is None
    frames_allowed = MAX_SERIES_PIXELS // (256 * 256)
    long_cine = image.with_pixels(np.repeat(image.pixels[:1], frames_allowed + 1, axis=0))
    reason = frames.too_large(long_cine, (4, 4))
    assert reason.startswith(f"{frames_allowed + 1} frames of 256 x 256 would be 16.8 million output pixels")
    assert "run one frame here" in reason
    with pytest.raises(ValueError, match="too much for this page"):
        frames.run_frames(long_cine, type("Model", (), {"scale": (4, 4)})())


def test_the_page_runs_every_frame_by_default_and_offers_one_frame(models_dir: Path) -> None:
    at = start_app()
    upload(at, "frames.dcm", multiframe_ct(3))
    pick_tiny_model(at)
    assert at.radio(key="frames_scope").value == "All 3 frames"
    # the estimate before the run counts every frame: 3 x 64 x 64 input pixels
    assert any(c.value.startswith("Estimated run time") and "(12,288 input pixels" in c.value for c in at.caption), \
        [c.value for c in at.caption]
    at.radio(key="mode").set_value("Simulate").run()  # scores need one frame
    assert any(w.value.startswith("Simulate scores one frame") for w in at.warning) and at.button(key="run").disabled
    at.radio(key="mode").set_value("Enhance").run()
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "for 3 frames (64 x 64 -> 256 x 256, x4)" in at.success[0].value
    preview, result = viewer_args(at)
    assert [(p["name"], p["frames"]) for p in result["panels"]] == [
        ("Input (3 frames of 64 x 64)", 3), ("Bicubic (256 x 256)", 3), ("Model: tiny", 3)]
    assert result["slice_labels"] == ["frame 1 of 3", "frame 2 of 3", "frame 3 of 3"]
    labels = [b.label for b in at.get("download_button")]
    assert labels[0] == "Download derived DICOM (3 frames)", labels
    at.toggle(key="show_differences").set_value(True).run()  # model - bicubic, computed in the browser per slice
    [page] = [v.proto.srcdoc for v in at.get("iframe") if "medsrViewer" in v.proto.srcdoc]
    [panel] = json.loads(page.split("const CONFIG = ", 1)[1].split(";</script>", 1)[0])["panels"]
    model, bicubic = result["panels"][2], result["panels"][1]
    assert panel["name"] == "Model - bicubic" and panel["difference"]["signed"]
    assert (panel["difference"]["a"]["url"], panel["difference"]["b"]["url"]) == (model["url"], bicubic["url"])
    assert model["url"] != bicubic["url"] and panel["difference"]["a"]["frames"] == 3 and 'id="slice"' in page
    at.radio(key="frames_scope").set_value("One frame").run()  # one frame: a new run is asked for
    assert any(i.value.startswith("The frame (all -> 1) has changed") for i in at.info), [i.value for i in at.info]


def test_the_page_refuses_every_frame_over_the_limit_in_one_line(models_dir: Path) -> None:
    at = start_app()
    upload(at, "cine.dcm", multiframe_ct(257))  # x4: 257 frames of 256 x 256, just over 16.8 million pixels
    pick_tiny_model(at)
    assert at.radio(key="frames_scope").value == "All 257 frames"
    [error] = at.error
    assert error.value == ("Every frame is too much for this page: 257 frames of 256 x 256 would be 16.8 million "
                           "output pixels; this page shows up to 16.8 million (run one frame here, or every frame "
                           "with `medsr upscale`).")
    assert at.button(key="run").disabled and not any("Estimated run time" in c.value for c in at.caption)
    at.radio(key="frames_scope").set_value("One frame").run()
    assert not at.error and not at.button(key="run").disabled
