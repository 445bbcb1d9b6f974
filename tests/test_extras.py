"""Optional extras: a feature whose package is missing fails with one line naming the extra to install.

A missing package is simulated by a ``None`` entry in ``sys.modules``, which makes its import fail as if it
were not installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from medsr.cli import main
from medsr.extras import EXTRAS, MissingExtraError, require
from medsr.infer import InferenceSettings, export_onnx, upscale_array
from medsr.models import build_generator

ROOT = Path(__file__).resolve().parents[1]


def _hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def _tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_generator("plainrep", scale=2, num_channels=4, num_convs=2).eval()


def test_pyproject_extras_provide_the_modules_medsr_asks_for() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        packages = {re.split(r"[<>=\[ ]", dep)[0].replace("-", "_").lower() for dep in extras[extra]}
        assert set(modules) <= packages, (extra, packages)
        assert extra in extras["all"][0], "medsr[all] must include every extra"
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not {m for ms in EXTRAS.values() for m in ms} & {re.split(r"[<>= ]", d)[0] for d in core}


def test_require_returns_the_module_or_names_the_extra(monkeypatch) -> None:
    assert require("json", "onnx", "x") is sys.modules["json"]
    _hide(monkeypatch, "onnx")
    with pytest.raises(MissingExtraError, match=r"^ONNX export needs the optional package onnx, .*"
                                                r"pip install 'medsr\[onnx\]'"):
        require("onnx", "onnx", "ONNX export")


def test_onnx_export_without_onnx_names_the_extra(monkeypatch, tmp_path) -> None:
    _hide(monkeypatch, "onnx")
    with pytest.raises(MissingExtraError, match=r"medsr\[onnx\]"):
        export_onnx(_tiny(), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_onnxruntime_backend_without_onnxruntime_names_the_extra(monkeypatch) -> None:
    _hide(monkeypatch, "onnxruntime")
    lr = np.zeros((8, 8), np.float32)
    with pytest.raises(MissingExtraError, match=r"onnxruntime backend needs .*medsr\[onnx\]"):
        upscale_array(_tiny(), lr, InferenceSettings(device="cpu", backend="onnxruntime"))


def _cli(monkeypatch, capsys, *argv: str) -> tuple[int, list[str]]:
    monkeypatch.setattr(sys, "argv", ["medsr", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    return exit_info.value.code, err.splitlines()


def test_demo_without_streamlit_prints_one_line_and_starts_nothing(monkeypatch, capsys) -> None:
    _hide(monkeypatch, "streamlit")
    started = []
    monkeypatch.setattr("medsr.app.server.serve", lambda *a, **k: started.append(a) or 0)
    code, lines = _cli(monkeypatch, capsys, "demo", "--no-browser")
    assert code == 2 and not started
    assert lines == ["medsr: the web app needs the optional package streamlit, which is not installed: "
                     "pip install 'medsr[app]' (or 'medsr[all]')"]


def test_export_command_without_onnx_prints_one_line(monkeypatch, capsys, tmp_path) -> None:
    _hide(monkeypatch, "onnx")
    code, lines = _cli(monkeypatch, capsys, "export", "xray-x4", "--onnx", str(tmp_path / "m.onnx"))
    assert code == 2 and len(lines) == 1 and "pip install 'medsr[onnx]'" in lines[0]


def test_training_with_tensorboard_but_without_it_names_the_extra(monkeypatch, tmp_path) -> None:
    import importlib.util

    from medsr.train.trainer import train

    spec = importlib.util.spec_from_file_location("train_tests", ROOT / "tests" / "train" / "test_train.py")
    train_tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_tests)
    _config = train_tests._config

    _hide(monkeypatch, "tensorboard", "torch.utils.tensorboard")
    with pytest.raises(MissingExtraError, match=r"TensorBoard logging .*medsr\[tensorboard\]"):
        train(_config(tmp_path, tensorboard=True, epochs=1))
