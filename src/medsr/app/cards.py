"""Model cards for the web app's sidebar: what a model is, what it was trained on, how it scores, its limits.

A bundled model's card is its Markdown file (``medsr/weights/<name>.md``), cut into sections by ``##``
headings; a checkpoint from the models folder has no card, so its JSON header (architecture, training
config, metrics) stands in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsr.models import list_bundled_models


@dataclass
class ModelCard:
    """What the sidebar shows about one model; each field is Markdown ("" when the source says nothing).

    ``tests`` holds the card's test-split sections (heading -> Markdown with its table), ``limits`` its
    "What it is not for" section or its warnings.
    """

    name: str
    summary: str = ""
    architecture: str = ""
    data: str = ""
    tests: dict[str, str] = field(default_factory=dict)
    limits: str = ""
    source: str = "card"  # "card" (bundled Markdown) or "header" (a checkpoint's own metadata)


def split_sections(text: str) -> tuple[str, str, dict[str, str]]:
    """A Markdown card -> ``(title, text before the first ## heading, {heading: body})``."""
    title = ""
    intro: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] = intro
    for line in text.splitlines():
        if line.startswith("# ") and not title:
            title = line[2:].strip()
        elif line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        else:
            current.append(line)
    return title, "\n".join(intro).strip(), {k: "\n".join(v).strip() for k, v in sections.items()}


def _first_paragraph(text: str) -> str:
    return text.strip().split("\n\n", 1)[0].strip()


def _drop_images_and_code(text: str) -> str:
    """Card text without images (their paths are relative to the repository) and shell blocks."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def card_from_markdown(text: str, name: str) -> ModelCard:
    """Cut a bundled model card into the sidebar's parts (see :class:`ModelCard`)."""
    title, intro, sections = split_sections(text)
    tests = {head: _drop_images_and_code(body) for head, body in sections.items() if head.lower().startswith("test")}
    limits = next((body for head, body in sections.items() if "not for" in head.lower()), "")
    if not limits and intro.upper().startswith("WARNING"):
        limits = _first_paragraph(intro)
    if not limits:
        limits = ("The card states no limits of its own: it was trained and tested only on the data above, "
                  "so treat any other kind of image as untested. Research software, not a medical device.")
    return ModelCard(
        name=title or name,
        summary=_first_paragraph(intro),
        architecture=_first_paragraph(sections.get("Network", "")),
        data=_drop_images_and_code(sections.get("Data", "")),
        tests=tests,
        limits=limits,
    )


def _metric_table(metrics: dict[str, Any]) -> str:
    """The header's test metrics as a Markdown table of model vs bicubic (and any other baselines)."""
    test = metrics.get("test") or {}
    if "psnr" not in test:
        return ""
    rows = ["| method | PSNR (dB) | SSIM |", "|---|---|---|"]
    for prefix in ("bicubic", "lanczos", "published"):
        if f"{prefix}_psnr" in test:
            rows.append(f"| {prefix} | {test[f'{prefix}_psnr']:.2f} | {test.get(f'{prefix}_ssim', float('nan')):.4f} |")
    rows.append(f"| **this model** | **{test['psnr']:.2f}** | **{test.get('ssim', float('nan')):.4f}** |")
    return "\n".join(rows)


def card_from_header(meta: dict[str, Any], name: str) -> ModelCard:
    """A card for a checkpoint without a Markdown card: what its own header records."""
    arch_args = ", ".join(f"{k}={v}" for k, v in (meta.get("arch_args") or {}).items())
    config = (meta.get("training") or {}).get("config") or {}
    data = []
    for key, what in (("manifest", "manifest"), ("train_split", "split"), ("degradation", "LR degradation"),
                      ("patch_size", "patch size")):
        if key in config:
            data.append(f"{what}: `{config[key]}`")
    training = meta.get("training") or {}
    if "epoch" in training:
        data.append(f"epoch {training['epoch']}, step {training.get('step', '?')}")
    metrics = meta.get("metrics") or {}
    tests = {}
    table = _metric_table(metrics)
    if table:
        tests["Test split (from the checkpoint header)"] = table
    elif "val_psnr" in metrics:
        tests["Validation (from the checkpoint header)"] = (
            f"val PSNR {metrics['val_psnr']:.2f} dB (bicubic {metrics.get('bicubic_psnr', float('nan')):.2f} dB)"
        )
    return ModelCard(
        name=str(meta.get("name") or name),
        summary="A checkpoint from the models folder: no model card, so this is what its header records.",
        architecture=f"`{meta.get('arch', 'unknown')}`" + (f" ({arch_args})" if arch_args else ""),
        data="; ".join(data) or "not recorded in the checkpoint",
        tests=tests,
        limits="Unknown: no model card. Check what it was trained on before trusting its output.",
        source="header",
    )


def model_card(ref: str, meta: dict[str, Any] | None = None) -> ModelCard:
    """The card of a bundled model by name (its Markdown), else of a checkpoint (its header ``meta``)."""
    for bundled in list_bundled_models():
        if bundled["name"] == ref and bundled["card"] is not None:
            return card_from_markdown(Path(bundled["card"]).read_text(encoding="utf-8"), ref)
    return card_from_header(dict(meta or {}), Path(ref).name)
