"""Upscaling jobs with a results table: which inputs go together, which are still to do, and one engine to run them.

A job is ``medsr upscale`` with a results table (:mod:`medsr.infer.results`): it can be stopped and run again,
and it says per input what happened. Inputs are grouped into *units* that must run together in one process:
the files of one DICOM series (the derived instances must share one new Series Instance UID) and files whose
output names could collide (``a.jpg`` and ``a.png`` both want ``a.png``; the first keeps it, as with the local
engine). A unit is done or redone as a whole. The engines (``settings.engine``): ``local`` runs each model's
remaining files in this process, exactly as ``medsr upscale`` without a table does; ``ray`` spreads units
over a Ray cluster (:mod:`medsr.infer.ray_engine`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from torch import nn

from medsr.errors import ConfigError, MedsrError, one_line
from medsr.infer.files import Outcome, Source, upscale_files
from medsr.infer.results import ResultRow, ResultsTable, file_digest, utc_now
from medsr.infer.settings import InferenceSettings
from medsr.io.find import RASTER_SUFFIXES, has_dicom_marker
from medsr.models import load_model, model_name

Groups = Sequence[tuple[str | None, Sequence[Source]]]
"""Sources grouped by the model spec (name or path, None for the default) they run with."""


@dataclass(frozen=True)
class Unit:
    """Sources that run together, in input order, with the model spec they run with."""

    model: str | None
    sources: tuple[Source, ...]

    def to_json(self) -> str:
        return json.dumps({"model": self.model, "sources": [[str(s.path), str(s.relative)] for s in self.sources]})

    @classmethod
    def from_json(cls, text: str) -> Unit:
        data = json.loads(text)
        return cls(data["model"], tuple(Source(Path(p), Path(r)) for p, r in data["sources"]))


def input_key(path: str | os.PathLike[str]) -> str:
    """How an input is named in the results table: its absolute path (links not resolved)."""
    return os.path.abspath(path)


def series_uid(path: Path) -> str | None:
    """A DICOM file's SeriesInstanceUID from its header; None for rasters, unreadable files or an empty value."""
    try:
        if not has_dicom_marker(path) and path.suffix.lower() in RASTER_SUFFIXES:
            return None
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"], force=True)
    except Exception:  # noqa: BLE001 - an unreadable file fails in its unit, with the reader's reason
        return None
    return str(header.get("SeriesInstanceUID", "") or "").strip() or None


def _together(sources: Sequence[Source]) -> list[list[Source]]:
    """Sources joined when they share a DICOM series or an output name (suffix aside); in input order."""
    parent = list(range(len(sources)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[tuple[str, str], int] = {}
    for i, source in enumerate(sources):
        keys = [("name", str(source.relative.with_suffix("")))]
        if (uid := series_uid(source.path)) is not None:
            keys.append(("series", uid))
        for key in keys:
            if key in owner:
                parent[root(i)] = root(owner[key])
            else:
                owner[key] = i
    members: dict[int, list[Source]] = {}
    for i, source in enumerate(sources):
        members.setdefault(root(i), []).append(source)
    return list(members.values())  # dicts keep insertion order: by each unit's first source


def plan_units(groups: Groups) -> list[Unit]:
    """Split each model's sources into units: one per DICOM series or output-name clash, else one per file."""
    return [Unit(model, tuple(members)) for model, sources in groups for members in _together(sources)]


def is_settled(row: ResultRow | None, model: str, retry_failed: bool) -> bool:
    """Whether an input needs no work: done with this model and its output complete, or failed and not retried."""
    if row is None:
        return False
    if row.status == "failed":
        return not retry_failed
    return row.model == model and row.is_complete()


def pending_units(
    units: Sequence[Unit], earlier: dict[str, ResultRow], names: dict[str | None, str], retry_failed: bool
) -> list[Unit]:
    """The units with any input not settled (see :func:`is_settled`); ``names``: model spec -> model name."""
    return [u for u in units if not all(
        is_settled(earlier.get(input_key(s.path)), names[u.model], retry_failed) for s in u.sources)]


@functools.lru_cache(maxsize=8)
def job_model(spec: str | None, device: str) -> nn.Module:
    """:func:`load_model` kept per spec for the process: resolving a bundled name reads every model card (tenths of
    a second), too much to repeat for each unit a Ray worker runs."""
    return load_model(spec, device)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def result_row(outcome: Outcome, model: str, worker: str) -> ResultRow:
    """The table row of one outcome; a written output is read back for its size and sha256."""
    common = {"input": input_key(outcome.source), "model": model, "seconds": round(outcome.seconds, 4),
              "worker": worker, "finished": utc_now()}
    if outcome.error is not None:
        return ResultRow(status="failed", reason=outcome.error, **common)
    size, sha256 = file_digest(outcome.target)
    return ResultRow(status="done", output=input_key(outcome.target), bytes=size, sha256=sha256, **common)


def run_sources(
    model_spec: str | None, sources: Sequence[Source], outdir: Path, fmt: str | None, settings: InferenceSettings,
    consistency: bool = False,
) -> Iterator[ResultRow]:
    """Upscale ``sources`` with one model in this process (:func:`upscale_files`), one row per source.

    Anything that goes wrong becomes failed rows with the reason: in a job of 100,000 files one file (or one
    broken worker library) must not stop the others.
    """
    worker = worker_name()
    name = str(model_spec)
    seen: set[Path] = set()
    try:
        net = job_model(model_spec, settings.device)
        name = model_name(net)
        for outcome in upscale_files(sources, outdir, net, fmt=fmt, settings=settings,
                                     consistency=consistency):
            seen.add(outcome.source)
            yield result_row(outcome, name, worker)
    except Exception as exc:  # noqa: BLE001 - reported per file, see above
        reason = str(exc) if isinstance(exc, MedsrError) else f"internal error: {one_line(exc)[:300]}"
        if not isinstance(exc, MedsrError | OSError):
            traceback.print_exc()
        for source in sources:
            if source.path not in seen:
                yield ResultRow(input_key(source.path), "failed", reason=reason, model=name, worker=worker,
                                finished=utc_now())


def run_local(
    units: Sequence[Unit], outdir: Path, fmt: str | None, settings: InferenceSettings, consistency: bool = False
) -> Iterator[list[ResultRow]]:
    """The local engine: each model's remaining sources in one :func:`upscale_files` call, as without a table."""
    by_model: dict[str | None, list[Source]] = {}
    for unit in units:
        by_model.setdefault(unit.model, []).extend(unit.sources)
    for model_spec, sources in by_model.items():
        for row in run_sources(model_spec, sources, outdir, fmt, settings, consistency):
            yield [row]


@dataclass
class JobReport:
    """The outcome of a job: a row per input (input order), how many were run now, and where the table is."""

    rows: list[ResultRow]
    ran: set[str]
    table: Path
    names: dict[str | None, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[ResultRow]:
        return [r for r in self.rows if r.status == "failed"]

    @property
    def failed_earlier(self) -> list[ResultRow]:
        """Failed rows of earlier runs that this run left alone (no ``retry_failed``)."""
        return [r for r in self.failed if r.input not in self.ran]


def upscale_job(
    groups: Groups,
    outdir: str | Path,
    table: str | Path,
    *,
    fmt: str | None = None,
    settings: InferenceSettings | None = None,
    retry_failed: bool = False,
    consistency: bool = False,
    missing: Sequence[tuple[str, str]] = (),
    on_start: Callable[[int], None] | None = None,
    on_rows: Callable[[list[ResultRow]], None] | None = None,
) -> JobReport:
    """Run the inputs not yet settled in ``table`` with ``settings.engine``, appending a row per input as it ends.

    ``groups``: sources by model spec (:func:`medsr.infer.modality.plan_models`); ``consistency``: also write
    each output's consistency map (:func:`medsr.infer.files.upscale_files`); ``missing``: (input, reason)
    for inputs that matched no file, recorded as failed. ``on_start(n)`` is told how many inputs will run,
    ``on_rows`` gets each batch of rows as it is recorded (a progress bar). Every model is loaded here first, so a
    bad ``--model`` fails before any work.
    """
    settings = settings or InferenceSettings()
    if settings.engine == "ray":
        from medsr.infer.ray_engine import import_ray

        import_ray()  # before any work: without Ray, one line says how to get it
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/", str(outdir)):
        raise ConfigError(f"output {outdir}: give a folder path every worker reaches (local disk or NFS); URLs "
                          "are not supported, outputs are replaced atomically by a rename")
    outdir, results = Path(outdir), ResultsTable(table)
    earlier = results.compact() if results.path.exists() else {}  # drops a row torn by a killed job
    device = "cpu" if settings.engine == "ray" else settings.device
    names = {spec: model_name(load_model(spec, device)) for spec, _ in groups}
    units = plan_units(groups)
    todo = pending_units(units, earlier, names, retry_failed)
    results.append(ResultRow(text, "failed", reason=reason, finished=utc_now()) for text, reason in missing)
    if on_start:
        on_start(sum(len(u.sources) for u in todo))
    if settings.engine == "ray":
        from medsr.infer.ray_engine import run_ray

        batches = run_ray(todo, outdir, fmt, settings, consistency)
    else:
        batches = run_local(todo, outdir, fmt, settings, consistency)
    ran = {text for text, _ in missing}
    for rows in batches:
        results.append(rows)
        ran.update(row.input for row in rows)
        if on_rows:
            on_rows(rows)
    order = [text for text, _ in missing] + [input_key(s.path) for u in units for s in u.sources]
    final = results.compact(order)
    return JobReport([final[key] for key in order if key in final], ran, results.path, names)
