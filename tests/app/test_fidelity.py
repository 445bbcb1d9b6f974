"""The sidebar's Faint findings choice: mapped onto ``medsr upscale``'s --strength / --consistency / --fidelity,
giving its pixels exactly, recorded in the derived DICOM, and a change of it never shows a stale result.

A tiny random model stands in where the bundled model's quality does not matter (the equality with
``medsr.upscale`` holds for any model); the kernel rule is checked on the bundled models' own headers.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from test_app import DATA, pick_tiny_model, png_bytes, sample_crop, start_app, upload, viewer_args

from medsr import upscale, write_image
from medsr.app import batch, fidelity, frames, logic
from medsr.consistency import downscale
from medsr.errors import ConfigError
from medsr.infer import InferenceSettings
from medsr.io import read_image
from medsr.models import list_bundled_models, load_model

CLOSER_BOX = fidelity.settings_for(fidelity.CLOSER, kernel="box")
HALF = fidelity.settings_for(fidelity.STRENGTH, strength=0.5)


def test_each_choice_is_the_inference_settings_of_its_upscale_flags() -> None:
    assert fidelity.settings_for(fidelity.AS_TRAINED) == InferenceSettings()  # unchanged behaviour
    assert fidelity.flags(InferenceSettings()) == "" and InferenceSettings().output_note() == ""
    assert (CLOSER_BOX.consistency, CLOSER_BOX.consistency_kernel, CLOSER_BOX.fidelity, CLOSER_BOX.strength) == \
        ("project", "box", 0.5, 1.0)
    assert fidelity.flags(CLOSER_BOX) == "--consistency project --consistency-kernel box --fidelity 0.5"
    assert CLOSER_BOX.output_note() == "consistency projection, box kernel, fidelity 0.5"
    assert (HALF.strength, HALF.consistency) == (0.5, "none") and fidelity.flags(HALF) == "--strength 0.5"
    base = InferenceSettings(tile=64, overlap=8)  # the page's other settings are kept
    assert fidelity.settings_for(fidelity.STRENGTH, strength=0.25, base=base).tile == 64
    with pytest.raises(ConfigError, match="strength must be between"):
        fidelity.settings_for(fidelity.STRENGTH, strength=1.5)
    with pytest.raises(ValueError, match="unknown faint-findings choice"):
        fidelity.settings_for("Sharper")
    assert fidelity.choices((4, 4)) == list(fidelity.CHOICES)
    assert fidelity.choices((1, 1)) == [fidelity.AS_TRAINED, fidelity.STRENGTH]  # nothing to project onto


def test_the_offered_kernel_is_the_one_the_model_was_trained_on() -> None:
    bundled = {m["name"] for m in list_bundled_models()}
    expected = {"xray-x4": "box", "xray-x4-bicubic": "bicubic", "swift-srgan-xray-x4": "box",
                "ultrasound-lateral-x4": "bicubic", "ct-sparse-view": None}
    for name, kernel in expected.items():
        if name in bundled:
            assert fidelity.training_kernel(load_model(name, "cpu").meta) == kernel, name

    def header(degradation: str, **params: str) -> dict:
        return {"training": {"config": {"degradation": degradation, "degradation_params": params}}}

    assert fidelity.training_kernel(header("box-noise")) == "box"
    assert fidelity.training_kernel(header("realistic", kernels="bicubic,gaussian")) == "bicubic"
    assert fidelity.training_kernel(header("realistic", kernels="box,bicubic")) == "bicubic"  # a tie: the default
    assert fidelity.training_kernel(header("realistic", kernels="gaussian")) is None
    assert fidelity.training_kernel(None) is None and fidelity.training_kernel({"name": "tiny"}) is None
    kernel, why = fidelity.kernel_advice({"name": "tiny"}, "tiny")
    assert kernel == "bicubic" and "does not say" in why


@pytest.mark.parametrize("settings", [InferenceSettings(), CLOSER_BOX, HALF,
                                      fidelity.settings_for(fidelity.CLOSER, kernel="bicubic")],
                         ids=["as-trained", "closer-box", "strength-0.5", "closer-bicubic"])
def test_enhance_gives_medsr_upscales_pixels_with_the_same_flags(tiny_model: torch.nn.Module, tmp_path: Path,
                                                                  settings: InferenceSettings) -> None:
    image = logic.read_upload("crop.png", png_bytes(sample_crop(40)))
    outcome = logic.run_enhance(image, tiny_model, device="cpu", settings=settings)
    reference = tmp_path / "reference.png"  # what `medsr upscale` with these flags writes
    write_image(upscale(image, tiny_model, settings), reference)
    got = read_image(_png(tmp_path, logic.encode_image(outcome.result, "png"))).pixels  # what the page sends
    np.testing.assert_array_equal(got, read_image(reference).pixels)
    assert outcome.output == settings.output_note()
    if settings != InferenceSettings():  # the choice did change the output
        trained = logic.run_enhance(image, tiny_model, device="cpu")
        assert np.count_nonzero(outcome.sr != trained.sr) > 100
        assert outcome.shown_name == f"{outcome.model_name} ({settings.output_note()})"


def _png(folder: Path, data: bytes) -> Path:
    path = folder / "app.png"
    path.write_bytes(data)
    return path


def test_closer_to_the_input_halves_the_disagreement_with_the_input(tiny_model: torch.nn.Module) -> None:
    image = logic.read_upload("crop.png", png_bytes(sample_crop(48)))
    trained = logic.run_enhance(image, tiny_model, device="cpu")
    closer = logic.run_enhance(image, tiny_model, device="cpu", settings=CLOSER_BOX)
    before = downscale(trained.sr, 4, "box") - trained.lr
    after = downscale(closer.sr, 4, "box") - closer.lr
    assert np.abs(before).max() > 4 / 255  # the random model disagrees with its input
    np.testing.assert_allclose(after, 0.5 * before, atol=1.5 / 255)  # fidelity 0.5, within rounding to 8 bits


def test_simulate_scores_the_chosen_setting(tiny_model: torch.nn.Module) -> None:
    from medsr.metrics import psnr

    image = logic.read_upload("crop.png", png_bytes(sample_crop(64)))
    trained = logic.run_simulate(image, tiny_model, scale=4, device="cpu")
    closer = logic.run_simulate(image, tiny_model, scale=4, device="cpu",
                                settings=fidelity.settings_for(fidelity.CLOSER, kernel="bicubic"))
    np.testing.assert_array_equal(closer.bicubic, trained.bicubic)  # the same input and baseline
    assert closer.scores["Model"]["psnr"] == pytest.approx(psnr(closer.sr, closer.hr, 1.0, border=4))
    assert closer.scores["Model"]["psnr"] != pytest.approx(trained.scores["Model"]["psnr"], abs=0.01)
    assert closer.output == "consistency projection, bicubic kernel, fidelity 0.5"


def test_the_derived_dicom_records_the_setting_as_medsr_upscale_does(tiny_model: torch.nn.Module,
                                                                     tmp_path: Path) -> None:
    ct = read_image(DATA / "ct_small.dcm")
    outcome = logic.run_enhance(ct, tiny_model, device="cpu", settings=HALF)
    app = pydicom.dcmread(io.BytesIO(logic.encode_image(outcome.result, "dicom")))
    write_image(upscale(ct, tiny_model, HALF), tmp_path / "cli.dcm", format="dicom")
    cli = pydicom.dcmread(tmp_path / "cli.dcm")
    assert app.DerivationDescription == cli.DerivationDescription
    assert app.DerivationDescription.endswith(", scale x4, strength 0.5")
    np.testing.assert_array_equal(app.pixel_array, cli.pixel_array)
    trained = pydicom.dcmread(io.BytesIO(logic.encode_image(logic.run_enhance(ct, tiny_model, device="cpu").result,
                                                            "dicom")))
    assert trained.DerivationDescription.endswith(", scale x4")  # as trained: as before


def test_every_frame_and_batch_run_under_the_setting(tiny_model: torch.nn.Module, tmp_path: Path) -> None:
    from test_frames import multiframe_ct

    data = multiframe_ct(2, 32)
    image = logic.read_upload("frames.dcm", data)
    outcome = frames.run_frames(image, tiny_model, device="cpu", settings=CLOSER_BOX)
    write_image(upscale(image, tiny_model, CLOSER_BOX), tmp_path / "cli.dcm", format="dicom")
    app = pydicom.dcmread(io.BytesIO(logic.encode_image(outcome.result, "dicom")))
    cli = pydicom.dcmread(tmp_path / "cli.dcm")
    np.testing.assert_array_equal(app.pixel_array, cli.pixel_array)
    assert "consistency projection, box kernel" in app.DerivationDescription
    result = batch.run_batch([("crop.png", png_bytes(sample_crop(32)))], tiny_model, settings=HALF)
    import zipfile

    [name] = zipfile.ZipFile(io.BytesIO(result.zip_bytes)).namelist()
    (tmp_path / "batch.png").write_bytes(zipfile.ZipFile(io.BytesIO(result.zip_bytes)).read(name))
    write_image(upscale(read_image(_png(tmp_path, png_bytes(sample_crop(32)))), tiny_model, HALF),
                tmp_path / "cli.png")
    np.testing.assert_array_equal(read_image(tmp_path / "batch.png").pixels, read_image(tmp_path / "cli.png").pixels)


def test_a_model_batch_picks_by_modality_gets_settings_it_can_run() -> None:
    size_keeping = type("Model", (), {"scale": (1, 1), "meta": None})()
    used, note = fidelity.for_other_model(CLOSER_BOX, size_keeping, "ct-sparse-view")
    assert used.consistency == "none" and "does not apply" in note
    bicubic_trained = type("Model", (), {"scale": (1, 4), "meta": {"training": {"config": {
        "degradation": "ultrasound"}}}})()
    used, note = fidelity.for_other_model(CLOSER_BOX, bicubic_trained, "ultrasound-lateral-x4")
    assert used.consistency_kernel == "bicubic" and "bicubic kernel" in note
    assert fidelity.for_other_model(HALF, size_keeping, "ct-sparse-view") == (HALF, "")


def test_describe_changes_names_the_faint_findings_setting() -> None:
    old = {"image": "a", "mode": "Enhance", "model": "xray-x4", "faint": "as trained"}
    new = {**old, "faint": "--strength 0.5"}
    assert logic.describe_changes(old, new) == (
        "The faint-findings setting (as trained -> --strength 0.5) has changed since the last run: press Run "
        "super-resolution to update the result.")


def test_the_page_offers_the_choice_and_never_shows_a_result_of_another(models_dir: Path) -> None:
    at = start_app()
    pick_tiny_model(at)
    upload(at, "crop.png", png_bytes(sample_crop(32)))
    faint = at.sidebar.radio(key="faint")
    assert faint.options == list(fidelity.CHOICES) and faint.value == fidelity.AS_TRAINED
    at.button(key="run").click().run()
    assert "Model tiny on" in at.success[0].value
    trained = viewer_args(at)[1]["panels"][2]
    at.sidebar.radio(key="faint").set_value(fidelity.STRENGTH).run()
    assert not at.success and not at.exception  # the result of the other setting is gone
    assert any("faint-findings setting (as trained -> --strength 0.5)" in i.value for i in at.info)
    assert any("medsr upscale --strength 0.5" in c.value for c in at.sidebar.caption)
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Model tiny (strength 0.5) on" in at.success[0].value
    result = viewer_args(at)[1]["panels"][2]
    assert result["name"] == "Model: tiny (strength 0.5)" and trained["name"] == "Model: tiny"
    at.sidebar.radio(key="faint").set_value(fidelity.CLOSER).run()
    kernel = at.sidebar.selectbox(key=f"faint_kernel:{models_dir / 'tiny.safetensors'}")
    assert kernel.value == "bicubic" and kernel.options == ["bicubic", "box"]  # tiny's header names no kernel
