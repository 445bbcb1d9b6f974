"""The ``medsr`` command: one thin function per command, each calling the Python API.

Errors meant for users (:class:`medsr.errors.MedsrError`) are printed as one line, without a traceback,
and the command exits with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from medsr import __version__
from medsr.errors import MedsrError

app = typer.Typer(
    name="medsr",
    help="Medical image super-resolution: SRResNet, SRGAN and Swift-SRGAN for X-ray, CT, ultrasound, endoscopy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"medsr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Medical image super-resolution."""


def report_failures(failures: list[tuple[str, str]]) -> None:
    """Print the files a batch command skipped, one line each, at the end of its output."""
    if not failures:
        return
    err_console.print(f"[bold red]{len(failures)} file(s) failed:[/]")
    for path, reason in failures:
        err_console.print(f"  {path}: {reason}", markup=False, highlight=False)


# --- commands (each helper module adds its own below; keep them thin) ---------------------------------------


@app.command()
def baseline(
    hr: Annotated[
        list[Path], typer.Argument(metavar="HR", help="HR images or folders (searched recursively).")
    ],
    scale: Annotated[int, typer.Option("--scale", "-s", min=1, help="Downscale/upscale factor.")] = 4,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method", "-m", show_default="bicubic", help="bicubic, lanczos or nearest; repeatable."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Per-image CSV (image,method,scale,psnr,ssim).")
    ] = None,
    border: Annotated[
        int | None,
        typer.Option("--border", min=0, show_default="scale", help="Pixels cropped from each edge."),
    ] = None,
) -> None:
    """Score interpolation baselines: bicubic-degrade each HR image, upscale back, report PSNR/SSIM."""
    from medsr import evaluate

    methods = list(dict.fromkeys(method or ["bicubic"]))
    for name in methods:
        if name not in evaluate.BASELINE_METHODS:
            choices = ", ".join(evaluate.BASELINE_METHODS)
            raise typer.BadParameter(f"{name!r}; choose from {choices}", param_hint="--method")
    paths = evaluate.iter_image_paths(hr)
    if not paths:
        where = ", ".join(map(str, hr))
        err_console.print(f"medsr: no images found in {where}", markup=False, highlight=False)
        raise typer.Exit(2)
    failures: list[tuple[str, str]] = []
    rows = evaluate.score_methods(
        evaluate.read_images(paths, failures),
        scale,
        lambda image: evaluate.interpolation_methods(methods, evaluate.resize_bit_depth(image)),
        border,
        failures=failures,
    )
    console.print(evaluate.summary_table(evaluate.summarize(rows), title=f"Baselines, x{scale}"))
    if out is not None:
        evaluate.write_csv(rows, out)
        console.print(f"wrote {len(rows)} rows to {out}", highlight=False)
    report_failures(failures)
    if failures:
        raise typer.Exit(1)


@app.command()
def train(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML file with every setting.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Manifest from `medsr prepare`.")] = None,
    model: Annotated[str | None, typer.Option(help="srresnet | srgan | swift-srgan.")] = None,
    scale: Annotated[int | None, typer.Option(help="Upscaling factor (2, 3, 4, 8).")] = None,
    stage: Annotated[str | None, typer.Option(help="pretrain | gan | both.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs of the (first) stage.")] = None,
    gan_epochs: Annotated[int | None, typer.Option(help="Epochs of the gan stage with --stage both.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Patches per step (per process).")] = None,
    patch_size: Annotated[int | None, typer.Option(help="HR patch side in pixels.")] = None,
    patches_per_image: Annotated[int | None, typer.Option(help="Patches drawn from each image per epoch.")] = None,
    lr: Annotated[float | None, typer.Option(help="Generator learning rate.")] = None,
    pixel_loss: Annotated[str | None, typer.Option(help="mse | l1.")] = None,
    global_skip: Annotated[
        bool | None, typer.Option("--global-skip/--no-global-skip", help="Learn a residual over bicubic.")
    ] = None,
    in_channels: Annotated[int | None, typer.Option(help="1 (grayscale) or 3.")] = None,
    degradation: Annotated[str | None, typer.Option(help="How LR inputs are made (default bicubic).")] = None,
    init_from: Annotated[str | None, typer.Option(help="Generator checkpoint to start from.")] = None,
    content_weights: Annotated[
        str | None, typer.Option(help="Local state dict of the content loss's feature network.")
    ] = None,
    num_workers: Annotated[int | None, typer.Option(help="DataLoader workers.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps in all.")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N.")] = None,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA.")] = None,
    sync_bn: Annotated[
        bool | None, typer.Option("--sync-bn/--no-sync-bn", help="SyncBatchNorm under torchrun.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    threads: Annotated[int | None, typer.Option(help="PyTorch CPU threads (default: all cores).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this folder where it stopped.")] = None,
) -> None:
    """Train a generator (pixel-loss pretraining, then adversarial fine-tuning); checkpoints every epoch."""
    from medsr.train.config import TrainConfig
    from medsr.train.trainer import train as run_training

    overrides = {
        "manifest": str(manifest) if manifest else None, "model": model, "scale": scale, "stage": stage,
        "epochs": epochs, "gan_epochs": gan_epochs, "batch_size": batch_size, "patch_size": patch_size,
        "patches_per_image": patches_per_image, "lr": lr, "pixel_loss": pixel_loss, "global_skip": global_skip,
        "in_channels": in_channels, "degradation": degradation, "init_from": init_from,
        "content_weights": content_weights, "num_workers": num_workers, "max_steps": max_steps, "device": device,
        "amp": amp, "sync_bn": sync_bn, "seed": seed, "threads": threads, "out": str(out) if out else None,
    }
    if resume is not None:
        extend = {k: overrides[k] for k in ("epochs", "gan_epochs", "max_steps", "threads", "num_workers", "device")
                  if overrides[k] is not None}
        run_dir = run_training(resume=resume, **extend)
    else:
        run_dir = run_training(TrainConfig.load(config, **overrides))
    console.print(f"run folder: {run_dir}")


@app.command()
def degrade(
    inputs: Annotated[list[Path], typer.Argument(metavar="HR...", help="HR images or folders (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the LR images (same names, formats).")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="bicubic, bicubic-blur-noise, ultrasound, ct-sparse-view, "
                          "ct-sinogram or endoscopy.")
    ] = "bicubic",
    scale: Annotated[
        int, typer.Option("--scale", "-s", min=1, help="Downscale factor (CT: keep every S-th view).")
    ] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the random models (per file, order-independent).")] = 0,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Model parameter key=value; repeatable.")
    ] = None,
) -> None:
    """Make LR images from HR ones with a modality degradation model, keeping name, format and bit depth."""
    import zlib

    import numpy as np

    from medsr import degrade as degradations
    from medsr.evaluate import iter_image_paths
    from medsr.io import read_image, write_image

    degradations.get_degradation(model)
    params = degradations.parse_params(model, param or [])
    failures: list[tuple[str, str]] = []
    written = 0
    for item in inputs:
        root = item if item.is_dir() else item.parent
        for path in iter_image_paths([item]):
            target = out / path.relative_to(root)
            rng = np.random.default_rng([seed, zlib.crc32(str(path.relative_to(root)).encode())])
            try:
                lr = degradations.degrade_image(read_image(path), model, scale, rng=rng, **params)
                target.parent.mkdir(parents=True, exist_ok=True)
                write_image(lr, target)
            except (MedsrError, ValueError, OSError) as exc:
                failures.append((str(path), getattr(exc, "reason", None) or str(exc)))
                continue
            written += 1
    console.print(f"wrote {written} {model} x{scale} image(s) to {out}", highlight=False)
    report_failures(failures)
    if failures:
        raise typer.Exit(1)


@app.command()
def prepare(
    roots: Annotated[list[Path], typer.Argument(help="Folders (searched recursively) or image files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Manifest CSV to write.")],
    val: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of patients for validation.")] = 0.1,
    test: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fraction of patients for testing.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the patient hash that picks the split.")] = 0,
    patients: Annotated[
        list[Path] | None,
        typer.Option("--patients", help="Metadata CSV naming each image's patient; repeatable."),
    ] = None,
    id_column: Annotated[
        str | None, typer.Option(help="Image id column of the --patients tables [default: detected].")
    ] = None,
    patient_column: Annotated[
        str | None, typer.Option(help="Patient column of the --patients tables [default: detected].")
    ] = None,
    min_size: Annotated[
        int, typer.Option(min=0, help="Skip images whose shorter side is below this (e.g. the HR patch).")
    ] = 0,
    headers_only: Annotated[
        bool, typer.Option("--headers-only", help="Read only file headers: fast, but pixels are not decoded.")
    ] = False,
) -> None:
    """Scan images into a manifest CSV with a train/val/test split by patient."""
    import os

    from rich.progress import Progress
    from rich.table import Table

    from medsr.data import manifest as mf

    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("reading images", total=None)
        rows, skipped = mf.build_manifest(
            roots,
            out,
            val=val,
            test=test,
            seed=seed,
            patients=patients or (),
            id_column=id_column,
            patient_column=patient_column,
            min_size=min_size,
            headers_only=headers_only,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if not rows and not skipped:
        where = ", ".join(map(str, roots))
        err_console.print(f"medsr: no images found in {where}", markup=False, highlight=False)
        raise typer.Exit(2)
    mf.write_manifest(rows, out)
    skipped_csv = mf.write_skipped(skipped, out)
    table = Table(title=f"split by patient, seed {seed}")
    for name in ("split", "patients", "images"):
        table.add_column(name, justify="left" if name == "split" else "right")
    summary = mf.split_summary(rows)
    for split, (n_patients, n_images) in summary.items():
        table.add_row(split, str(n_patients), str(n_images))
    table.add_row("all", str(len({r.patient_id for r in rows})), str(len(rows)), style="bold")
    console.print(table)
    console.print(f"wrote {len(rows)} image(s) to {out}", highlight=False, soft_wrap=True)
    if skipped:
        head = f"skipped: {len(skipped)} file(s), listed in {skipped_csv}"
        console.print(head, highlight=False, soft_wrap=True)
        for item in skipped[:20]:
            line = f"  {os.path.relpath(item.path)}: {item.reason}"
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        if len(skipped) > 20:
            console.print(f"  ... and {len(skipped) - 20} more", highlight=False)
    if any(item.unreadable for item in skipped):
        raise typer.Exit(1)


@app.command()
def download(
    dataset: Annotated[str, typer.Argument(help="nih-chestxray14 (112,120 chest X-rays, 42 GB).")],
    dest: Annotated[Path, typer.Argument(help="Folder for images/, metadata and the archives.")],
    parts: Annotated[
        str | None, typer.Option(help="Archives to fetch, e.g. 1-12, 3 or 1,4-6 [default: all].")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Mirror holding the same file names (images_01.tar.gz, ...).")
    ] = None,
    urls_file: Annotated[
        Path | None, typer.Option(help="Text file of links: '[NAME] URL [size=N] [sha256=HEX]' per line.")
    ] = None,
    keep_archives: Annotated[bool, typer.Option(help="Keep the archives after extraction.")] = False,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds without data before a retry.")] = 60.0,
    retries: Annotated[int, typer.Option(min=0, help="Retries per file after a network error.")] = 5,
) -> None:
    """Download a public dataset (resumable, verified) into DEST/images/; a re-run skips finished parts."""
    from medsr.data import download as dl

    source = dl.get_source(dataset, base_url=base_url, urls_file=urls_file)
    chosen = dl.parse_parts(parts, len(source.archives)) if parts else None
    report = dl.download_dataset(
        source, dest, chosen, keep_archives=keep_archives, timeout=timeout, retries=retries
    )
    console.print(
        f"{len(report.completed)} file(s) done now, {len(report.already_done)} already done; "
        f"images in {dest / 'images'}",
        highlight=False,
        soft_wrap=True,
    )
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    report_failures(report.failures)
    if report.failures:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point: run the Typer app, turning MedsrError into one line and exit 2."""
    try:
        app()
    except MedsrError as exc:
        err_console.print(f"medsr: {exc}", markup=False, highlight=False)
        sys.exit(2)


_ = Path  # used by the command signatures below
