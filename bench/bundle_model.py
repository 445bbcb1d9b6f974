"""Bundle a trained run as a medsr model: its weights, with their test scores, and its card brought up to date.

Every number comes from files this script is given: the run's ``metrics.csv`` and ``config.yaml`` and the JSON
summaries that ``medsr evaluate --json`` wrote for the test split under each degradation (the model with its
bicubic/Lanczos baselines; optionally the published peer checkpoint). The card
(``src/medsr/weights/NAME.yaml``) must exist (for a new model, start from a copy of another): this script
updates what is measured (``sha256``, ``scores``, ``training``: minutes, steps, commands, config and
validation curve) and keeps what people wrote (summary, data, limits, notes, history); then it renders
``docs/models/NAME.md``. The whole validation curve is kept in ``docs/results/NAME/curve.csv``; a version that
continues from the previous one extends it (``--earlier-run`` names runs between the two). Usage:

    python bench/bundle_model.py NAME RUN_DIR --eval [LABEL=]JSON [--eval ...] [--peer [LABEL=]JSON]...
        [--checkpoint FILE] [--earlier-run DIR]... [--command "..."]...

The first ``--eval`` is the headline (``medsr models`` shows it).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import platform
from pathlib import Path

import _bench
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from medsr.atomic import atomic_path
from medsr.models.cards import MEAN, read_card, render_markdown, sha256_of, write_card

WEIGHTS = _bench.ROOT / "src" / "medsr" / "weights"
RESULTS = _bench.ROOT / "docs" / "results"
CURVE_COLUMNS = ("run", "epoch", "step", "minutes", "loss_g", "val_psnr", "val_ssim", "bicubic_psnr", "val_images")
#: the card headings of the degradations the bundled models are scored under
LABELS = {
    "bicubic": "clean bicubic",
    "box-noise": "box-noise (4x4 detector average + 2 grey levels of noise)",
    "ultrasound": "ultrasound (bicubic along x, 4x fewer scan lines)",
    "ct-sparse-view": "ct-sparse-view (FBP of every 4th of 180 views)",
}


def _labelled(items: list[str]) -> dict[str, dict]:
    """``["[LABEL=]JSON", ...]`` -> ``{label: evaluate JSON}``; the label defaults to the JSON's degradation's."""
    out = {}
    for item in items:
        label, _, path = item.rpartition("=")
        data = json.loads(Path(path).read_text())
        out[label or LABELS.get(data.get("degradation"), str(data.get("degradation")))] = data
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


def _training_text(args, header: dict, curve: list[dict], config: dict, checkpoint: Path) -> str:
    minutes = float(curve[-1]["minutes"])
    commands = [f"medsr train --recipe {args.name}   # configs/recipes/{args.name}/: the manifest, then each step",
                *args.command]
    lines = [
        f"CPU only ({platform.processor() or platform.machine()}, 2 cores shared with other training runs and "
        f"work, PyTorch {torch.__version__}, {config.get('threads') or 'default'} thread(s) per run). "
        f"{minutes:.0f} minutes (validation included) for {curve[-1]['step']} steps. The bundled weights are "
        f"`{checkpoint.name}` of `{args.run_dir.name}`: the EMA generator after epoch "
        f"{header.get('training', {}).get('epoch')}.", "",
        "```bash", *commands, "```", "",
        f"Config (`config.yaml` of `{args.run_dir.name}`):", "",
        "```yaml", yaml.safe_dump(config, sort_keys=False).strip(), "```", "",
        "Validation curve (val split, EMA weights, scored by the same protocol on the images or centre crops "
        "the last column names; from `metrics.csv`, minutes of CPU time from the start):", "",
        "| run | epoch | step | minutes | train loss | val PSNR | val SSIM | bicubic PSNR | val images |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {r['run']} | {r['epoch']} | {r['step']} | {float(r['minutes']):.1f} | {float(r['loss_g']):.5f} | "
          f"{float(r['val_psnr']):.3f} | {float(r['val_ssim']):.4f} | {float(r['bicubic_psnr']):.3f} | "
          f"{r['val_images']} |" for r in curve],
    ]
    return "\n".join(lines)


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("name")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--eval", action="append", required=True, help="[LABEL=]JSON from medsr evaluate --json")
    parser.add_argument("--peer", action="append", default=[], help="[LABEL=]JSON of the published checkpoint")
    parser.add_argument("--checkpoint", type=Path, help="default: RUN_DIR/checkpoints/best.safetensors")
    parser.add_argument("--earlier-run", action="append", type=Path, default=[])
    parser.add_argument("--command", action="append", default=[], help="scoring commands, after the recipe")
    args = _bench.parse(parser)

    card_path = WEIGHTS / f"{args.name}.yaml"
    card = read_card(card_path)
    checkpoint = args.checkpoint or args.run_dir / "checkpoints" / "best.safetensors"
    with safe_open(str(checkpoint), framework="pt") as handle:
        header = json.loads(handle.metadata()["medsr"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    evals, peers = _labelled(args.eval), _labelled(args.peer)
    scores = {label: _scores(data, peers.get(label)) for label, data in evals.items()}
    headline_label = next(iter(scores))
    headline = scores[headline_label][MEAN if MEAN in scores[headline_label] else "all images"]
    header["name"] = args.name
    test = {"protocol": headline_label, "psnr": headline["model"]["psnr"], "ssim": headline["model"]["ssim"],
            "bicubic_psnr": headline["bicubic"]["psnr"], "bicubic_ssim": headline["bicubic"]["ssim"],
            "by_degradation": scores}
    header["metrics"] = {**header.get("metrics", {}), "test": test}
    weights = WEIGHTS / f"{args.name}.safetensors"
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"medsr": json.dumps(header)})

    curve_file = RESULTS / args.name / "curve.csv"
    curve = _curve([*args.earlier_run, args.run_dir], curve_file if curve_file.is_file() else None)
    curve_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(curve_file) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(curve)
    config = yaml.safe_load((args.run_dir / "config.yaml").read_text())
    card = dataclasses.replace(card, sha256=sha256_of(weights), scores=json.loads(json.dumps(test)),
                               training=_training_text(args, header, curve, config, checkpoint))
    write_card(card, card_path)
    markdown = _bench.ROOT / "docs" / "models" / f"{args.name}.md"
    with atomic_path(markdown) as tmp:
        tmp.write_text(render_markdown(read_card(card_path)), encoding="utf-8")
    print(f"wrote {weights}, {card_path} and {markdown}: {headline_label} mean of sources "
          f"{headline['model']['psnr']:.3f} dB (bicubic {headline['bicubic']['psnr']:.3f})")


if __name__ == "__main__":
    main()
