"""Scores in reading windows (``medsr evaluate --window``): values against a NumPy reference, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medsr.cli import app
from medsr.errors import ConfigError
from medsr.models import build_generator, save_model
from medsr.windowed import WINDOWS, in_window, parse_window, window_scores

CT = Path(__file__).resolve().parent / "data" / "ct_small.dcm"


def _numpy_psnr(a: np.ndarray, b: np.ndarray, border: int) -> float:
    a, b = a[border:-border, border:-border].astype(np.float64), b[border:-border, border:-border].astype(np.float64)
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def test_window_scores_clip_both_images_to_the_window_and_take_its_width_as_peak() -> None:
    rng = np.random.default_rng(0)
    value_range = (-1000.0, 1000.0)
    hr = rng.random((40, 40, 1), dtype=np.float32)
    sr = np.clip(hr + rng.normal(0, 0.02, hr.shape).astype(np.float32), 0, 1)
    scores = window_scores(sr, hr, value_range, {"full": None, "narrow": (-100.0, 300.0)}, border=2)
    hu = lambda x: -1000.0 + x * 2000.0  # noqa: E731
    narrow = lambda x: (np.clip(hu(x), -100.0, 300.0) + 100.0) / 400.0  # noqa: E731
    assert scores["full"][0] == pytest.approx(_numpy_psnr(sr, hr, 2), abs=1e-4)
    assert scores["narrow"][0] == pytest.approx(_numpy_psnr(narrow(sr), narrow(hr), 2), abs=1e-4)
    assert scores["narrow"][0] < scores["full"][0]  # the same error weighs more in a narrow window
    assert in_window(hr, value_range, None) is hr


def test_parse_window_names_and_bounds() -> None:
    assert parse_window("lung") == ("lung", WINDOWS["lung"])
    assert parse_window("-160,240") == ("-160..240", (-160.0, 240.0))
    for bad in ("brain", "240,-160", "1,x", "5"):
        with pytest.raises(ConfigError, match="--window"):
            parse_window(bad)


def _tiny_model(path: Path, ct: bool) -> Path:
    torch.manual_seed(0)
    net = build_generator("plainrep", scale=2, num_channels=4, num_convs=2)
    meta = {"value_range": [-1024.0, 3071.0], "raster_offset": 1024.0, "modality": "CT"} if ct else {}
    return save_model(net, path, meta)


def test_evaluate_window_adds_window_scores_whose_full_window_is_the_protocol_score(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path / "ct.safetensors", ct=True)
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(app, ["evaluate", "--model", str(model), str(CT), "--baselines", "bicubic",
                                      "--window", "full", "--window", "lung", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    windows = data["windows"]
    assert set(windows) == {"ct.safetensors", "bicubic"} and list(windows["bicubic"]) == ["full", "lung"]
    for method, by_window in windows.items():  # one pair, one output: the same PSNR as the plain score
        assert by_window["full"]["psnr"] == pytest.approx(data["methods"][method]["psnr"], abs=1e-6)
        assert by_window["full"]["images"] == 1
    assert "reading windows" in result.output


def test_evaluate_window_needs_a_model_in_physical_units(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path / "plain.safetensors", ct=False)
    result = CliRunner().invoke(app, ["evaluate", "--model", str(model), str(CT), "--window", "lung"])
    assert result.exit_code != 0 and "physical units" in str(result.exception)
