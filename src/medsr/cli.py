"""The ``medsr`` command: one thin function per command, each calling the Python API.

Errors meant for users (:class:`medsr.errors.MedsrError`) are printed as one line, without a traceback,
and the command exits with status 2.
"""

from __future__ import annotations

import os
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
        err_console.print(f"  {path}: {reason}", markup=False, highlight=False, soft_wrap=True)


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
    patch_candidates: Annotated[
        int | None, typer.Option(help="Keep the most detailed of this many random patch positions.")
    ] = None,
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
    from medsr.allocator import tune_allocator
    from medsr.train.config import TrainConfig
    from medsr.train.trainer import train as run_training

    tune_allocator()  # about 1.25x faster steps on CPU: activations reuse heap pages instead of fresh mmaps
    overrides = {
        "manifest": str(manifest) if manifest else None, "model": model, "scale": scale, "stage": stage,
        "epochs": epochs, "gan_epochs": gan_epochs, "batch_size": batch_size, "patch_size": patch_size,
        "patches_per_image": patches_per_image,
        "patch_candidates": patch_candidates, "lr": lr, "pixel_loss": pixel_loss, "global_skip": global_skip,
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
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="FOLDER_PATTERN=NAME: folders below a root that form one source; repeatable."),
    ] = None,
) -> None:
    """Scan images into a manifest CSV with a train/val/test split by patient and a source per image."""

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
            sources=mf.parse_source_rules(source or []),
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if not rows and not skipped:
        where = ", ".join(map(str, roots))
        err_console.print(f"medsr: no images found in {where}", markup=False, highlight=False)
        raise typer.Exit(2)
    mf.write_manifest(rows, out)
    skipped_csv = mf.write_skipped(skipped, out)
    table = Table(title=f"split by patient, seed {seed} (patients / images)")
    table.add_column("source")
    for split in mf.SPLITS:
        table.add_column(split, justify="right")
    for name, summary in mf.source_summary(rows).items():
        table.add_row(name or "-", *(f"{p} / {i}" for p, i in summary.values()))
    table.add_row("all", *(f"{p} / {i}" for p, i in mf.split_summary(rows).values()), style="bold")
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


@app.command()
def upscale(
    inputs: Annotated[
        list[str], typer.Argument(metavar="INPUT...", help="Images, folders (recursive) or glob patterns.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: same names, format and bit depth.")],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", show_default="swift-srresnet-xray-x4", help="Bundled name or checkpoint."),
    ] = None,
    tile: Annotated[int, typer.Option(min=8, help="Tile size in input pixels (bounds memory).")] = 512,
    overlap: Annotated[int, typer.Option(min=0, help="Context pixels each tile sees from its neighbours.")] = 32,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    backend: Annotated[str, typer.Option(help="torch | onnxruntime.")] = "torch",
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="png | tiff | dcm (default: the input's; JPEG -> png).")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Files run together (same-size images share a batch; helps on GPU).")
    ] = 1,
    precision: Annotated[
        str, typer.Option(help="fp32 | bf16 (bf16: faster on CPUs with AMX, errors of ~1e-3).")
    ] = "fp32",
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads (default: all cores).")] = None,
) -> None:
    """Super-resolve images with a model; DICOM in gives a derived DICOM out."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from medsr.allocator import tune_allocator
    from medsr.infer import model_name, resolve_model
    from medsr.infer.files import collect_sources, upscale_files

    tune_allocator()
    if threads:
        import torch

        torch.set_num_threads(threads)
    started = time.perf_counter()
    net = resolve_model(model, device)
    sources, failures = collect_sources(inputs)
    sy, sx = net.scale
    table = Table(title=f"medsr upscale: {model_name(net)}, x{sy}" + (f" (rows) x{sx} (columns)" if sy != sx else ""))
    table.add_column(f"file (in {out})", overflow="fold")
    for column in ("in size", "out size", "seconds"):
        table.add_column(column, justify="right")
    done = 0
    progress = Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err_console, transient=True,
    )
    with progress:
        task = progress.add_task("upscaling", total=len(sources))
        outcomes = upscale_files(
            sources, out, net, fmt=fmt, tile=tile, overlap=overlap, device=device, backend=backend,
            precision=precision, batch_size=batch_size,
        )
        for outcome in outcomes:
            progress.advance(task)
            if outcome.error is not None:
                failures.append((str(outcome.source), outcome.error))
                continue
            done += 1
            frames = f" x{outcome.frames}" if outcome.frames > 1 else ""
            (w, h), (ow, oh) = outcome.in_size, outcome.out_size
            name = outcome.target.relative_to(out) if outcome.target.is_relative_to(out) else outcome.target
            table.add_row(str(name), f"{w}x{h}{frames}", f"{ow}x{oh}", f"{outcome.seconds:.2f}")
    if done:
        console.print(table)
    console.print(
        f"upscaled {done} of {done + len(failures)} file(s) into {out} in {time.perf_counter() - started:.1f} s",
        highlight=False,
    )
    report_failures(failures)
    if failures:
        raise typer.Exit(1)


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="Bundled model name or checkpoint file.")],
    onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write.")],
    opset: Annotated[int, typer.Option(min=13, help="ONNX opset version.")] = 17,
) -> None:
    """Export a model to ONNX (dynamic batch/height/width, BatchNorm folded into the convolutions)."""
    from medsr.infer import export_onnx, load_cached_model

    net = load_cached_model(model, "cpu")
    path = export_onnx(net, onnx, opset=opset)
    sy, sx = net.scale
    console.print(
        f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, opset {opset}, x{sy}x{sx}, "
        f"{net.in_channels} channel(s), input 'lr' (N,C,h,w) in [0,1] -> output 'sr')",
        highlight=False,
    )


@app.command()
def models() -> None:
    """List the bundled models: name, architecture, scale, channels and test PSNR from their cards."""
    from rich.table import Table

    from medsr.models import list_bundled_models

    bundled = list_bundled_models()
    if not bundled:
        console.print("no bundled models")
        return
    table = Table(title="Bundled models")
    table.add_column("name", no_wrap=True)
    for column in ("arch", "scale", "channels", "test PSNR (bicubic)", "card"):
        table.add_column(column, overflow="fold")
    for entry in bundled:
        meta = entry["meta"]
        test = meta.get("metrics", {}).get("test", {})
        scores = f"{test['psnr']:.2f} ({test['bicubic_psnr']:.2f}) dB" if test else "-"
        skip = " +skip" if meta.get("arch_args", {}).get("global_skip") else ""
        sy, sx = meta["scale"]
        table.add_row(entry["name"], f"{meta.get('arch', '?')}{skip}", f"x{sy}" if sy == sx else f"{sy}x{sx}",
                      str(meta.get("in_channels", "?")), scores, entry["card"].name if entry["card"] else "-")
    console.print(table)


@app.command()
def evaluate(
    hr: Annotated[
        list[Path] | None, typer.Argument(metavar="[HR]...", help="HR images or folders (recursive).")
    ] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Bundled name or checkpoint file.")] = ...,
    manifest: Annotated[
        Path | None, typer.Option(help="Manifest from `medsr prepare` (instead of HR files).")
    ] = None,
    split: Annotated[str, typer.Option(help="Manifest split to score: train, val or test.")] = "test",
    scale: Annotated[
        int | None,
        typer.Option("--scale", "-s", min=1, show_default="the model's", help="Degradation scale."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Per-image CSV (image,method,scale,psnr,ssim,seconds)."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="JSON summary (means per method, settings).")
    ] = None,
    save_images: Annotated[
        Path | None, typer.Option(help="Keep every output as DIR/<method>/<name>.png (input's bit depth).")
    ] = None,
    border: Annotated[
        int | None, typer.Option(min=0, show_default="scale", help="Pixels cropped from each edge.")
    ] = None,
    baselines: Annotated[
        str, typer.Option(help="Comma-separated: bicubic, lanczos, nearest ('' for none).")
    ] = "bicubic,lanczos",
    degradation: Annotated[str, typer.Option(help="How LR inputs are made from the HR images.")] = "bicubic",
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Degradation parameter key=value; repeatable.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of random degradations (per file).")] = 0,
    max_size: Annotated[
        int | None, typer.Option(min=8, help="Centre-crop each HR image to at most this many pixels a side.")
    ] = None,
    tile: Annotated[int, typer.Option(min=8, help="Tile size in LR pixels (bounds memory).")] = 512,
    overlap: Annotated[int, typer.Option(min=0, help="Context pixels each tile sees from neighbours.")] = 32,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32 | bf16 (faster, approximate; measures its cost).")] = "fp32",
) -> None:
    """Score a model beside the bicubic/Lanczos baselines: PSNR, SSIM and seconds per image."""
    arguments = {key: (str(v) if isinstance(v, Path) else [str(p) for p in v] if isinstance(v, list) else v)
                 for key, v in locals().items()}
    from rich.progress import Progress

    from medsr import evaluate as ev
    from medsr.allocator import tune_allocator
    from medsr.degrade import get_degradation, parse_params

    tune_allocator()

    if bool(hr) == (manifest is not None):
        raise typer.BadParameter("give HR images or --manifest (with --split), not both", param_hint="HR")
    names = [name.strip() for name in baselines.split(",") if name.strip()]
    for name in names:
        if name not in ev.BASELINE_METHODS:
            choices = ", ".join(ev.BASELINE_METHODS)
            raise typer.BadParameter(f"{name!r}; choose from {choices}", param_hint="--baselines")
    get_degradation(degradation)
    params = parse_params(degradation, param or [])
    if manifest is not None:
        from medsr.data.manifest import read_manifest

        paths = [row.path for row in read_manifest(manifest, split=split)]
        where = f"the {split!r} split of {manifest}"
    else:
        paths = ev.iter_image_paths(hr)
        where = ", ".join(map(str, hr))
    if not paths:
        err_console.print(f"medsr: no images found in {where}", markup=False, highlight=False)
        raise typer.Exit(2)
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("evaluating", total=len(paths))
        result = ev.evaluate_model(
            model, paths, scale=scale, baselines=names, border=border, degradation=degradation,
            degradation_params=params, seed=seed, tile=tile, overlap=overlap, device=device,
            precision=precision, max_size=max_size, save_images=save_images,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    title = f"{result.model_name}: x{result.scale} {degradation}, border {result.border}"
    console.print(ev.summary_table(result.summary, title=title, seconds=True))
    if out is not None:
        ev.write_csv(result.rows, out, ev.EVALUATE_CSV_COLUMNS)
        console.print(f"wrote {len(result.rows)} rows to {out}", highlight=False, soft_wrap=True)
    if json_out is not None:
        ev.write_json(result.to_json(arguments), json_out)
        console.print(f"wrote the summary to {json_out}", highlight=False, soft_wrap=True)
    if save_images is not None:
        saved = f"saved {len(result.saved)} output image(s) in {save_images}"
        console.print(saved, highlight=False, soft_wrap=True)
    report_failures(result.failures)
    if result.failures:
        raise typer.Exit(1)


@app.command()
def demo(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to listen on (localhost by default).")] = "127.0.0.1",
    models_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of extra checkpoints to offer (default: $MEDSR_MODELS_DIR)."),
    ] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a web browser.")] = False,
) -> None:
    """Start the web app (Streamlit) on localhost: compare bicubic and a model on your own images."""
    import signal
    import subprocess
    import threading
    import webbrowser

    from medsr.app import APP_FILE
    from medsr.errors import ConfigError

    env = dict(os.environ)
    if models_dir is not None:
        if not models_dir.is_dir():
            raise ConfigError(f"--models-dir {models_dir}: no such folder")
        env["MEDSR_MODELS_DIR"] = str(models_dir.resolve())
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP_FILE),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.maxUploadSize", "200",
        "--server.fileWatcherType", "none", "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer",
    ]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    console.print(f"medsr demo: open {url} in a browser (Ctrl-C stops the server)", highlight=False)
    server = subprocess.Popen(command, env=env)
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())  # stopping medsr demo stops the server
    if not no_browser:
        threading.Timer(3.0, lambda: server.poll() is None and webbrowser.open(url)).start()
    try:
        code = server.wait()
    except KeyboardInterrupt:
        server.terminate()
        code = server.wait()
    if code not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise typer.Exit(code)


def main() -> None:
    """Console-script entry point: run the Typer app, turning MedsrError into one line and exit 2."""
    # Before torch loads OpenMP: idle worker threads sleep instead of spinning. Measured here with another job
    # holding one of the two cores, spinning made a forward 1.3x (256x256) to 5-12x (64x64) slower and a
    # training step about 3x slower; on an idle machine sleeping costs microseconds per layer.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        app()
    except MedsrError as exc:
        err_console.print(f"medsr: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


_ = Path  # used by the command signatures below
