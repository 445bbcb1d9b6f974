"""Model choice from the DICOM Modality (medsr.infer.modality) and `medsr upscale` without --model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medsr.cli import app
from medsr.errors import ConfigError
from medsr.infer.files import Source
from medsr.infer.modality import MODALITY_MODELS, file_modality, modality_warnings, plan_models
from medsr.models import DEFAULT_MODEL, list_bundled_models

DATA = Path(__file__).parents[1] / "data"
FILES = {"ct": DATA / "ct_small.dcm", "us": DATA / "us_ybr_color.dcm", "cr": DATA / "cr_mono1_small.dcm",
         "png": DATA / "xray_c9280a30.png"}


def _sources(*keys: str) -> list[Source]:
    return [Source(FILES[k], Path(FILES[k].name)) for k in keys]


def test_the_modality_comes_from_the_dicom_header_and_rasters_have_none():
    assert [file_modality(FILES[k]) for k in ("ct", "us", "cr", "png")] == ["CT", "US", "CR", None]


def test_without_a_model_each_file_gets_the_model_for_its_modality_and_the_choice_is_said():
    groups, notes = plan_models(_sources("ct", "us", "cr", "png"), None)
    chosen = {name: sorted(s.path.name for s in group) for name, group in groups}
    assert chosen == {"ct-sparse-view": ["ct_small.dcm"], "ultrasound-lateral-x4": ["us_ybr_color.dcm"],
                      DEFAULT_MODEL: ["cr_mono1_small.dcm", "xray_c9280a30.png"]}
    assert any("ct-sparse-view for 1 file" in line for line in notes)


def test_a_given_model_or_modality_overrides_the_header():
    assert plan_models(_sources("ct", "png"), "xray-x4-bicubic")[0] == [("xray-x4-bicubic", _sources("ct", "png"))]
    groups, _ = plan_models(_sources("png"), None, modality="us")
    assert [name for name, _ in groups] == [MODALITY_MODELS["US"]]
    with pytest.raises(ConfigError, match="unknown modality 'MR'"):
        plan_models(_sources("png"), None, modality="MR")


def test_a_model_trained_for_another_modality_is_warned_about_per_file():
    lines = modality_warnings(_sources("ct", "cr", "png"), {"name": "xray-x4"}, "xray-x4")
    assert len(lines) == 1 and "ct_small.dcm: DICOM Modality CT" in lines[0] and "CR/DX" in lines[0]
    assert modality_warnings(_sources("ct"), {"modality": "CT"}, "mine") == []


@pytest.mark.skipif("ct-sparse-view" not in {m["name"] for m in list_bundled_models()},
                    reason="the CT model is not bundled")
def test_upscale_without_a_model_runs_a_ct_dicom_through_the_ct_model(tmp_path):
    shutil.copy(FILES["ct"], tmp_path / "ct.dcm")
    result = CliRunner().invoke(app, ["upscale", str(tmp_path / "ct.dcm"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "ct-sparse-view" in result.output and (tmp_path / "out" / "ct.dcm").is_file()
