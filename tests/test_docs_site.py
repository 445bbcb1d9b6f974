"""The documentation site's generated pages: the CLI reference comes from the Typer app, the models index from
the cards. (``make test`` also builds the whole site with ``mkdocs build --strict``.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer.main

from medsr.cli import app
from medsr.cli_reference import cli_markdown
from medsr.models import list_bundled_models

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_has_every_command_and_option() -> None:
    page = cli_markdown()
    group = typer.main.get_command(app)
    context = group.context_class(group, info_name="medsr")
    for name in group.list_commands(context):
        section = page.split(f"## medsr {name}\n", 1)[1].split("\n## medsr ", 1)[0]
        command = group.get_command(context, name)
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                assert f"`{param.opts[0]}`" in section, f"medsr {name} {param.opts[0]} missing from the reference"
    assert "`--window`" in page and "`--recipe`" in page
    assert "[sha256" not in page.replace("\\[sha256", ""), "brackets in help text must be escaped"


def test_models_index_lists_every_bundled_model_with_its_card_score() -> None:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    page = hooks._models_index()
    for entry in list_bundled_models():
        card = entry["card"]
        row = next(line for line in page.splitlines() if line.startswith(f"| [{card.name}]({card.name}.md) |"))
        assert f"| {card.scores['psnr']:.2f} |" in row
