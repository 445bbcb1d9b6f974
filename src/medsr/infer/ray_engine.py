"""The Ray engine: units of work (:mod:`medsr.infer.jobs`) as a Ray Data dataset, mapped by a pool of workers.

Ray Data batch inference as Ray's documentation describes it: the inputs become a dataset (one item per unit: a
file, or a whole DICOM series), ``map_batches`` runs a callable class of which each pool actor loads the model
once (``load_model``, the same :class:`InferenceSettings` as the CLI) and writes outputs with the same writers as
the local engine (:func:`medsr.infer.jobs.run_sources`), so outputs are identical. Only file names travel
through Ray, never pixels: every worker reads its inputs and writes its outputs itself, so inputs and the output
folder must be at the same path on every node (one machine, or NFS). The driver streams back one small result
per unit, which :func:`medsr.infer.jobs.upscale_job` appends to the results table as it arrives. A worker that
dies (killed, out of memory, node lost) is restarted by Ray and its unit run again; outputs are written
atomically, so the rerun replaces nothing half-written.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from medsr.errors import ConfigError
from medsr.extras import require
from medsr.infer.jobs import Unit, run_sources
from medsr.infer.results import ResultRow
from medsr.infer.settings import InferenceSettings

MAX_BLOCKS = 10_000
"""Dataset blocks at most. Ray runs one task per block; with a unit per block its cost was within the noise of
bench/ray_throughput.py, and results reach the driver (and a dead worker's work is rerun) a block at a time, so a
block holds one unit up to this many units, and more units share blocks."""


def import_ray():
    """``ray`` with ``ray.data`` loaded, or a one-line error naming the extra to install."""
    require("ray.data", "ray", "the ray engine (--engine ray)")
    return require("ray", "ray", "the ray engine (--engine ray)")


class UpscaleWorker:
    """One pool actor: sets its threads once, then upscales each unit of a batch (models cached per process)."""

    def __init__(self, outdir: str, fmt: str | None, settings: InferenceSettings, consistency: bool) -> None:
        import torch

        from medsr.allocator import tune_allocator

        tune_allocator()
        torch.set_num_threads(settings.worker_threads)
        self.outdir, self.fmt, self.settings, self.consistency = Path(outdir), fmt, settings, consistency

    def __call__(self, batch: dict) -> dict:
        rows = []
        for text in batch["unit"]:
            unit = Unit.from_json(str(text))
            done = run_sources(unit.model, unit.sources, self.outdir, self.fmt, self.settings, self.consistency)
            rows.append(json.dumps([asdict(row) for row in done]))
        return {"rows": rows}


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` (``auto``, ``HOST:PORT``; None: start one here) unless already joined."""
    ray = import_ray()
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # the driver's C++ core logs an error-level note for every pool actor (constructor arguments held in the
    # object store, ray-project/ray#53727) that is harmless here: keep the terminal for medsr's own lines
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {address or 'a new local one'}: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def worker_count(settings: InferenceSettings) -> int:
    """``settings.workers``, else as many workers as the cluster's CPUs hold at ``worker_threads`` each.

    More workers than the cluster's CPUs hold would wait for CPUs that never come: that is refused in one line.
    """
    cpus = int(import_ray().cluster_resources().get("CPU", 0))
    fits = cpus // settings.worker_threads
    if fits < (settings.workers or 1):
        raise ConfigError(f"the Ray cluster has {cpus} CPU(s): {settings.workers or 1} worker(s) of "
                          f"{settings.worker_threads} thread(s) do not fit; lower --workers or --threads")
    return settings.workers or fits


def run_ray(
    units: Sequence[Unit], outdir: Path, fmt: str | None, settings: InferenceSettings, consistency: bool = False
) -> Iterator[list[ResultRow]]:
    """Run ``units`` on the cluster at ``settings.address``; yield each unit's rows as they come back."""
    if not units:
        return
    ray = import_ray()
    connect(settings.address)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # medsr draws its own progress bar and summary
    ray.data.DataContext.get_current().enable_progress_bars = False
    items = [{"unit": unit.to_json()} for unit in units]
    workers = worker_count(settings)
    dataset = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS))
    results = dataset.map_batches(
        UpscaleWorker,
        fn_constructor_kwargs={"outdir": str(Path(outdir).absolute()), "fmt": fmt, "settings": settings,
                               "consistency": consistency},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=settings.worker_threads,
        runtime_env={"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},  # idle OpenMP threads sleep, as medsr's CLI sets
    )
    for record in results.iter_rows():
        yield [ResultRow(**row) for row in json.loads(record["rows"])]
