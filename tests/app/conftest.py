"""Fixtures of the web app's tests: a tiny random model, saved in a temporary models folder for the page."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    from medsr.models import build_generator

    torch.manual_seed(0)
    return build_generator("swift-srgan", in_channels=1, scale=4, global_skip=True, num_channels=8,
                           num_blocks=1).eval()


@pytest.fixture()
def models_dir(tmp_path: Path, tiny_model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> Path:
    from medsr.models import save_model

    folder = tmp_path / "models"
    save_model(tiny_model, folder / "tiny.safetensors", {"name": "tiny"})
    monkeypatch.setenv("MEDSR_MODELS_DIR", str(folder))
    return folder
