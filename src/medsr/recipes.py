"""Training recipes: how a bundled model was trained, as a folder of committed configs that can be replayed.

A recipe is ``configs/recipes/<name>/``: ``prepare.yaml`` (the ``medsr prepare`` call that makes the manifest:
``roots``, ``out``, ``patients``, ``patient_column``, ``sources``, ``seed``) and one training config per step,
``01-<run>.yaml``, ``02-<run>.yaml``, ... in order. Each step is a complete :class:`TrainConfig` file (it also
runs alone: ``medsr train --config STEP``); a step that continues another names that step's best checkpoint in
``init_from``. ``medsr train --recipe NAME`` replays the whole folder: the manifest is made if it is missing,
finished steps are skipped, an interrupted one is resumed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medsr.errors import ConfigError
from medsr.train.config import TrainConfig

#: Where recipes live, relative to the repository root (the working directory of ``medsr train --recipe``).
RECIPES_DIR = Path("configs/recipes")
_STEP = re.compile(r"^(\d+)-[\w.-]+\.ya?ml$")


@dataclass(frozen=True)
class Prepare:
    """The ``medsr prepare`` call of a recipe (see :func:`medsr.data.manifest.build_manifest`)."""

    roots: tuple[str, ...]
    out: str
    patients: tuple[str, ...] = ()
    patient_column: str | None = None
    sources: tuple[str, ...] = ()  # 'FOLDER_PATTERN=NAME', as medsr prepare --source
    seed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prepare:
        known = {"roots", "out", "patients", "patient_column", "sources", "seed"}
        unknown = sorted(set(data) - known)
        if unknown or "roots" not in data or "out" not in data:
            raise ConfigError(f"prepare.yaml needs roots and out; unknown: {', '.join(unknown) or 'none'}")
        return cls(roots=tuple(map(str, data["roots"])), out=str(data["out"]),
                   patients=tuple(map(str, data.get("patients") or ())), patient_column=data.get("patient_column"),
                   sources=tuple(map(str, data.get("sources") or ())), seed=int(data.get("seed", 0)))


@dataclass(frozen=True)
class Recipe:
    """A recipe folder, read: its manifest step and its training steps in order."""

    name: str
    folder: Path
    prepare: Prepare | None
    steps: tuple[Path, ...] = field(default=())

    def configs(self) -> list[TrainConfig]:
        """Every step's config, loaded and validated (nothing is trained)."""
        return [TrainConfig.load(step) for step in self.steps]


def find_recipe(name_or_path: str | Path, root: str | Path = RECIPES_DIR) -> Path:
    """A recipe folder: ``name_or_path`` itself if it is a folder, else ``root/<name>``."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    candidate = Path(root) / str(name_or_path)
    if candidate.is_dir():
        return candidate
    known = sorted(p.name for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []
    raise ConfigError(f"no recipe {name_or_path!r} (looked for the folder {candidate}; "
                      f"known: {', '.join(known) or 'none, run from the repository root'})")


def load_recipe(name_or_path: str | Path, root: str | Path = RECIPES_DIR) -> Recipe:
    """Read a recipe folder (see the module docstring); ConfigError if it holds no steps or a stray file."""
    folder = find_recipe(name_or_path, root)
    prepare = None
    if (folder / "prepare.yaml").is_file():
        prepare = Prepare.from_dict(yaml.safe_load((folder / "prepare.yaml").read_text()) or {})
    steps, stray = [], []
    for path in folder.iterdir():
        if path.name == "prepare.yaml":
            continue
        (steps if _STEP.match(path.name) else stray).append(path)
    if stray or not steps:
        raise ConfigError(f"recipe {folder}: steps are NN-NAME.yaml files"
                          + (f"; not a step: {', '.join(sorted(p.name for p in stray))}" if stray else "; none found"))
    steps.sort(key=lambda p: int(_STEP.match(p.name).group(1)))
    return Recipe(folder.name, folder, prepare, tuple(steps))


def prepare_manifest(spec: Prepare) -> Path:
    """Make the recipe's manifest as ``medsr prepare`` would; the manifest path."""
    from medsr.data import manifest as mf

    rows, skipped = mf.build_manifest(spec.roots, spec.out, seed=spec.seed, patients=spec.patients,
                                      patient_column=spec.patient_column,
                                      sources=mf.parse_source_rules(spec.sources))
    mf.write_manifest(rows, spec.out)
    if skipped:
        mf.write_skipped(skipped, spec.out)
    return Path(spec.out)


def _finished(run_dir: Path, config: TrainConfig) -> bool:
    """Whether a run folder's metrics reach the config's last epoch (pretraining and GAN epochs together)."""
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        return False
    lines = [line for line in metrics.read_text().splitlines()[1:] if line.strip()]
    epochs = {"pretrain": config.epochs, "gan": config.gan_epochs}.get(config.stage, config.epochs + config.gan_epochs)
    return len(lines) >= epochs


def run_recipe(recipe: Recipe, *, log: Callable[[str], None] = print) -> list[Path]:
    """Replay ``recipe``: make its manifest if missing, then train each step (skip finished, resume started)."""
    from medsr.train.trainer import train

    if recipe.prepare is not None and not Path(recipe.prepare.out).is_file():
        log(f"recipe {recipe.name}: making {recipe.prepare.out}")
        prepare_manifest(recipe.prepare)
    runs = []
    for step, config in zip(recipe.steps, recipe.configs(), strict=True):
        run_dir = Path(config.out)
        if _finished(run_dir, config):
            log(f"recipe {recipe.name}: {step.name} already trained in {run_dir}")
        elif (run_dir / "config.yaml").is_file():
            log(f"recipe {recipe.name}: {step.name}: resuming {run_dir}")
            train(resume=run_dir)
        else:
            log(f"recipe {recipe.name}: {step.name} -> {run_dir}")
            train(config)
        runs.append(run_dir)
    return runs
