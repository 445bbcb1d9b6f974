"""How a model is run: tile, memory, overlap, batch, device, backend, precision, colour and clipping, as one object.

Built once at the edge (the CLI, the web app, a user's script) and passed down, as MONAI's
``SlidingWindowInferer`` holds its roi size, overlap, batch size and device.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from medsr.errors import ConfigError

BACKENDS = ("torch", "onnxruntime")
PRECISIONS = ("fp32", "bf16")
COLOURS = ("luminance", "per-channel")
CONSISTENCY = ("none", "project")
CONSISTENCY_KERNELS = ("bicubic", "box")
ENGINES = ("local", "ray")
DEFAULT_MAX_MEMORY = 3 * 2**29  # 1.5 GiB of activations
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_UNLIMITED = ("none", "unlimited", "inf")


def parse_memory(text: str | int | None) -> int | None:
    """Bytes from ``1.5G``, ``800M``, ``64MiB``, ``2GB`` or a plain number (K, M, G, T are powers of 1024);
    ``none``/``unlimited`` (or None) mean no limit."""
    if text is None or isinstance(text, int):
        return text
    value = str(text).strip()
    if value.lower() in _UNLIMITED:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?", value, flags=re.IGNORECASE)
    if not match or (number := float(match[1]) * _UNITS[match[2].upper()]) < 1 or not math.isfinite(number):
        raise ConfigError(f"memory {value!r}: give a size such as 1.5G, 800M or 64MiB (or 'none' for no limit)")
    return int(number)


@dataclass(frozen=True)
class InferenceSettings:
    """Settings of tiled inference; the defaults are what ``medsr upscale`` and the web app use.

    ``tile``: largest tile side in input pixels; ``max_memory``: bytes the model's activations may take (tiles
    are shrunk below ``tile`` until one batch of them fits, see :func:`medsr.infer.tiling.fit_tile`; None: no
    limit); ``overlap``: pixels over which neighbouring tiles blend, each tile's output being used only where
    it has at least ``overlap / 2`` pixels of context, or the model's ``tile_context`` where that is more (51
    for the 4-level U-Net of ``ct-sparse-view``: a smaller ``overlap`` is no error, the model's need wins, and a
    ``tile`` too small for it is raised, :func:`medsr.infer.tiling.workable_tile`); tiles of a model with a
    ``tile_multiple`` (8 for that U-Net) start on multiples of it, so that its tiled output equals its
    whole-image output whatever the tile, overlap or budget (:mod:`medsr.infer.tiling`); ``batch_size``: tiles
    (or same-size images) run at once (helps on a GPU, not on a CPU); ``device``: ``auto``, ``cpu``, ``cuda``
    or ``cuda:N``; ``backend``: ``torch`` or ``onnxruntime``;
    ``precision``: ``fp32`` or ``bf16`` (CPU autocast: faster only on CPUs with AMX or AVX512-BF16);
    ``clip_to_input``: :func:`medsr.infer.upscale` and ``upscale_arrays`` clip each output, per image and per
    channel, to its input's [min, max] (a CT spanning -1000..1500 HU stays within it); ``colour``: how a
    1-channel model meets an RGB image, ``luminance`` (the model on Y, chroma by bicubic, one forward: see
    :mod:`medsr.infer.colour`) or ``per-channel`` (the model on R, G and B: three forwards);
    ``consistency``: ``none`` or ``project`` (each output moved least so that degrading it with
    ``consistency_kernel``, ``bicubic`` or ``box``, gives its input exactly: :func:`medsr.consistency.project`;
    applied after clipping, then clipped to [0, 1]); ``consistency_kernel`` also makes the consistency map;
    ``strength``: how much of the model's change to bicubic is kept, ``bicubic + strength x (model - bicubic)``
    (1: the model as trained; lower keeps more of the input's faint detail and noise, see docs/detectability.md);
    ``fidelity``: with ``consistency="project"``, how far each output moves to its projection (1: all the way).

    How a batch of files is spread (:mod:`medsr.infer.jobs`): ``engine`` ``local`` (this process) or ``ray`` (a
    Ray cluster at ``address``: ``auto``, ``HOST:PORT``, or None to start one on this machine); ``workers``: Ray
    workers, each loading the model once (None: as many as the cluster's CPUs allow); ``worker_threads``: CPU
    threads (and CPUs reserved) per Ray worker.
    """

    tile: int = 512
    overlap: int = 32
    batch_size: int = 1
    device: str = "auto"
    backend: str = "torch"
    precision: str = "fp32"
    max_memory: int | None = DEFAULT_MAX_MEMORY
    clip_to_input: bool = True
    colour: str = "luminance"
    consistency: str = "none"
    consistency_kernel: str = "bicubic"
    strength: float = 1.0
    fidelity: float = 1.0
    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    worker_threads: int = 1

    def __post_init__(self) -> None:
        if self.overlap < 0 or self.tile < 8 or 2 * self.overlap >= self.tile:
            raise ConfigError(
                f"tile {self.tile} / overlap {self.overlap}: need tile >= 8 and 0 <= 2 * overlap < tile")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, not {self.batch_size}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}")
        if self.colour not in COLOURS:
            raise ConfigError(f"unknown colour mode {self.colour!r}; choose one of: {', '.join(COLOURS)}")
        if not 0.0 <= self.fidelity <= 1.0:
            raise ConfigError(f"fidelity must be between 0 (the model) and 1 (consistent), not {self.fidelity}")
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"strength must be between 0 (bicubic) and 1 (the model), not {self.strength}")
        if self.consistency not in CONSISTENCY:
            raise ConfigError(f"unknown consistency {self.consistency!r}; choose one of: {', '.join(CONSISTENCY)}")
        if self.consistency_kernel not in CONSISTENCY_KERNELS:
            raise ConfigError(f"unknown consistency kernel {self.consistency_kernel!r}; choose one of: "
                              f"{', '.join(CONSISTENCY_KERNELS)}")
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}; choose one of: {', '.join(ENGINES)}")
        if (self.workers is not None and self.workers < 1) or self.worker_threads < 1:
            raise ConfigError(f"workers {self.workers} / worker threads {self.worker_threads}: need at least 1")
        if self.backend == "onnxruntime" and self.precision != "fp32":
            raise ConfigError(f"precision {self.precision} is only available with the torch backend")
        if self.max_memory is not None and (isinstance(self.max_memory, bool) or not isinstance(
                self.max_memory, int) or self.max_memory < 1):
            raise ConfigError(f"max_memory must be a positive number of bytes or None, not {self.max_memory!r}")

    def output_note(self) -> str:
        """How the output differs from the model's own, in words for a derived file's header ("" as trained):
        ``"strength 0.5"``, ``"consistency projection, box kernel, fidelity 0.5"``, or both joined by "; "."""
        notes = []
        if self.strength != 1.0:
            notes.append(f"strength {self.strength:g}")
        if self.consistency == "project":
            notes.append(f"consistency projection, {self.consistency_kernel} kernel, fidelity {self.fidelity:g}")
        return "; ".join(notes)

    def with_(self, **changes: object) -> InferenceSettings:
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)
