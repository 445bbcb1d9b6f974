"""Recipes: every bundled model's training is a folder of configs that load and build, and replay in order."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from medsr import recipes
from medsr.cli import app
from medsr.errors import ConfigError
from medsr.models import list_bundled_models
from medsr.train.trainer import generator_for

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "configs" / "recipes"
BUNDLED = {entry["name"]: entry["card"] for entry in list_bundled_models()}


def test_every_bundled_model_names_a_recipe_that_exists() -> None:
    assert BUNDLED
    for name, card in BUNDLED.items():
        assert (RECIPES / card.recipe).is_dir(), f"{name}: no configs/recipes/{card.recipe}"


@pytest.mark.parametrize("name", sorted(p.name for p in RECIPES.iterdir() if p.is_dir()))
def test_recipe_steps_load_build_and_chain(name: str) -> None:
    recipe = recipes.load_recipe(name, RECIPES)
    configs = recipe.configs()
    assert recipe.prepare is not None and configs
    outs = []
    for step, config in zip(recipe.steps, configs, strict=True):
        assert config.manifest == recipe.prepare.out, step.name
        assert config.out == f"runs/{step.stem.split('-', 1)[1]}", "a step's run folder is named after it"
        if outs and config.init_from:  # a later step continues an earlier one, or starts from a bundled model
            assert config.init_from in {f"{out}/checkpoints/best.safetensors" for out in outs} | set(BUNDLED)
        generator_for(config)  # the network it describes builds (nothing is trained)
        outs.append(config.out)
    assert len(set(outs)) == len(outs), "two steps share a run folder"


def _tiny_recipe(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for png in (ROOT / "tests" / "data").glob("xray_*.png"):
        shutil.copy(png, images)
    folder = tmp_path / "recipes" / "tiny"
    folder.mkdir(parents=True)
    manifest = str(tmp_path / "m.csv")
    (folder / "prepare.yaml").write_text(yaml.safe_dump({"roots": [str(images)], "out": manifest}))
    for i, run in enumerate(("done", "started", "fresh"), 1):
        step = {"manifest": manifest, "model": "plainrep", "epochs": 2, "out": str(tmp_path / "runs" / run)}
        (folder / f"{i:02d}-{run}.yaml").write_text(yaml.safe_dump(step))
    return folder


def test_run_recipe_makes_the_manifest_then_skips_resumes_and_trains_in_order(tmp_path, monkeypatch) -> None:
    folder = _tiny_recipe(tmp_path)
    done, started = tmp_path / "runs" / "done", tmp_path / "runs" / "started"
    done.mkdir(parents=True)
    (done / "metrics.csv").write_text("epoch,loss\n1,0.1\n2,0.05\n")
    started.mkdir()
    (started / "config.yaml").write_text("{}")
    (started / "metrics.csv").write_text("epoch,loss\n1,0.1\n")
    calls = []
    monkeypatch.setattr("medsr.train.trainer.train",
                        lambda config=None, *, resume=None: calls.append(resume or Path(config.out).name))
    runs = recipes.run_recipe(recipes.load_recipe(folder), log=lambda line: None)
    assert (tmp_path / "m.csv").is_file(), "the manifest was not made"
    assert calls == [started, "fresh"]
    assert [r.name for r in runs] == ["done", "started", "fresh"]


def test_a_stray_file_in_a_recipe_is_refused(tmp_path) -> None:
    folder = _tiny_recipe(tmp_path)
    (folder / "notes.yaml").write_text("x: 1\n")
    with pytest.raises(ConfigError, match="not a step: notes.yaml"):
        recipes.load_recipe(folder)


def test_recipe_takes_no_other_settings() -> None:
    result = CliRunner().invoke(app, ["train", "--recipe", "xray-x4", "--epochs", "3"])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)
