"""Results tables: Markdown tables of test scores per source from the JSON summaries ``medsr evaluate`` writes.

``medsr results-table --degradation box-noise 'xray-x4=eval-xray-x4-box-noise.json' ...`` prints one table: a
row per source (and the mean of sources, when the JSONs have sources), the interpolation baselines of the first
file, then one column per labelled model. Cells are ``PSNR / SSIM`` as the JSON holds them; nothing is
re-measured, so a table in the docs can be checked against the files it came from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medsr.errors import ConfigError, ManifestError

BASELINES = {"bicubic": "bicubic", "lanczos": "Lanczos"}


def _model_method(methods: Mapping[str, Any]) -> str:
    found = [key for key in methods if key not in ("bicubic", "lanczos", "nearest")]
    if len(found) != 1:
        raise ConfigError(f"expected one model among the methods {', '.join(methods)}")
    return found[0]


def read_summaries(labelled: list[str]) -> dict[str, dict[str, Any]]:
    """``["LABEL=JSON", ...]`` -> ``{label: the JSON summary}``; a bad item or file names itself."""
    out = {}
    for item in labelled:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise ConfigError(f"{item!r}: give LABEL=JSON")
        try:
            out[label] = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ManifestError(path, f"not a medsr evaluate JSON ({exc})") from exc
    return out


def results_table(summaries: Mapping[str, Mapping[str, Any]], degradation: str) -> str:
    """The Markdown table (title line included) of ``{label: evaluate JSON}``, baselines from the first."""
    if not summaries:
        raise ConfigError("no results to tabulate")
    first = next(iter(summaries.values()))
    sources = list(first.get("sources") or {}) or ["all images"]
    baselines = [key for key in BASELINES if key in first["methods"]]
    columns = [BASELINES[key] for key in baselines] + list(summaries)
    lines = [f"LR by `{degradation}`, PSNR (dB) / SSIM:", "",
             "| source | images | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for source in sources:
        def cells(data: Mapping[str, Any], source: str = source) -> Mapping[str, Any]:
            return data["sources"][source] if data.get("sources") else data["methods"]

        base = cells(first)
        row = [base[key] for key in baselines]
        row += [cells(data)[_model_method(cells(data))] for data in summaries.values()]
        images = base[baselines[0]]["images"] if baselines else row[0]["images"]
        lines.append(f"| {source} | {images} | " + " | ".join(f"{c['psnr']:.2f} / {c['ssim']:.4f}" for c in row) + " |")
    return "\n".join(lines)
