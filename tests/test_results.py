"""Results tables (``medsr results-table``): built from the kept JSON summaries, they are the docs' tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medsr.cli import app
from medsr.errors import ConfigError
from medsr.results import read_summaries, results_table

ROOT = Path(__file__).resolve().parents[1]
R = ROOT / "docs" / "results"


def _chest(degradation: str) -> list[str]:
    return [f"published Swift-SRGAN={R}/published-swift-srgan/eval-peer-{degradation}.json",
            f"swift-srresnet-xray-x4={R}/swift-srresnet-xray-x4/eval-swiftold-{degradation}.json",
            f"xray-x4-swift={R}/xray-x4-swift/eval-xray-x4-swift-{degradation}.json",
            f"xray-x4-bicubic={R}/xray-x4-bicubic/eval-xray-x4-bicubic-{degradation}.json",
            f"**xray-x4** (default)={R}/xray-x4/eval-xray-x4-{degradation}.json"]


@pytest.mark.parametrize("degradation", ["box-noise", "bicubic"])
def test_the_results_page_tables_are_what_the_json_files_give(degradation: str) -> None:
    table = results_table(read_summaries(_chest(degradation)), degradation)
    page = (ROOT / "docs" / "results" / "index.md").read_text()
    assert table in page, "docs/results/index.md is stale: rerun its command"


def test_cells_are_the_json_means_and_the_baselines_come_from_the_first_file() -> None:
    summaries = read_summaries(_chest("box-noise")[-1:])
    data = summaries["**xray-x4** (default)"]["sources"]["hannover"]
    row = next(line for line in results_table(summaries, "box-noise").splitlines() if line.startswith("| hannover"))
    model = next(k for k in data if k not in ("bicubic", "lanczos"))
    assert row == (f"| hannover | {data['bicubic']['images']} | {data['bicubic']['psnr']:.2f} / "
                   f"{data['bicubic']['ssim']:.4f} | {data['lanczos']['psnr']:.2f} / {data['lanczos']['ssim']:.4f} | "
                   f"{data[model]['psnr']:.2f} / {data[model]['ssim']:.4f} |")


def test_command_prints_the_table_and_names_a_bad_argument(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["results-table", "--degradation", "box-noise", *_chest("box-noise")])
    assert result.exit_code == 0 and result.output.startswith("LR by `box-noise`")
    with pytest.raises(ConfigError, match="LABEL=JSON"):
        read_summaries(["no-label.json"])
    result = CliRunner().invoke(app, ["results-table", "--degradation", "x", f"m={tmp_path / 'missing.json'}"])
    assert result.exit_code != 0 and "missing.json" in str(result.exception)
