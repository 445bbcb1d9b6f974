"""Model cards as data: every bundled model has one, it matches its weights, and the Markdown is rendered from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from medsr.cli import app
from medsr.errors import CheckpointError
from medsr.models import list_bundled_models, load_model, read_header, registry
from medsr.models.cards import read_card, render_markdown, sha256_of, verify_weights

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = list_bundled_models()


def test_every_bundled_model_has_a_card_that_matches_its_weights() -> None:
    assert len(BUNDLED) >= 7
    for entry in BUNDLED:
        card = entry["card"]
        assert card is not None, entry["name"]
        assert card.name == entry["name"] and card.weights_path == entry["weights"]
        assert card.sha256 == sha256_of(entry["weights"])
        assert card.scores == read_header(entry["weights"])["metrics"]["test"], "card and header scores differ"
        assert card.licences and all(item.licence for item in card.licences)
        assert card.summary and card.architecture and card.data and card.training


def test_markdown_cards_are_rendered_from_the_card_data() -> None:
    """docs/models/NAME.md is what the card renders to: refresh with `python -m medsr.models.cards docs/models`."""
    rendered = {entry["name"]: render_markdown(entry["card"]) for entry in BUNDLED}
    on_disk = {path.stem: path.read_text(encoding="utf-8") for path in (ROOT / "docs" / "models").glob("*.md")
               if path.stem in rendered}
    assert on_disk == rendered


def test_rendered_score_tables_hold_the_card_numbers() -> None:
    card = next(entry["card"] for entry in BUNDLED if entry["name"] == "xray-x4")
    text = render_markdown(card)
    groups = card.scores["by_degradation"][card.scores["protocol"]]
    mean = groups["mean of sources"]
    row = next(line for line in text.splitlines() if line.startswith("| **mean of sources** |"))
    assert f"{mean['model']['psnr']:.2f} / {mean['model']['ssim']:.4f}" in row
    assert f"{mean['model']['psnr'] - mean['bicubic']['psnr']:+.2f} dB" in row


@pytest.fixture
def weights_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the bundled weights folder (xray-x4 only), used as the bundled folder."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for suffix in (".safetensors", ".yaml"):
        shutil.copy(registry._weights_dir() / f"xray-x4{suffix}", folder)
    monkeypatch.setattr(registry, "_weights_dir", lambda: folder)
    return folder


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one bit of the last weight: still a valid file, other numbers
    path.write_bytes(bytes(data))


def test_load_model_refuses_weights_that_differ_from_their_card(weights_copy: Path) -> None:
    model = load_model("xray-x4", cache=False)
    assert model.meta["name"] == "xray-x4"
    _tamper(weights_copy / "xray-x4.safetensors")
    with pytest.raises(CheckpointError, match=r"xray-x4\.safetensors: sha256 .* differs from its model card"):
        load_model("xray-x4", cache=False)


def test_models_command_reports_a_damaged_weights_file(weights_copy: Path) -> None:
    _tamper(weights_copy / "xray-x4.safetensors")
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 1
    assert "differs from its model card" in result.output


def test_a_malformed_card_names_the_file_and_what_is_missing(tmp_path: Path) -> None:
    card = yaml.safe_load((registry._weights_dir() / "xray-x4.yaml").read_text())
    del card["sha256"]
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(card))
    with pytest.raises(CheckpointError, match=r"broken\.yaml: unreadable model card \(missing sha256\)"):
        read_card(path)


def test_verify_weights_passes_the_bundled_files() -> None:
    for entry in BUNDLED:
        assert verify_weights(entry["card"]) == entry["weights"]


def test_results_files_the_cards_and_docs_name_exist() -> None:
    """Every docs/results/... path (or glob) a card, the README or a docs page names matches a file."""
    import re

    texts = [render_markdown(entry["card"]) for entry in BUNDLED]
    texts += [p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]]
    named = {m.rstrip(".,;:)") for text in texts for m in re.findall(r"docs/results/[\w*./{}-]+", text)}
    assert named
    placeholder = re.compile(r"\{|NAME|SRC")  # a command's pattern, not a file
    missing = [path for path in sorted(named) if not placeholder.search(path) and not list(ROOT.glob(path))]
    assert not missing, f"named but not found: {missing}"


def test_small_findings_round_trip_and_render(tmp_path: Path) -> None:
    from dataclasses import replace

    from medsr.models.cards import write_card

    card = next(entry["card"] for entry in BUNDLED if entry["name"] == "xray-x4")
    assert "small_findings" not in replace(card, small_findings={}).to_dict()  # absent stays absent
    findings = {"text": "Faint discs fade.", "protocol": "the test split", "command": "medsr detectability ...",
                "auc": [{"size": 8.0, "contrast": 0.02, "bicubic": [0.7, 0.65, 0.75], "model": [0.6, 0.55, 0.66],
                         "difference": [-0.1, -0.15, -0.05]},
                        {"size": 16.0, "contrast": 0.04, "bicubic": [0.9, 0.85, 0.95], "model": [0.91, 0.86, 0.95],
                         "difference": [0.01, -0.02, 0.04]}],
                "band": {"nih": {"bicubic": [0.1, 0.2, 0.3, 0.4], "model": [0.5, 0.6, 0.7, 0.8]}}}
    path = write_card(replace(card, small_findings=findings), tmp_path / "xray-x4.yaml")
    again = read_card(path)
    assert again.small_findings == findings
    text = render_markdown(again)
    assert "## Small findings" in text and "Faint discs fade." in text
    assert "| 8 | 2 % | 0.700 [0.65, 0.75] | 0.600 [0.55, 0.66] | **-0.100 [-0.150, -0.050]** |" in text
    assert "| 16 | 4 % | 0.900 [0.85, 0.95] | 0.910 [0.86, 0.95] | +0.010 [-0.020, +0.040] |" in text
    assert "| nih | 0.10 / 0.20 | 0.50 / 0.60 | 0.30 / 0.40 | 0.70 / 0.80 |" in text
    from medsr.app.cards import card_from_release

    sidebar = card_from_release(again)
    assert sidebar.small_findings.startswith("Faint discs fade.") and "**-0.100" in sidebar.small_findings
    assert card_from_release(replace(card, small_findings={})).small_findings == ""  # none without the section
