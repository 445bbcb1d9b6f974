"""Model cards as data: one YAML file beside each bundled model's weights, read, checked and rendered here.

A card (``medsr/weights/<name>.yaml``) holds what a user must know before trusting a model: architecture, data
and licences, the recipe that trained it (``configs/recipes/<name>/``), its test-split scores, its limits,
its history, and the sha256 of its weights file. ``load_model`` and ``medsr models`` verify that digest, so a
damaged or replaced weights file is refused with one line instead of giving other numbers than its card.
The Markdown card (``docs/models/<name>.md``) and the web app's sidebar card are both rendered from this data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from medsr.errors import CheckpointError

MEAN = "mean of sources"


@dataclass(frozen=True)
class Licence:
    """One data source a model learned from, and the terms it is used under."""

    source: str
    licence: str


@dataclass(frozen=True)
class Card:
    """A bundled model's card. Text fields are Markdown; ``scores`` is the test-split summary.

    ``scores`` has ``protocol`` (the headline degradation), ``psnr``/``ssim``/``bicubic_psnr``/``bicubic_ssim``
    (the headline: mean of sources) and, for models scored per source, ``by_degradation``:
    ``{degradation label: {source | "mean of sources" | "all images": {method: {psnr, ssim, images}}}}`` with
    methods ``model``, ``bicubic``, ``lanczos`` and ``published`` (the published Swift-SRGAN checkpoint).
    """

    name: str
    weights: str
    sha256: str
    summary: str
    architecture: str
    data: str
    licences: tuple[Licence, ...]
    recipe: str
    scores: dict[str, Any]
    training: str
    baseline: str = "bicubic"  # the interpolation column's name (CT at scale 1: the sparse-view FBP itself)
    results: str = ""  # Markdown after the score tables: how they were scored, further results, figures
    limits: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    history: tuple[str, ...] = ()
    # low-contrast detectability against bicubic (medsr detectability; bench/detectability_report.py writes it):
    # text, protocol, command, auc rows {size, contrast, bicubic/model/difference: [value, low, high]},
    # band {source: {bicubic/model: [power ratio, correlation, first-octave power ratio, its correlation]}}
    small_findings: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    @property
    def weights_path(self) -> Path:
        """The weights file beside the card."""
        if self.path is None:
            raise ValueError(f"card {self.name} was not read from a file")
        return self.path.parent / self.weights

    def to_dict(self) -> dict[str, Any]:
        """The card as plain data, in field order (what :func:`write_card` writes)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "path" or (f.name == "small_findings" and not value):
                continue
            if f.name == "licences":
                value = [{"source": item.source, "licence": item.licence} for item in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


_REQUIRED = ("name", "weights", "sha256", "summary", "architecture", "data", "licences", "recipe", "scores",
             "training")


def card_from_dict(data: dict[str, Any], path: Path | None = None) -> Card:
    """A :class:`Card` from parsed YAML; ``ValueError`` naming what is missing or unknown."""
    known = {f.name for f in fields(Card)} - {"path"}
    missing = [key for key in _REQUIRED if key not in data]
    unknown = sorted(set(data) - known)
    if missing or unknown:
        raise ValueError("; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                                 unknown and f"unknown {', '.join(unknown)}"])))
    values = dict(data)
    values["licences"] = tuple(Licence(str(item["source"]), str(item["licence"])) for item in data["licences"])
    for key in ("limits", "notes", "history"):
        values[key] = tuple(str(item) for item in data.get(key) or ())
    return Card(**values, path=path)


def read_card(path: str | Path) -> Card:
    """Read a card file; a missing or malformed one raises CheckpointError naming it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a mapping")
        return card_from_dict(data, path)
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(path, f"unreadable model card ({exc})") from exc


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so a card reads (and diffs) as text."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value or len(value) > 100 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def write_card(card: Card, path: str | Path) -> Path:
    """Write ``card`` as YAML at ``path`` (atomically)."""
    from medsr.atomic import atomic_path

    path = Path(path)
    text = yaml.dump(card.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def sha256_of(path: str | Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(card: Card, weights: str | Path | None = None) -> Path:
    """The weights file of ``card``, after checking its sha256; CheckpointError when it differs."""
    path = Path(weights) if weights is not None else card.weights_path
    try:
        actual = sha256_of(path)
    except OSError as exc:
        raise CheckpointError(path, exc.strerror or str(exc)) from exc
    if actual != card.sha256:
        raise CheckpointError(path, f"sha256 {actual[:12]}... differs from its model card's {card.sha256[:12]}... "
                                    f"({card.path.name if card.path else card.name}): the weights file is damaged or "
                                    "was replaced; reinstall medsr")
    return path


# --- rendering ---------------------------------------------------------------------------------------------------


def score_table(card: Card, groups: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """One degradation's test scores as Markdown rows: a row per source, PSNR / SSIM per method, model - baseline."""
    first = next(iter(groups.values()))
    columns = [c for c in ("bicubic", "lanczos", "published", "model") if c in first]
    if card.baseline != "bicubic":  # the interpolations only resize the input to itself: one column for it
        columns = [c for c in columns if c != "lanczos"]
    titles = {"bicubic": card.baseline, "lanczos": "Lanczos", "published": "published Swift-SRGAN",
              "model": f"**{card.name}**"}
    lines = ["| source | images | " + " | ".join(titles[c] for c in columns) + f" | model - {card.baseline} |",
             "|---|---|" + "---|" * (len(columns) + 1)]
    for group, row in groups.items():
        cells = [f"{row[c]['psnr']:.2f} / {row[c]['ssim']:.4f}" for c in columns]
        gain = row["model"]["psnr"] - row["bicubic"]["psnr"]
        label = f"**{group}**" if group == MEAN else group
        lines.append(f"| {label} | {int(row['model']['images'])} | " + " | ".join(cells) + f" | {gain:+.2f} dB |")
    return lines


def score_tables(card: Card) -> dict[str, str]:
    """``{section heading: Markdown table}`` of the per-source test scores (empty for older, pooled cards)."""
    return {f"Test split, LR by {label} (PSNR dB / SSIM)": "\n".join(score_table(card, groups))
            for label, groups in (card.scores.get("by_degradation") or {}).items()}


def small_findings_lines(card: Card) -> list[str]:
    """The "Small findings" section's Markdown lines: the finding, the AUC table vs bicubic, invented detail."""
    found = card.small_findings
    reference = found.get("reference", "bicubic")  # chest cards: bicubic; CT: the sparse-view FBP input
    size_unit, contrast_unit = found.get("size_unit", "px"), found.get("contrast_unit", "fraction")
    lines = [str(found.get("text", "")).strip(), ""] if found.get("text") else []
    lines += [f"{found.get('observer', 'CHO')} AUC [95 % interval] of faint discs on {found.get('protocol', '')}; "
              f"the last column is the model's AUC minus {reference}'s with the interval of that difference "
              "(**bold** where the whole interval lies below zero):", "",
              f"| disc ({'HR px' if size_unit == 'px' else size_unit}) | contrast | {reference} | **{card.name}** | "
              f"model - {reference} |", "|---|---|---|---|---|"]
    for row in found.get("auc", []):
        (b, bl, bh) = row.get("reference", row.get("bicubic"))
        (m, ml, mh), (d, dl, dh) = row["model"], row["difference"]
        diff = f"{d:+.3f} [{dl:+.3f}, {dh:+.3f}]"
        contrast = (f"{100 * row['contrast']:g} %" if contrast_unit == "fraction"
                    else f"{row['contrast']:g} {contrast_unit}")
        lines.append(f"| {row['size']:g} | {contrast} | {b:.3f} [{bl:.2f}, {bh:.2f}] | "
                     f"{m:.3f} [{ml:.2f}, {mh:.2f}] | {f'**{diff}**' if dh < 0 else diff} |")
    if found.get("band"):
        lines += ["", "Detail above the LR Nyquist frequency in signal-absent images, all of it and its first octave "
                  "(where detail can still be restored): power relative to the truth's / correlation with the "
                  "truth (above 1: detail added; low correlation: not the truth's):", "",
                  "| source | bicubic | model | bicubic, first octave | model, first octave |", "|---|---|---|---|---|"]
        for source, row in found["band"].items():
            b, m = row["bicubic"], row["model"]
            lines.append(f"| {source} | {b[0]:.2f} / {b[1]:.2f} | {m[0]:.2f} / {m[1]:.2f} | {b[2]:.2f} / {b[3]:.2f} | "
                         f"{m[2]:.2f} / {m[3]:.2f} |")
    if found.get("command"):
        lines += ["", f"Made by: `{found['command']}` (see docs/detectability.md)."]
    return lines


def render_markdown(card: Card) -> str:
    """The card as a Markdown page (``docs/models/<name>.md``)."""
    lines = [f"# {card.name}", "", card.summary.strip(), "", "## Network", "", card.architecture.strip(), "",
             "## Data", "", card.data.strip(), "",
             "Licences: " + "; ".join(f"{item.source}: {item.licence}" for item in card.licences) + ".", ""]
    for heading, table in score_tables(card).items():
        lines += [f"## {heading}", "", table, ""]
    if card.results.strip():
        lines += [card.results.strip(), ""]
    if card.small_findings:
        lines += ["## Small findings", "", *small_findings_lines(card), ""]
    lines += ["## Training", "", card.training.strip(), ""]
    for heading, items in (("What it is not for", card.limits), ("Notes", card.notes), ("History", card.history)):
        if items:
            lines += [f"## {heading}", "", *[f"- {item}" for item in items], ""]
    lines += ["## Weights", "", f"`src/medsr/weights/{card.weights}`, sha256 `{card.sha256}` (checked when loaded).",
              ""]
    return "\n".join(lines)


def write_markdown_cards(out_dir: str | Path, weights_dir: str | Path | None = None) -> list[Path]:
    """Render every card in ``weights_dir`` (default: the bundled ones) to ``out_dir/<name>.md``."""
    from medsr.atomic import atomic_path

    folder = Path(weights_dir) if weights_dir is not None else Path(__file__).resolve().parents[1] / "weights"
    written = []
    for path in sorted(folder.glob("*.yaml")):
        card = read_card(path)
        target = Path(out_dir) / f"{card.name}.md"
        with atomic_path(target) as tmp:
            tmp.write_text(render_markdown(card), encoding="utf-8")
        written.append(target)
    return written


if __name__ == "__main__":  # python -m medsr.models.cards docs/models: refresh the Markdown cards
    import sys

    for written_path in write_markdown_cards(sys.argv[1] if len(sys.argv) > 1 else "docs/models"):
        print(f"wrote {written_path}")
