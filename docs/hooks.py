"""MkDocs hooks: pages generated from the code when the site is built, so they cannot go stale.

- ``reference/cli.md``: every ``medsr`` command and option, from the Typer app (:mod:`medsr.cli_reference`).
- ``models/index.md``: the bundled models, one line each, from their cards (``src/medsr/weights/*.yaml``).
"""

from __future__ import annotations

from mkdocs.structure.files import File, Files

from medsr.cli_reference import cli_markdown
from medsr.models import list_bundled_models


def _models_index() -> str:
    lines = ["# Bundled models", "", "Each card is rendered from the model's card data "
             "(`src/medsr/weights/NAME.yaml`); `medsr models` lists the same with their test scores.", "",
             "| model | scale | test PSNR (dB) | baseline | LR made by |", "|---|---|---|---|---|"]
    for entry in list_bundled_models():
        card, meta = entry["card"], entry["meta"]
        sy, sx = meta["scale"]
        scores = card.scores
        lines.append(f"| [{card.name}]({card.name}.md) | {'x%d' % sy if sy == sx else f'{sy}x{sx}'} | "
                     f"{scores['psnr']:.2f} | {card.baseline} {scores['bicubic_psnr']:.2f} | "
                     f"{scores.get('protocol', 'bicubic')} |")
    return "\n".join(lines) + "\n"


def on_files(files: Files, config) -> Files:
    for path, content in (("reference/cli.md", cli_markdown()), ("models/index.md", _models_index())):
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, content=content))
    return files
