"""The README is a short entrance whose figures are true: its model table is the cards', its links resolve."""

from __future__ import annotations

import re
from pathlib import Path

from medsr.models import list_bundled_models

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_stays_short() -> None:
    assert len(README.splitlines()) <= 220, "the README is an entrance; details go to docs/"


def test_bundled_models_table_holds_every_card_and_its_scores() -> None:
    for entry in list_bundled_models():
        card = entry["card"]
        row = next((line for line in README.splitlines() if line.startswith(f"| `{card.name}`")), None)
        assert row is not None, f"{card.name} missing from the README's model table"
        assert f"{card.scores['psnr']:.2f} vs " in row and f" {card.scores['bicubic_psnr']:.2f}" in row, row
        assert f"(docs/models/{card.name}.md)" in row


def test_readme_links_resolve() -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), f"README links to a missing {target}"
