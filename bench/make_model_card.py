"""Bundle a trained run as a medsr model: weights with their test scores in the header, and a model card.

Every number in the card comes from files this script is given: the run's ``metrics.csv`` and
``config.yaml``, and the JSON summaries that ``medsr evaluate --json`` wrote for the test split (the model
with its bicubic/Lanczos baselines, and the published peer checkpoint). Usage:

    python bench/make_model_card.py NAME RUN_DIR EVAL_JSON PEER_JSON --description TEXT [--checkpoint FILE]
        [--earlier-run DIR]... [--command "..."] [--note TEXT]...

``--earlier-run`` names runs that RUN_DIR continued from (``--init-from``), in order: their curves come first
in the card's table, and steps and minutes are counted from the first run's start.
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

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "medsr" / "weights"


def _summary(path: Path) -> tuple[dict[str, dict], dict]:
    """Per-method means and the whole summary from ``medsr evaluate --json``."""
    data = json.loads(path.read_text())
    return data["methods"], data


def _curve(run_dirs: list[Path]) -> list[dict[str, str | float | int]]:
    """The runs' ``metrics.csv`` rows in order, with ``run``, and ``step`` and ``minutes`` counted across runs."""
    rows: list[dict[str, str | float | int]] = []
    step_offset, minute_offset = 0, 0.0
    for run_dir in run_dirs:
        with (run_dir / "metrics.csv").open() as handle:
            run_rows = list(csv.DictReader(handle))
        for row in run_rows:
            rows.append({**row, "run": run_dir.name, "step": step_offset + int(row["step"]),
                         "minutes": minute_offset + float(row["minutes_total"])})
        if run_rows:
            step_offset, minute_offset = int(rows[-1]["step"]), float(rows[-1]["minutes"])
    return rows


def _split_counts(manifest: Path) -> dict[str, tuple[int, int]]:
    """(patients, images) per split of a manifest."""
    with manifest.open() as handle:
        rows = list(csv.DictReader(handle))
    return {split: (len({r["patient_id"] for r in rows if r["split"] == split}),
                    sum(r["split"] == split for r in rows)) for split in ("train", "val", "test")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("eval_json", type=Path)
    parser.add_argument("peer_json", type=Path)
    parser.add_argument("--checkpoint", type=Path, help="default: RUN_DIR/checkpoints/best.safetensors")
    parser.add_argument("--manifest", type=Path, default=Path("runs/xray-manifest.csv"))
    parser.add_argument("--description", required=True)
    parser.add_argument("--earlier-run", action="append", type=Path, default=[],
                        help="runs that RUN_DIR continued from, first one first")
    parser.add_argument("--command", action="append", default=[], help="training commands, in order")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()

    checkpoint = args.checkpoint or args.run_dir / "checkpoints" / "best.safetensors"
    with safe_open(str(checkpoint), framework="pt") as handle:
        header = json.loads(handle.metadata()["medsr"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    methods, evaluation = _summary(args.eval_json)
    peers, peer_eval = _summary(args.peer_json)
    model_row = next(row for key, row in methods.items() if key not in ("bicubic", "lanczos"))
    peer_row = next(iter(peers.values()))
    curve = _curve([*args.earlier_run, args.run_dir])
    counts = _split_counts(args.manifest)
    config = yaml.safe_load((args.run_dir / "config.yaml").read_text())

    test = {"psnr": model_row["psnr"], "ssim": model_row["ssim"], "images": model_row["images"],
            "bicubic_psnr": methods["bicubic"]["psnr"], "bicubic_ssim": methods["bicubic"]["ssim"],
            "lanczos_psnr": methods["lanczos"]["psnr"], "lanczos_ssim": methods["lanczos"]["ssim"],
            "published_psnr": peer_row["psnr"], "published_ssim": peer_row["ssim"]}
    header["name"] = args.name
    header.setdefault("metrics", {})["test"] = test
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    with atomic_path(WEIGHTS / f"{args.name}.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"medsr": json.dumps(header)})

    minutes = float(curve[-1]["minutes"])
    best_epoch = header.get("training", {}).get("epoch")
    lines = [
        f"# {args.name}", "", args.description, "",
        "## Network", "",
        f"`{header['arch']}` generator, {header.get('arch_args')}, "
        f"{sum(t.numel() for k, t in tensors.items() if 'running' not in k and 'num_batches' not in k):,} "
        "parameters. Input: one grayscale channel in [0, 1] (the image's own intensity range); output 4x larger.",
        "",
        "## Data", "",
        "Hannover Medical School COVID-19 chest radiographs (CC BY 3.0, DOI 10.6084/m9.figshare.12275009; Winther et "
        "al.; Cohen et al., arXiv 2006.11988), from `../shared/data/chest-xray`: 159 PNGs 640 px wide and 92 JPEGs "
        "2000x2000 of the same 46 patients. Split by patient with `medsr prepare` (seed 0): "
        + ", ".join(f"{split} {p} patients ({n} images)" for split, (p, n) in counts.items())
        + ". LR inputs: Pillow bicubic x4 (the default `bicubic` degradation). The val and test patients were never "
        "trained on.", "",
        f"## Test split ({counts['test'][0]} patients, {counts['test'][1]} images)", "",
        "| method | PSNR (dB) | SSIM |", "|---|---|---|",
        f"| bicubic | {test['bicubic_psnr']:.3f} | {test['bicubic_ssim']:.4f} |",
        f"| Lanczos | {test['lanczos_psnr']:.3f} | {test['lanczos_ssim']:.4f} |",
        f"| published Swift-SRGAN (`../shared/peers`, NIH-trained, 3-channel) | {test['published_psnr']:.3f} | "
        f"{test['published_ssim']:.4f} |",
        f"| **{args.name}** | **{test['psnr']:.3f}** | **{test['ssim']:.4f}** |", "",
        "Scored with medsr's protocol (per image on the 8-bit scale, border 4, outputs rounded to 8 bits), by:", "",
        "```bash",
        f"medsr evaluate --model {checkpoint} --manifest {args.manifest} --split test --json {args.eval_json}",
        "medsr evaluate --model ../shared/peers/published-swift-srgan-xray-4x.pth.tar "
        f"--manifest {args.manifest} --split test --json {args.peer_json}",
        "```", "",
        "## Training", "",
        f"Hardware: CPU only ({platform.processor() or platform.machine()}, 2 cores shared with other work, "
        f"PyTorch {torch.__version__}, {config.get('threads') or 'default'} thread(s)). "
        f"Training time: {minutes:.0f} minutes (validation included) for {curve[-1]['step']} steps"
        + (f", in {len(args.earlier_run) + 1} runs, each starting from the previous one's weights. "
           if args.earlier_run else ". ")
        + f"The bundled weights are `{checkpoint.name}` of `{args.run_dir.name}`: the EMA generator after epoch "
        f"{best_epoch} of that run.", "",
        "```bash", *args.command, "```", "",
        f"Config (`config.yaml` of `{args.run_dir.name}`):", "",
        "```yaml", yaml.safe_dump(config, sort_keys=False).strip(), "```", "",
        f"Validation curve ({counts['val'][1]} val images, centre crops of at most 512x512, EMA weights; from each "
        "run's `metrics.csv`; steps and minutes count from the start of the first run):", "",
        "| run | epoch | step | minutes | train loss | val PSNR | val SSIM | bicubic PSNR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in curve:
        lines.append(f"| {row['run']} | {row['epoch']} | {row['step']} | {float(row['minutes']):.1f} | "
                     f"{float(row['loss_g']):.5f} | {float(row['val_psnr']):.3f} | {float(row['val_ssim']):.4f} | "
                     f"{float(row['bicubic_psnr']):.3f} |")
    if args.note:
        lines += ["", "## Notes", "", *[f"- {note}" for note in args.note]]
    with atomic_path(WEIGHTS / f"{args.name}.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"wrote {WEIGHTS / args.name}.safetensors and .md: test PSNR {test['psnr']:.3f} dB "
          f"(bicubic {test['bicubic_psnr']:.3f}, published {test['published_psnr']:.3f})")


if __name__ == "__main__":
    main()
