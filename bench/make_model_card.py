"""Bundle a trained run as a medsr model: weights with their test scores in the header, and a model card.

Every number in the card comes from files this script is given: the run's ``metrics.csv`` and ``config.yaml``,
the manifest, and the JSON summaries that ``medsr evaluate --json`` wrote for the test split under each
degradation (the model with its bicubic/Lanczos baselines; optionally the published peer checkpoint). Usage:

    python bench/make_model_card.py NAME RUN_DIR --manifest M.csv --eval LABEL=JSON [--eval LABEL=JSON]...
        [--peer LABEL=JSON]... --description TEXT --data TEXT [--not-for TEXT]... [--image PATH CAPTION]...
        [--checkpoint FILE] [--earlier-curve CSV] [--earlier-run DIR]... [--command "..."]... [--note TEXT]...
        [--io TEXT] [--baseline-name TEXT] [--scoring TEXT] [--section FILE]...

``--io`` replaces the network's input/output sentence, ``--baseline-name`` the name of the "bicubic" column (for
CT: the sparse-view FBP, which the protocol's interpolation only resizes to itself), ``--scoring`` the scoring
paragraph, and each ``--section`` (a markdown file a bench script wrote) is added after the test tables.

The first ``--eval`` is the model's headline protocol (``medsr models`` shows it). ``--earlier-run`` names runs
that RUN_DIR continued from, in order: their curves come first, and steps and minutes count from the first start.
The whole curve is also written to ``docs/results/curves/NAME.csv``; a later version that continues from this one
passes that file as ``--earlier-curve`` (runs/ does not outlive a session, the curve file does).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
from pathlib import Path

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from medsr.atomic import atomic_path
from medsr.data.manifest import read_manifest, source_summary

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "medsr" / "weights"
CURVES = Path(__file__).resolve().parents[1] / "docs" / "results" / "curves"
CURVE_COLUMNS = ("run", "epoch", "step", "minutes", "loss_g", "val_psnr", "val_ssim", "bicubic_psnr", "val_images")
MEAN = "mean of sources"


def _labelled(items: list[str]) -> dict[str, dict]:
    """``["LABEL=JSON", ...]`` -> ``{label: evaluate JSON}``."""
    out = {}
    for item in items:
        label, _, path = item.partition("=")
        out[label] = json.loads(Path(path).read_text())
    return out


def _curve(run_dirs: list[Path], earlier: Path | None = None) -> list[dict[str, str | float | int]]:
    """The runs' ``metrics.csv`` rows in order, with ``run``, and ``step`` and ``minutes`` counted across runs,
    after the rows of an earlier version's curve file (already counted from its first start). Rows of that file
    from these same runs are left out, so bundling again from the file it wrote gives the same curve."""
    rows: list[dict[str, str | float | int]] = []
    if earlier is not None:
        names = {run_dir.name for run_dir in run_dirs}
        with earlier.open() as handle:
            rows = [row for row in csv.DictReader(handle) if row["run"] not in names]
    step_offset, minute_offset = (int(rows[-1]["step"]), float(rows[-1]["minutes"])) if rows else (0, 0.0)
    for run_dir in run_dirs:
        with (run_dir / "metrics.csv").open() as handle:
            run_rows = list(csv.DictReader(handle))
        val_images = _val_images(run_dir)
        for row in run_rows:
            rows.append({**row, "run": run_dir.name, "val_images": val_images, "step": step_offset + int(row["step"]),
                         "minutes": minute_offset + float(row["minutes_total"])})
        if run_rows:
            step_offset, minute_offset = int(rows[-1]["step"]), float(rows[-1]["minutes"])
    return rows


def _val_images(run_dir: Path) -> str:
    """What a run validated on: centre crops of its val_max_size, or whole images."""
    size = yaml.safe_load((run_dir / "config.yaml").read_text()).get("val_max_size")
    return f"{size} px crops" if size and size < 2000 else "whole"


def _model_key(methods: dict) -> str:
    return next(key for key in methods if key not in ("bicubic", "lanczos", "nearest"))


def _scores(evaluation: dict, peer: dict | None) -> dict[str, dict[str, dict[str, float]]]:
    """``{source or MEAN or "all images": {method: {psnr, ssim, images}}}`` with methods model/bicubic/lanczos/peer."""
    groups = dict(evaluation.get("sources") or {})
    groups["all images"] = evaluation["methods"]
    peer_groups = {**(peer.get("sources") or {}), "all images": peer["methods"]} if peer else {}
    out = {}
    for group, methods in groups.items():
        row = {"model": methods[_model_key(methods)]}
        row.update({m: methods[m] for m in ("bicubic", "lanczos") if m in methods})
        if group in peer_groups:
            row["published"] = peer_groups[group][_model_key(peer_groups[group])]
        out[group] = {m: {k: float(v[k]) for k in ("psnr", "ssim", "images")} for m, v in row.items()}
    return out


def _table(name: str, scores: dict[str, dict[str, dict[str, float]]], baseline: str = "bicubic") -> list[str]:
    columns = [c for c in ("bicubic", "lanczos", "published", "model") if c in next(iter(scores.values()))]
    if baseline != "bicubic":  # the interpolations only resize the input to itself: one column for it
        columns = [c for c in columns if c != "lanczos"]
    titles = {"bicubic": baseline, "lanczos": "Lanczos", "published": "published Swift-SRGAN",
              "model": f"**{name}**"}
    lines = ["| source | images | " + " | ".join(titles[c] for c in columns) + f" | model - {baseline} |",
             "|---|---|" + "---|" * (len(columns) + 1)]
    for group, row in scores.items():
        cells = [f"{row[c]['psnr']:.2f} / {row[c]['ssim']:.4f}" for c in columns]
        gain = row["model"]["psnr"] - row["bicubic"]["psnr"]
        label = f"**{group}**" if group == MEAN else group
        lines.append(f"| {label} | {int(row['model']['images'])} | " + " | ".join(cells) + f" | {gain:+.2f} dB |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--eval", action="append", required=True, help="LABEL=JSON from medsr evaluate --json")
    parser.add_argument("--peer", action="append", default=[], help="LABEL=JSON of the published checkpoint")
    parser.add_argument("--checkpoint", type=Path, help="default: RUN_DIR/checkpoints/best.safetensors")
    parser.add_argument("--description", required=True)
    parser.add_argument("--data", required=True, help="the data section's text")
    parser.add_argument("--not-for", action="append", default=[])
    parser.add_argument("--image", nargs=2, action="append", default=[], metavar=("PATH", "CAPTION"))
    parser.add_argument("--earlier-curve", type=Path, help="docs/results/curves/NAME.csv of the version continued")
    parser.add_argument("--earlier-run", action="append", type=Path, default=[])
    parser.add_argument("--command", action="append", default=[], help="training and scoring commands, in order")
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--io", default="Input: one grayscale channel in [0, 1] (the image's own intensity range); "
                        "output 4x larger.")
    parser.add_argument("--baseline-name", default="bicubic")
    parser.add_argument("--scoring", default=(
        "Scored per image with medsr's protocol (`medsr.protocol`: 8-bit scale, border 4, outputs rounded to 8 "
        "bits, random degradations seeded by each file's path), averaged per source; the mean of sources weighs "
        "each hospital alike."))
    parser.add_argument("--section", action="append", type=Path, default=[])
    args = parser.parse_args()

    checkpoint = args.checkpoint or args.run_dir / "checkpoints" / "best.safetensors"
    with safe_open(str(checkpoint), framework="pt") as handle:
        header = json.loads(handle.metadata()["medsr"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    evals, peers = _labelled(args.eval), _labelled(args.peer)
    scores = {label: _scores(data, peers.get(label)) for label, data in evals.items()}
    headline_label = next(iter(scores))
    headline = scores[headline_label][MEAN if MEAN in scores[headline_label] else "all images"]
    header["name"] = args.name
    header["metrics"] = {
        **header.get("metrics", {}),
        "test": {"protocol": headline_label, "psnr": headline["model"]["psnr"], "ssim": headline["model"]["ssim"],
                 "bicubic_psnr": headline["bicubic"]["psnr"], "bicubic_ssim": headline["bicubic"]["ssim"],
                 "by_degradation": scores},
    }
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    with atomic_path(WEIGHTS / f"{args.name}.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"medsr": json.dumps(header)})

    rows = read_manifest(args.manifest)
    counts = source_summary(rows)
    curve = _curve([*args.earlier_run, args.run_dir], args.earlier_curve)
    with atomic_path(CURVES / f"{args.name}.csv") as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(curve)
    config = yaml.safe_load((args.run_dir / "config.yaml").read_text())
    minutes = float(curve[-1]["minutes"])
    parameters = sum(t.numel() for k, t in tensors.items() if "running" not in k and "num_batches" not in k)
    lines = [
        f"# {args.name}", "", args.description, "",
        "## Network", "",
        f"`{header['arch']}` generator, {header.get('arch_args')}: {parameters:,} parameters"
        + (" in its training form (collapsed for inference into plain 3x3 convolutions). "
           if header["arch"] == "plainrep" else " (BatchNorm folded into the convolutions for inference). ")
        + args.io, "",
        "## Data", "", args.data, "",
        "| source | train (patients / images) | val | test |", "|---|---|---|---|",
        *[f"| {source} | " + " | ".join(f"{p} / {i}" for p, i in split.values()) + " |"
          for source, split in counts.items()], "",
        "The val and test patients were never trained on; the bundled checkpoint was chosen by validation PSNR, "
        "and the test split was scored once, for this card.", "",
    ]
    for label, table in scores.items():
        lines += [f"## Test split, LR by {label} (PSNR dB / SSIM)", "",
                  *_table(args.name, table, args.baseline_name), ""]
    lines += [args.scoring, ""]
    for section in args.section:
        lines += [section.read_text().strip(), ""]
    for path, caption in args.image:
        lines += [f"![{caption}]({path})", "", caption, ""]
    lines += [
        "## Training", "",
        f"CPU only ({platform.processor() or platform.machine()}, 2 cores shared with other training runs and "
        f"work, PyTorch {torch.__version__}, {config.get('threads') or 'default'} thread(s) per run). "
        f"{minutes:.0f} minutes (validation included) for {curve[-1]['step']} steps. The bundled weights are "
        f"`{checkpoint.name}` of `{args.run_dir.name}`: the EMA generator after epoch "
        f"{header.get('training', {}).get('epoch')}.", "",
        "```bash", *args.command, "```", "",
        f"Config (`config.yaml` of `{args.run_dir.name}`):", "",
        "```yaml", yaml.safe_dump(config, sort_keys=False).strip(), "```", "",
        "Validation curve (val split, EMA weights, scored by the same protocol on the images or centre crops "
        "the last column names; from `metrics.csv`, minutes of CPU time from the start):", "",
        "| run | epoch | step | minutes | train loss | val PSNR | val SSIM | bicubic PSNR | val images |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {r['run']} | {r['epoch']} | {r['step']} | {float(r['minutes']):.1f} | {float(r['loss_g']):.5f} | "
          f"{float(r['val_psnr']):.3f} | {float(r['val_ssim']):.4f} | {float(r['bicubic_psnr']):.3f} | "
          f"{r['val_images']} |"
          for r in curve],
    ]
    if args.not_for:
        lines += ["", "## What it is not for", "", *[f"- {text}" for text in args.not_for]]
    if args.note:
        lines += ["", "## Notes", "", *[f"- {note}" for note in args.note]]
    with atomic_path(WEIGHTS / f"{args.name}.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"wrote {WEIGHTS / args.name}.safetensors and .md: {headline_label} mean of sources "
          f"{headline['model']['psnr']:.3f} dB (bicubic {headline['bicubic']['psnr']:.3f})")


if __name__ == "__main__":
    main()
