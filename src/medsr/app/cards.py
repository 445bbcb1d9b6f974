"""Model cards for the web app's sidebar: what a model is, what it was trained on, how it scores, its limits.

A bundled model's card is rendered from its card data (``medsr/weights/<name>.yaml``, read by
:mod:`medsr.models.cards`); a checkpoint from the models folder has no card, so its JSON header (architecture,
training config, metrics) stands in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsr.models import list_bundled_models
from medsr.models.cards import Card, score_tables, small_findings_lines


@dataclass
class ModelCard:
    """What the sidebar shows about one model; each field is Markdown ("" when the source says nothing).

    ``tests`` holds the test-split tables (heading -> Markdown table), ``limits`` the card's "What it is not
    for" list or its warning.
    """

    name: str
    summary: str = ""
    architecture: str = ""
    data: str = ""
    tests: dict[str, str] = field(default_factory=dict)
    limits: str = ""
    small_findings: str = ""  # detectability of faint findings vs bicubic, invented detail (docs/detectability.md)
    source: str = "card"  # "card" (bundled card data) or "header" (a checkpoint's own metadata)


def _first_paragraph(text: str) -> str:
    return text.strip().split("\n\n", 1)[0].strip()


NO_LIMITS = ("The card states no limits of its own: it was trained and tested only on the data above, "
             "so treat any other kind of image as untested. Research software, not a medical device.")


def card_from_release(card: Card) -> ModelCard:
    """The sidebar's card of a bundled model, from its card data (see :class:`ModelCard`)."""
    pooled = f"Test split ({int(card.scores['images'])} images)" if "images" in card.scores else "Test split"
    tests = score_tables(card) or {pooled: _metric_table({"test": card.scores})}
    limits = "\n".join(f"- {item}" for item in card.limits)
    if not limits and card.summary.upper().startswith("WARNING"):
        limits = _first_paragraph(card.summary)
    licences = "\n".join(f"- {item.source}: {item.licence}" for item in card.licences)
    return ModelCard(
        name=card.name,
        summary=_first_paragraph(card.summary),
        architecture=_first_paragraph(card.architecture),
        data=f"{card.data.strip()}\n\nLicences:\n\n{licences}",
        tests=tests,
        limits=limits or NO_LIMITS,
        small_findings="\n".join(small_findings_lines(card)) if card.small_findings else "",
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
    """The card of a bundled model by name (its card data), else of a checkpoint (its header ``meta``)."""
    for bundled in list_bundled_models():
        if bundled["name"] == ref and bundled["card"] is not None:
            return card_from_release(bundled["card"])
    return card_from_header(dict(meta or {}), Path(ref).name)
