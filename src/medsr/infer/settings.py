"""How a model is run: tile, overlap, batch, device, backend and precision, as one object.

Built once at the edge (the CLI, the web app, a user's script) and passed down, as MONAI's
``SlidingWindowInferer`` holds its roi size, overlap, batch size and device.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from medsr.errors import ConfigError

BACKENDS = ("torch", "onnxruntime")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class InferenceSettings:
    """Settings of tiled inference; the defaults are what ``medsr upscale`` and the web app use.

    ``tile``: tile side in input pixels (bounds memory); ``overlap``: context pixels each tile sees of its
    neighbours; ``batch_size``: tiles (or same-size images) run at once (helps on a GPU, not on a CPU);
    ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; ``backend``: ``torch`` or ``onnxruntime``;
    ``precision``: ``fp32`` or ``bf16`` (CPU autocast: faster only on CPUs with AMX or AVX512-BF16).
    """

    tile: int = 512
    overlap: int = 32
    batch_size: int = 1
    device: str = "auto"
    backend: str = "torch"
    precision: str = "fp32"

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
        if self.backend == "onnxruntime" and self.precision != "fp32":
            raise ConfigError(f"precision {self.precision} is only available with the torch backend")

    def with_(self, **changes: object) -> InferenceSettings:
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)
