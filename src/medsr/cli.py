"""The ``medsr`` command: one thin function per command, each calling the Python API.

Errors meant for users (:class:`medsr.errors.MedsrError`) are printed as one line, without a traceback,
and the command exits with status 2.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from medsr import __version__, recipes, results, windowed
from medsr import degrade as degradations
from medsr import evaluate as ev
from medsr.allocator import tune_allocator
from medsr.app import APP_FILE
from medsr.app import server as app_server
from medsr.atomic import output_problem
from medsr.data import download as dl
from medsr.data import manifest as mf
from medsr.degrade.files import degrade_files
from medsr.errors import ConfigError, MedsrError, escape
from medsr.extras import EXTRAS, require
from medsr.infer import InferenceSettings, export_onnx, parse_memory
from medsr.infer.files import Outcome, upscale_files
from medsr.infer.jobs import JobReport, upscale_job
from medsr.infer.modality import modality_warnings, plan_models
from medsr.infer.ray_engine import import_ray
from medsr.infer.results import RESULTS_NAME
from medsr.io.find import Item, expand_inputs
from medsr.models import DEFAULT_MODEL, list_bundled_models, load_model, model_name
from medsr.models.cards import verify_weights
from medsr.protocol import BASELINE_METHODS, Protocol
from medsr.train.config import TrainConfig
from medsr.train.trainer import train as train_api

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
        err_console.print(f"  {escape(path)}: {escape(reason)}", markup=False, highlight=False, soft_wrap=True)


def _finish(failures: list[tuple[str, str]]) -> None:
    """End a batch command: list the skipped files, and exit 1 if there were any."""
    report_failures(failures)
    if failures:
        raise typer.Exit(1)


def check_outputs(files: dict[str, Path | None] | None = None, folders: dict[str, Path | None] | None = None) -> None:
    """Refuse, before any work, an output that exists as something else: ``files`` (option -> path) must be new
    paths or regular files, ``folders`` new paths or folders. ConfigError (exit 2) naming the option."""
    checks = [(option, path, False) for option, path in (files or {}).items()]
    checks += [(option, path, True) for option, path in (folders or {}).items()]
    for option, path, folder in checks:
        problem = None if path is None else output_problem(path, folder=folder)
        if problem:
            raise ConfigError(f"{option} {escape(path)}: {problem}; give a {'folder' if folder else 'file'} path")


def _items_or_exit(items: list[Item], where: list, failures: list[tuple[str, str]] = ()) -> list[Item]:
    """The items, or the end of the command: the inputs that failed (exit 1), else "no images found" (exit 2)."""
    if not items:
        _finish(list(failures))
        err_console.print(f"medsr: no images found in {', '.join(map(str, where))}", markup=False, highlight=False)
        raise typer.Exit(2)
    return items


def _baseline_names(names: list[str], hint: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    for name in names:
        if name not in BASELINE_METHODS:
            raise typer.BadParameter(f"{name!r}; choose from {', '.join(BASELINE_METHODS)}", param_hint=hint)
    return names


class _RateColumn(ProgressColumn):
    """Items per second over the last half minute (rich's own speed estimate)."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:.2f}/s" if task.speed else "")


@contextlib.contextmanager
def _progress(what: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A transient progress bar on stderr, with the rate and the time left; yields ``advance(n=1)``."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                   TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=err_console,
                   transient=True, speed_estimate_period=30)
    with bar:
        task = bar.add_task(what, total=total)
        advance = lambda n=1: bar.advance(task, n)  # noqa: E731
        advance.set_total = lambda n: bar.update(task, total=n)
        yield advance


def upscale_table(outcomes: list[Outcome], out: Path, model: torch.nn.Module) -> Table:
    """The table `medsr upscale` prints: file, sizes and seconds of each written output."""
    sy, sx = model.scale
    table = Table(title=f"medsr upscale: {model_name(model)}, x{sy}" + (f" (rows) x{sx} (columns)" if sy != sx else ""))
    table.add_column(f"file (in {out})", overflow="fold")
    maps = any(o.consistency_rms is not None for o in outcomes)
    for column in ("in size", "out size", "seconds") + (("consistency RMS (noise units)",) if maps else ()):
        table.add_column(column, justify="right")
    for o in outcomes:
        (w, h), (ow, oh) = o.in_size, o.out_size
        name = o.target.relative_to(out) if o.target.is_relative_to(out) else o.target
        frames = f" x{o.frames}" if o.frames > 1 else ""
        rms = (f"{o.consistency_rms:.2f}",) if maps else ()
        table.add_row(escape(str(name)), f"{w}x{h}{frames}", f"{ow}x{oh}", f"{o.seconds:.2f}", *rms)
    return table


def split_table(rows: list[mf.ManifestRow], seed: int) -> Table:
    """Patients / images per source and split: does every split hold patients of every source?"""
    table = Table(title=f"split by patient, seed {seed} (patients / images)")
    table.add_column("source")
    for split in mf.SPLITS:
        table.add_column(split, justify="right")
    for name, summary in mf.source_summary(rows).items():
        table.add_row(name or "-", *(f"{p} / {i}" for p, i in summary.values()))
    table.add_row("all", *(f"{p} / {i}" for p, i in mf.split_summary(rows).values()), style="bold")
    return table


# Inference options shared by upscale and evaluate: declared once, defaults from InferenceSettings.
_DEFAULTS = InferenceSettings()
ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", show_default=DEFAULT_MODEL, help="Bundled name or checkpoint.")]
TileOption = Annotated[int, typer.Option(min=8, help="Largest tile side in input pixels.")]


def _memory_option(value: str | int | None) -> int | None:
    try:
        return parse_memory(value)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


MaxMemoryOption = Annotated[int | None, typer.Option(
    parser=_memory_option, metavar="SIZE", show_default="1.5G",
    help="Memory for the model's activations, e.g. 1.5G or 800M ('none': no limit); tiles shrink to fit.")]
OverlapOption = Annotated[int, typer.Option(min=0, help=(
    "Pixels over which tiles blend; each tile is used from overlap/2 pixels of context on, or from the model's "
    "own need where more (51 for ct-sparse-view)."))]
BatchOption = Annotated[int, typer.Option(min=1, help="Tiles or same-size files run together (helps on GPU).")]
DeviceOption = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")]
PrecisionOption = Annotated[str, typer.Option(help="fp32 | bf16 (bf16: faster only on CPUs with AVX512-BF16 or AMX).")]
ColourOption = Annotated[str, typer.Option(
    help="luminance | per-channel: a grey model on colour runs on Y, chroma bicubic (one pass), or on R, G and B.")]

# --- commands (thin: each calls the Python API) ------------------------------------------------------------


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
    check_outputs({"--out": out})
    methods = _baseline_names(method or ["bicubic"], "--method")
    items, failures = expand_inputs(hr)
    items = _items_or_exit(items, hr, failures)
    rows = ev.score_baselines(items, Protocol(scale=scale, border=border), methods, failures)
    console.print(ev.summary_table(ev.summarize(rows), title=f"Baselines, x{scale}"))
    if out is not None:
        ev.write_csv(rows, out)
        console.print(f"wrote {len(rows)} rows to {out}", highlight=False)
    _finish(failures)


def _train(config: Path | None = None, resume: Path | None = None, recipe: str | None = None,
           **settings: object) -> None:
    """Train a generator (pixel-loss pretraining, then adversarial fine-tuning); checkpoints every epoch.

    Every option but --config, --resume and --recipe is a TrainConfig setting (medsr.train.config), declared
    there once. --recipe replays a bundled model's training (configs/recipes/NAME: manifest, then each step).
    """
    check_outputs(folders={"--out": Path(str(settings["out"])) if settings.get("out") else None})
    tune_allocator()  # about 1.25x faster steps on CPU: activations reuse heap pages instead of fresh mmaps
    overrides = {key: str(value) if isinstance(value, Path) else value for key, value in settings.items()}
    if recipe is not None:
        if config is not None or resume is not None or any(v is not None for v in overrides.values()):
            raise ConfigError("--recipe replays its own configs: give it no --config, --resume or settings")
        runs = recipes.run_recipe(recipes.load_recipe(recipe), log=lambda line: console.print(line, highlight=False))
        console.print(f"run folders: {', '.join(map(str, runs))}")
        return
    if resume is not None:
        run_dir = train_api(resume=resume, **overrides)
    else:
        run_dir = train_api(TrainConfig.load(config, **overrides))
    console.print(f"run folder: {run_dir}")


def _train_signature() -> inspect.Signature:
    """--config, --resume, then one option per TrainConfig setting declared with ``flag``."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("config", keyword, default=None, annotation=Annotated[
            Path | None, typer.Option("--config", "-c", help="YAML file with every setting.")]),
        inspect.Parameter("resume", keyword, default=None, annotation=Annotated[
            Path | None, typer.Option(help="Continue the run in this folder where it stopped.")]),
        inspect.Parameter("recipe", keyword, default=None, annotation=Annotated[
            str | None, typer.Option(help="Replay a bundled model's training: configs/recipes/NAME (or a folder).")]),
    ]
    for item in TrainConfig.cli_fields():
        kind = {"bool": bool, "int": int, "float": float}.get(str(item.type).split(" ")[0], str)
        names = [f"--{item.name.replace('_', '-')}"]
        if kind is bool:
            names = [f"{names[0]}/--no-{item.name.replace('_', '-')}"]
        if item.name == "out":
            names.append("-o")
        default = "" if item.default in (None, "") else f" (default {item.default})"
        option = typer.Option(*names, help=item.metadata["help"] + default, show_default=False)
        params.append(inspect.Parameter(item.name, keyword, default=None, annotation=Annotated[kind | None, option]))
    return inspect.Signature(params)


_train.__signature__ = _train_signature()  # type: ignore[attr-defined]
_train.__annotations__ = {p.name: p.annotation for p in _train.__signature__.parameters.values()}
app.command("train")(_train)


@app.command(help="Make LR images from HR ones with a modality degradation model, keeping name, format and "
             "bit depth.\n\nDegradation models (--model):\n\n" + degradations.registry_help())
def degrade(
    inputs: Annotated[list[Path], typer.Argument(metavar="HR...", help="HR images or folders (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the LR images (same names, formats).")],
    model: Annotated[
        str, typer.Option("--model", "-m", help=f"One of: {', '.join(degradations.REGISTRY)} (see above).")
    ] = "bicubic",
    scale: Annotated[
        int, typer.Option("--scale", "-s", min=1, help="Downscale factor (CT: keep every S-th view).")
    ] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the random models (per file, order-independent).")] = 0,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Model parameter key=value; repeatable.")
    ] = None,
) -> None:
    check_outputs(folders={"--out": out})
    params = degradations.parse_params(model, param or [])
    written, failures = degrade_files(inputs, out, model, scale, seed=seed, **params)
    console.print(f"wrote {len(written)} {model} x{scale} image(s) to {out}", highlight=False)
    _finish(failures)


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
    check_outputs({"--out": out, "the skipped-files list": mf.skipped_path(out)})
    with _progress("reading images", None) as advance:
        rows, skipped = mf.build_manifest(
            roots, out, val=val, test=test, seed=seed, patients=patients or (), id_column=id_column,
            patient_column=patient_column, min_size=min_size, headers_only=headers_only,
            sources=mf.parse_source_rules(source or []), on_progress=lambda done, total: advance(),
        )
    if not rows and not skipped:
        _items_or_exit([], roots)
    mf.write_manifest(rows, out)
    skipped_csv = mf.write_skipped(skipped, out)
    console.print(split_table(rows, seed))
    console.print(f"wrote {len(rows)} image(s) to {out}", highlight=False, soft_wrap=True)
    if skipped:
        console.print(f"skipped: {len(skipped)} file(s), listed in {skipped_csv}", highlight=False, soft_wrap=True)
        for item in skipped[:20]:
            console.print(f"  {escape(os.path.relpath(item.path))}: {escape(item.reason)}", markup=False,
                          highlight=False, soft_wrap=True)
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
    check_outputs(folders={"DEST": dest})
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
    model: ModelOption = None,
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="png | tiff | dcm (default: the input's; JPEG -> png).")
    ] = None,
    tile: TileOption = _DEFAULTS.tile,
    max_memory: MaxMemoryOption = _DEFAULTS.max_memory,
    overlap: OverlapOption = _DEFAULTS.overlap,
    batch_size: BatchOption = _DEFAULTS.batch_size,
    device: DeviceOption = _DEFAULTS.device,
    backend: Annotated[str, typer.Option(help="torch | onnxruntime.")] = _DEFAULTS.backend,
    precision: PrecisionOption = _DEFAULTS.precision,
    threads: Annotated[int | None, typer.Option(
        min=1, help="CPU threads (default: all cores; with --engine ray: per worker, default 1).")] = None,
    clip: Annotated[bool, typer.Option(
        "--clip/--no-clip", help="Clip each output to its input's value range, per channel (--no-clip: raw).")
    ] = _DEFAULTS.clip_to_input,
    colour: ColourOption = _DEFAULTS.colour,
    modality: Annotated[str | None, typer.Option(
        help="CT | US | CR | DX: the bundled model for this modality for every file (default: each DICOM's "
             "Modality; PNG/TIFF get the chest model).")] = None,
    consistency: Annotated[str, typer.Option(
        help="none | project: 'project' makes each output, degraded by --consistency-kernel, equal its input.")
    ] = _DEFAULTS.consistency,
    consistency_kernel: Annotated[str, typer.Option(
        help="bicubic | box: the degradation the input is assumed to come from.")] = _DEFAULTS.consistency_kernel,
    consistency_map: Annotated[bool, typer.Option(
        "--consistency-map", help="Also write NAME.consistency.tiff: output degraded minus input, in noise units.")
    ] = False,
    strength: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Keep this share of the model's change to bicubic (1: the model; see "
                               "docs/detectability.md).")] = _DEFAULTS.strength,
    fidelity: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="With --consistency project: how far to move to the projection (1: all the way).")
    ] = _DEFAULTS.fidelity,
    engine: Annotated[str, typer.Option(help="local | ray: this process, or a Ray cluster (pip install "
                                             "'medsr[ray]').")] = _DEFAULTS.engine,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster: auto | HOST:PORT (default: a new one on this machine).")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Ray workers, each loading the model once (default: the cluster's CPUs / --threads).")] = None,
    results: Annotated[Path | None, typer.Option(
        help=f"Results table (CSV, a row per input); a rerun skips inputs done in it (ray default: "
             f"OUT/{RESULTS_NAME}).")] = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Also rerun the inputs the results table lists as failed.")] = False,
) -> None:
    """Super-resolve images with a model; DICOM in gives a derived DICOM out.

    Without --model each DICOM gets the bundled model for its Modality (CT, US, CR/DX); the choice is printed.
    With --engine ray (or a --results table) the job is resumable: run the same command again to finish it.
    """
    check_outputs(folders={"--out": out})
    tune_allocator()
    if threads and engine == "local":
        torch.set_num_threads(threads)
    started = time.perf_counter()
    settings = InferenceSettings(tile, overlap, batch_size, device, backend, precision, max_memory=max_memory,
                                 clip_to_input=clip, colour=colour, consistency=consistency,
                                 consistency_kernel=consistency_kernel, strength=strength, fidelity=fidelity,
                                 engine=engine, address=address, workers=workers, worker_threads=threads or 1)
    sources, failures = expand_inputs(inputs)
    groups, notes = plan_models(sources, model, modality)
    for line in notes:
        console.print(escape(line), highlight=False)
    if engine != "local" or results is not None or retry_failed:
        table = results or out / RESULTS_NAME
        if engine == "ray":
            import_ray()  # before the progress bar: without Ray, one line says how to get it
        with _progress("upscaling", None) as advance:
            report = upscale_job(groups, out, table, fmt=fmt, settings=settings, retry_failed=retry_failed,
                                 consistency=consistency_map,
                                 missing=failures, on_start=advance.set_total,
                                 on_rows=lambda rows: advance(len(rows)))
        _job_summary(report, out, time.perf_counter() - started)
        return
    outcomes = _upscale_groups(groups, out, fmt, settings, warn=model is not None, maps=consistency_map)
    failures += [(str(o.source), o.error) for o in outcomes if o.error is not None]
    done = [o for o in outcomes if o.error is None]
    for o in done:
        if o.note:  # one line per file at most: what the writer changed in a copied header, pydicom's warnings
            console.print(f"note: {escape(o.source)}: {escape(o.note)}", markup=False, highlight=False,
                          soft_wrap=True)
    console.print(f"upscaled {len(done)} of {len(done) + len(failures)} file(s) into {out} in "
                  f"{time.perf_counter() - started:.1f} s", highlight=False)
    _finish(failures)


def _job_summary(report: JobReport, out: Path, seconds: float) -> None:
    """What a job with a results table did: counts, the table's path, then the failed inputs (exit 1 if any)."""
    done = sum(row.status == "done" for row in report.rows)
    console.print(f"{done} of {len(report.rows)} input(s) done in {out} ({len(report.ran)} run now, "
                  f"{len(report.rows) - len(report.ran)} settled earlier) in {seconds:.1f} s; results: "
                  f"{report.table}", highlight=False, soft_wrap=True)
    if report.failed_earlier:
        console.print(f"{len(report.failed_earlier)} input(s) failed in an earlier run and were not retried "
                      "(--retry-failed runs them again)", highlight=False)
    _finish([(row.input, row.reason) for row in report.failed])


def _upscale_groups(
    groups: list[tuple[str | None, list[Item]]], out: Path, fmt: str | None, settings: InferenceSettings,
    *, warn: bool, maps: bool = False,
) -> list[Outcome]:
    """Run each group of files with its model (see medsr.infer.modality); print each model's table.

    ``warn``: the user named the model, so say which files are of another modality (a model chosen from the
    modality needs no warning: plan_models already said what it picked and why).
    """
    outcomes: list[Outcome] = []
    with _progress("upscaling", sum(len(group) for _, group in groups)) as advance:
        for name, group in groups:
            net = load_model(name, settings.device)
            for line in modality_warnings(group, net.meta, model_name(net)) if warn else ():
                console.print(escape(line), highlight=False)
            found = []
            for outcome in upscale_files(group, out, net, fmt=fmt, settings=settings, consistency=maps):
                found.append(outcome)
                advance()
            done = [o for o in found if o.error is None]
            if done:
                console.print(upscale_table(done, out, net))
            outcomes += found
    return outcomes


@app.command()
def detectability(
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="[LABEL=]MODEL: a bundled name or checkpoint, its rows called LABEL; repeatable.")
                     ] = None,
    manifest: Annotated[Path, typer.Option(help="Manifest from `medsr prepare`.")] = ...,
    split: Annotated[str, typer.Option(help="Split: val to tune settings, test to report once.")] = "test",
    modality: Annotated[str | None, typer.Option(
        help="CR | CT: the task (default: CT when a --model is a CT model, else chest X-ray). CT: discs in mm and "
             "HU inside the body, sparse-view FBP input as the reference.")] = None,
    baselines: Annotated[str | None, typer.Option(
        help="Comma-separated baselines besides the reference (default: lanczos for X-ray, none for CT).")] = None,
    degradation: Annotated[str | None, typer.Option(
        help="How LR inputs are made (default: box-noise for X-ray, ct-sparse-view for CT).")] = None,
    scale: Annotated[int, typer.Option("--scale", "-s", min=2, help="Degradation scale (CT: keep every S-th view).")
                     ] = 4,
    sizes: Annotated[str | None, typer.Option(
        help="Signal diameters (default: 4,8,16 HR px for X-ray; 3,5,7,10 mm for CT).")] = None,
    contrasts: Annotated[str | None, typer.Option(
        help="Signal contrasts (default: 0.01,0.02,0.04 of the local mean for X-ray; 3,5,7,10,14 HU for CT).")
    ] = None,
    crop: Annotated[int | None, typer.Option(
        min=64, help="Centre crop of each HR image, pixels a side (default: 512 for X-ray, whole slices for CT).")
    ] = None,
    realisations: Annotated[int | None, typer.Option(
        min=1, help="Signal placements per image (default: 1 for X-ray, 24 for CT: few slices).")] = None,
    pixel_spacing: Annotated[str | None, typer.Option(
        help="CT: mm per pixel for slices without PixelSpacing (PNG/TIFF), or a CSV of file,pixel_spacing.")
    ] = None,
    tv_weight: Annotated[list[float] | None, typer.Option(
        help="CT: also the FBP input TV-denoised with this weight (choose it on val); repeatable.")] = None,
    project: Annotated[bool, typer.Option("--project", help="Also each model made consistent with its input.")
                       ] = False,
    strength: Annotated[list[float] | None, typer.Option(
        help="Also reference + STRENGTH x (model - reference); repeatable.")] = None,
    fidelity: Annotated[list[float] | None, typer.Option(
        help="Also each model moved FIDELITY of the way to its projection; repeatable.")] = None,
    bootstrap: Annotated[int, typer.Option(min=100, help="Bootstrap resamples (over images).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of signal positions, noise, halves and bootstrap.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="JSON of every figure and setting.")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG: CHO AUC vs contrast per size, one line per method.")
                    ] = None,
    device: DeviceOption = "cpu",
) -> None:
    """Low-contrast detectability (CHO and NPW AUC, d') and invented detail, per method, vs the reference.

    Chest X-ray: discs of HR px at a fraction of the local mean, against bicubic. CT (--modality CT, or a CT
    --model): discs of mm at HU contrast inside the body, against the sparse-view FBP input (docs/detectability.md).
    """
    from medsr import detectability as det  # scipy.stats: loaded only for this command
    from medsr import detectability_ct as ct

    arguments = {key: (str(v) if isinstance(v, Path) else v) for key, v in locals().items()
                 if key not in ("det", "ct")}
    check_outputs({"--json": json_out, "--plot": plot}, {})
    models = model or []
    is_ct = _detectability_is_ct(modality, [det.model_spec(m)[1] for m in models], device,
                                 ct_options=bool(tv_weight or pixel_spacing))
    arguments["modality"] = "CT" if is_ct else "CR"  # the resolved task; the others are in the JSON's "task"
    if is_ct:
        settings, protocol = det.ct_task(
            models, sizes=_floats(sizes, "--sizes") if sizes else None, crop=crop, realisations=realisations,
            contrasts=_floats(contrasts, "--contrasts") if contrasts else None, scale=scale, degradation=degradation,
            seed=seed, bootstrap=bootstrap, pixel_spacing=pixel_spacing, device=device)
    else:
        crop = 512 if crop is None else crop
        settings = det.DetectabilitySettings(
            sizes=_floats(sizes or "4,8,16", "--sizes"),
            contrasts=_floats(contrasts or "0.01,0.02,0.04", "--contrasts"), crop=crop, bootstrap=bootstrap,
            seed=seed, realisations=realisations or 1)
        protocol = Protocol(scale=scale, degradation=degradation or "box-noise", seed=seed, max_size=crop)
    methods, variants, descriptions = det.build_methods(
        models, _baseline_names((baselines if baselines is not None else "" if is_ct else "bicubic,lanczos"
                                 ).split(","), "--baselines"), protocol, project_models=project,
        strengths=strength or [], fidelities=fidelity or [], inference=InferenceSettings(device=device),
        leading=ct.leading_methods(tv_weight or []) if is_ct else None)
    items = _items_or_exit(mf.items_from_manifest(manifest, split), [f"the {split!r} split of {manifest}"])
    with _progress("detectability", len(items)) as advance:
        result = det.run_detectability(items, protocol, methods, variants, settings, descriptions,
                                       progress=lambda done, total: advance())
    if json_out:
        ev.write_json(result.to_json(arguments), json_out)
    for observer in settings.observers:
        console.print(det.auc_table(result, observer))
    if result.band:
        console.print(det.band_table(result))
    if plot:
        det.plot(result, plot)
    _finish(result.failures)


def _detectability_is_ct(modality: str | None, models: list[str], device: str, ct_options: bool = False) -> bool:
    """Whether `medsr detectability` runs the CT task: --modality says, else whether a --model is a CT model;
    ConfigError for an unknown modality, or for CT-only options (``ct_options``) on the X-ray task."""
    if modality is not None and modality.upper() not in ("CT", "CR", "DX", "XRAY", "X-RAY"):
        raise ConfigError(f"--modality {modality!r}: choose CT or CR (chest X-ray)")
    if modality is not None:
        is_ct = modality.upper() == "CT"
    else:
        from medsr.detectability_ct import is_ct_model

        is_ct = any(is_ct_model(name, device) for name in models)
    if ct_options and not is_ct:
        raise ConfigError("--tv-weight and --pixel-spacing belong to the CT task (--modality CT)")
    return is_ct


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"give comma-separated numbers, not {text!r}", param_hint=option) from None


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="Bundled model name or checkpoint file.")],
    onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write.")],
    opset: Annotated[int, typer.Option(min=13, help="ONNX opset version.")] = 17,
) -> None:
    """Export a model to ONNX (dynamic batch/height/width, branches collapsed, BatchNorm folded)."""
    check_outputs({"--onnx": onnx})
    net = load_model(model, "cpu")
    path = export_onnx(net, onnx, opset=opset)
    sy, sx = net.scale
    console.print(
        f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, opset {opset}, x{sy}x{sx}, "
        f"{net.in_channels} channel(s), input 'lr' (N,C,h,w) in [0,1] -> output 'sr')",
        highlight=False,
    )


@app.command()
def models() -> None:
    """List the bundled models from their cards: name, architecture, scale, channels and test PSNR.

    Each weights file is checked against the sha256 its card records; a mismatch is reported and exits 1.
    """
    bundled = list_bundled_models()
    if not bundled:
        console.print("no bundled models")
        return
    table = Table(title="Bundled models (test split)",
                  caption="PSNR and baseline in dB; cards: medsr/weights/<name>.yaml, docs/models/<name>.md",
                  box=box.SIMPLE_HEAD, show_edge=False)
    # the short columns never wrap, so at 80 columns only the LR description folds, at word boundaries; the
    # architecture goes under the name instead of in a column of its own
    for column in ("name", "scale", "ch", "PSNR", "baseline"):
        table.add_column(column, no_wrap=True)
    table.add_column("LR made by", min_width=12)
    failures = []
    for entry in bundled:
        meta, card = entry["meta"], entry["card"]
        if card is None:
            failures.append((str(entry["weights"]), "no model card beside the weights"))
            continue
        try:
            verify_weights(card)
        except MedsrError as exc:
            failures.append((str(entry["weights"]), str(exc)))
            continue
        test = card.scores
        sy, sx = meta["scale"]
        score = f"{test['psnr']:.2f}" if test else "-"
        # a scale-1 model (sparse-view CT) has no interpolation baseline: its baseline is its input as it is
        baseline = "input" if (sy, sx) == (1, 1) else "bicubic"
        base = f"{baseline} {test['bicubic_psnr']:.2f}" if test else "-"
        skip = " +skip" if meta.get("arch_args", {}).get("global_skip") else ""
        name = Text(entry["name"])
        name.append(f"\n  {meta.get('arch', '?')}{skip}", style="dim")
        table.add_row(name, f"x{sy}" if sy == sx else f"{sy}x{sx}", str(meta.get("in_channels", "?")),
                      score, base, test.get("protocol", "bicubic"))
    console.print(table)
    _finish(failures)


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
        typer.Option("--out", "-o", help="Per-image CSV (image,source,method,scale,psnr,ssim,seconds)."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="JSON summary (means per method and source, settings).")
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
    seed: Annotated[int, typer.Option(help="Seed of random degradations (with each file's relative path).")] = 0,
    max_size: Annotated[
        int | None, typer.Option(min=8, help="Centre-crop each HR image to at most this many pixels a side.")
    ] = None,
    tile: TileOption = _DEFAULTS.tile,
    max_memory: MaxMemoryOption = _DEFAULTS.max_memory,
    overlap: OverlapOption = _DEFAULTS.overlap,
    device: DeviceOption = _DEFAULTS.device,
    precision: PrecisionOption = _DEFAULTS.precision,
    colour: ColourOption = _DEFAULTS.colour,
    window: Annotated[
        list[str] | None, typer.Option(help="Also score in a reading window (CT): lung, soft-tissue, full or "
                                            "LOW,HIGH in the model's units (HU); repeatable.")
    ] = None,
) -> None:
    """Score a model beside the bicubic/Lanczos baselines: PSNR, SSIM and seconds per image, per source."""
    arguments = {key: (str(v) if isinstance(v, Path) else [str(p) for p in v] if isinstance(v, list) else v)
                 for key, v in locals().items()}
    check_outputs({"--out": out, "--json": json_out}, {"--save-images": save_images})
    tune_allocator()
    if bool(hr) == (manifest is not None):
        raise typer.BadParameter("give HR images or --manifest (with --split), not both", param_hint="HR")
    names = _baseline_names(baselines.split(","), "--baselines")
    params = degradations.parse_params(degradation, param or [])
    items, unfound = (mf.items_from_manifest(manifest, split), []) if manifest else expand_inputs(hr)
    items = _items_or_exit(items, [f"the {split!r} split of {manifest}"] if manifest else hr, unfound)
    protocol = Protocol(scale=scale, degradation=degradation, degradation_params=params, border=border, seed=seed,
                        max_size=max_size)
    settings = InferenceSettings(tile=tile, overlap=overlap, device=device, precision=precision,
                                 max_memory=max_memory, colour=colour)
    with _progress("evaluating", len(items)) as advance:
        result = ev.evaluate_model(model, items, protocol, settings=settings, baselines=names,
                                   save_images=save_images, progress=lambda done, total: advance())
    result.failures[:0] = unfound
    console.print(ev.summary_table(result.summary, title=result.title(), seconds=True, sources=result.sources))
    summary = result.to_json(arguments)
    if window:
        summary["windows"] = _window_scores(model, items, result, names, window, settings=settings)
    for path, writer, data in ((out, ev.write_csv, (result.rows, out, ev.EVALUATE_CSV_COLUMNS)),
                               (json_out, ev.write_json, (summary, json_out))):
        if path is not None:
            writer(*data)
            console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    if save_images is not None:
        console.print(f"saved {len(result.saved)} output image(s) in {save_images}", highlight=False, soft_wrap=True)
    _finish(result.failures)


@app.command("results-table")
def results_table(
    runs: Annotated[list[str], typer.Argument(metavar="LABEL=JSON...", help="medsr evaluate --json files.")],
    degradation: Annotated[str, typer.Option(help="How the LR inputs were made (the title line).")],
) -> None:
    """Print a Markdown table of test scores per source: baselines of the first file, one column per LABEL."""
    print(results.results_table(results.read_summaries(runs), degradation))


def _window_scores(model: str, items: list[Item], result: ev.Evaluation, baselines: list[str], names: list[str],
                   settings: InferenceSettings) -> dict:
    """``medsr evaluate --window``: the same pairs and outputs scored in reading windows; printed and returned."""
    windows = dict(windowed.parse_window(name) for name in names)
    with _progress("scoring in windows", len(items)) as advance:
        rows = windowed.score_windows(items, result.protocol, {result.model_name: ev.model_method(model, settings)},
                                      baselines, windows, failures=result.failures,
                                      progress=lambda done, total: advance())
    summary = windowed.summarize_windows(rows)
    table = Table(title=f"{result.title()}: PSNR dB / SSIM in reading windows")
    table.add_column("method")
    for name in windows:
        table.add_column(name, justify="right")
    for method, by_window in summary.items():
        table.add_row(method, *[f"{v['psnr']:.2f} / {v['ssim']:.4f}" for v in by_window.values()])
    console.print(table)
    return summary


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
    require("streamlit", "app", "the web app")
    env = dict(os.environ)
    if models_dir is not None:
        if not models_dir.is_dir():
            raise ConfigError(f"--models-dir {models_dir}: no such folder")
        env["MEDSR_MODELS_DIR"] = str(models_dir.resolve())
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    console.print(f"medsr demo: open {url} in a browser (Ctrl-C stops the server)", highlight=False)
    code = app_server.serve(app_server.streamlit_command(APP_FILE, host, port), env, None if no_browser else url)
    if code != 0:
        raise typer.Exit(code)


def _serve_extra() -> None:
    """One line instead of an ImportError when the DICOM node's packages are not installed."""
    for module in EXTRAS["serve"]:
        require(module, "serve", "the DICOM node")


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="The node's YAML configuration.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Validate the configuration and its models, then exit.")
                     ] = False,
    example: Annotated[bool, typer.Option("--example", help="Print a commented example configuration.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Print what the node's ledger holds (counts, failures, "
                                         "unsent results), then exit; safe while the node runs.")] = False,
) -> None:
    """Run medsr as a DICOM node: receive (C-STORE), enhance each series, send the results on (C-STORE/STOW-RS).

    See docs/serve.md for wiring it to a PACS; --example prints a configuration to start from.
    """
    if example:
        from medsr.serve.config import example_text  # noqa: PLC0415

        typer.echo(example_text(), nl=False)
        return
    if config is None:
        raise ConfigError("--config is required (see --example for a configuration to start from)")
    _serve_extra()
    from medsr.serve import commands  # noqa: PLC0415
    from medsr.serve.config import load_config  # noqa: PLC0415

    settings = load_config(config)
    if status:
        for line in commands.status(settings):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
    elif check:
        console.print(f"{config}: {commands.check(settings)}", highlight=False, soft_wrap=True)
    else:
        commands.run(settings)


@app.command("enhance-study")
def enhance_study(
    url: Annotated[str, typer.Argument(help="DICOMweb study URL: http(s)://HOST/.../studies/STUDY_UID")],
    to: Annotated[str | None, typer.Option("--to", help="DICOMweb base URL to store to (default: the same).")
                  ] = None,
    model: ModelOption = None,
    modality: Annotated[str | None, typer.Option(help="CT | US | CR | DX: the bundled model for every series.")
                        ] = None,
    device: DeviceOption = _DEFAULTS.device,
    precision: PrecisionOption = _DEFAULTS.precision,
    username: Annotated[str | None, typer.Option(help="HTTP basic-auth user.")] = None,
    password: Annotated[str | None, typer.Option(envvar="MEDSR_DICOMWEB_PASSWORD",
                                                 help="HTTP basic-auth password (or $MEDSR_DICOMWEB_PASSWORD).")
                        ] = None,
) -> None:
    """Enhance a study already in a PACS: fetch it by WADO-RS, upscale each series, store back by STOW-RS."""
    _serve_extra()
    from medsr.serve.dicomweb import enhance_study as run  # noqa: PLC0415

    tune_allocator()
    settings = InferenceSettings(device=device, precision=precision)
    result = run(url, store_url=to, model=model, modality=modality, settings=settings, username=username,
                 password=password)
    for line in result.notes:
        console.print(escape(line), highlight=False)
    skipped = f", {result.skipped} earlier medsr result(s) skipped" if result.skipped else ""
    console.print(f"fetched {result.fetched} instance(s){skipped}; stored {result.stored} derived instance(s)",
                  highlight=False)
    _finish(result.failures)


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
