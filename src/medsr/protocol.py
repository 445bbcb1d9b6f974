"""The one scoring protocol: make an (HR, LR) pair, run a method, quantise its output, score it.

``medsr evaluate``, ``medsr baseline``, the validation a training run logs every epoch, and the web app's
Simulate mode all call :class:`Protocol`, so a number printed by one can be reproduced by another. Which images
are scored is chosen elsewhere (:func:`medsr.io.find.expand_inputs`, :func:`medsr.data.manifest.items_from_manifest`);
rows and their means are :mod:`medsr.scores`. Per image:

1. take the first frame; centre-crop it to ``max_size`` pixels a side when that is set (a speed option, off
   by default everywhere); centre-crop it to a multiple of what the degradation needs (the scale);
2. degrade it to LR (default Pillow-exact bicubic; random degradations draw from a generator seeded by
   ``seed`` and the file's path relative to its root, so an image's LR does not depend on the other images,
   their order, or where the data folder lies), and quantise the LR to the image's stored levels;
3. upscale the LR with each method, quantise the output to the image's stored levels as writing it would;
4. PSNR and SSIM (:mod:`medsr.metrics`) on the image's own intensity scale (``data_range=1`` on [0, 1]),
   ``border`` pixels (default: the scale) cropped from each edge.

"Stored levels" are 255 steps for 8-bit files, 65535 for 16-bit PNG/TIFF, and for DICOM the number of
RescaleSlope steps in the image's value range (:func:`quantisation_levels`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsr.degrade import check_size, degradation_spec, seeded_rng
from medsr.degrade.bicubic import crop_to_multiple, pil_resize
from medsr.errors import ConfigError, MedsrError, failure_reason
from medsr.intensity import model_units, to_value_range
from medsr.io import read_image
from medsr.io.find import Item
from medsr.io.find import image_key as image_key  # where older callers found it
from medsr.io.image import MedicalImage
from medsr.metrics import psnr, ssim
from medsr.scores import ScoreRow

Method = Callable[[np.ndarray, tuple[int, int]], np.ndarray]
"""``(lr (h, w, C) float in [0, 1], (height, width)) -> (height, width, C) float in [0, 1]``."""

BASELINE_METHODS = ("bicubic", "lanczos", "nearest")


def quantisation_levels(image: MedicalImage) -> float:
    """Steps between 0 and 1 in the stored integers of ``image`` (255 for 8-bit, 65535 for 16-bit PNG).

    For DICOM the stored value is (modality value - intercept) / slope, so one stored step is ``slope``
    modality units and the [0, 1] span holds ``data_range / slope`` steps.
    """
    slope = 1.0
    if image.dataset is not None:
        slope = float(getattr(image.dataset, "RescaleSlope", 1.0) or 1.0)
    return abs(image.data_range / slope)


def quantise(pixels: np.ndarray, levels: float) -> np.ndarray:
    """Round [0, 1] ``pixels`` to ``levels`` steps, as writing them to the image's integer format would."""
    return (np.clip(np.rint(np.clip(pixels, 0.0, 1.0) * levels), 0, levels) / levels).astype(np.float32)


def resize_bit_depth(image: MedicalImage) -> int:
    """Pillow path for resizing ``image``: its exact 8-bit code for 8-bit images, float32 otherwise."""
    return 8 if image.bit_depth == 8 else 16


def interpolation_methods(names: Sequence[str], bit_depth: int) -> dict[str, Method]:
    """Pillow interpolation baselines by name (see :data:`BASELINE_METHODS`) for images of ``bit_depth``."""
    unknown = [name for name in names if name not in BASELINE_METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; choose from {', '.join(BASELINE_METHODS)}")

    def make(name: str) -> Method:
        return lambda lr, size: pil_resize(lr, size, name, bit_depth)

    return {name: make(name) for name in names}


def centre_crop(pixels: np.ndarray, max_size: int | None) -> np.ndarray:
    """``(..., H, W, C)`` centre-cropped to at most ``max_size`` pixels a side; unchanged when None."""
    if max_size is None:
        return pixels
    height, width = pixels.shape[-3], pixels.shape[-2]
    top, left = max(0, (height - max_size) // 2), max(0, (width - max_size) // 2)
    return pixels[..., top:top + max_size, left:left + max_size, :]


@dataclass(frozen=True)
class Pair:
    """One image made ready for scoring: ``hr`` and ``lr`` ``(H, W, C)`` float32 in [0, 1], its levels."""

    hr: np.ndarray
    lr: np.ndarray
    levels: float
    resize_bit_depth: int


@dataclass(frozen=True)
class Protocol:
    """How every score in medsr is made (see the module docstring); settings travel as this one object.

    ``scale=None`` means "the model's": :meth:`for_model` fills it (and a model's fixed value range) in, as
    :func:`medsr.evaluate.evaluate_model` does before scoring.
    """

    scale: int | None = 4
    degradation: str = "bicubic"
    degradation_params: Mapping[str, Any] = field(default_factory=dict)
    border: int | None = None  # None: the scale
    seed: int = 0
    max_size: int | None = None
    # models that work in fixed modality units (CT in HU): see medsr.intensity
    value_range: Sequence[float] | None = None
    raster_offset: float = 0.0

    def __post_init__(self) -> None:
        degradation_spec(self.degradation)  # an unknown name fails here, naming the valid ones

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> Protocol:
        """The protocol of a model trained with ``config`` (a :class:`medsr.train.config.TrainConfig` or any object
        with the same names): its ``scale``, ``degradation``, ``degradation_params``, ``value_range`` and
        ``raster_offset``. ``overrides`` set the rest (``max_size``, ``border``, ``seed``).

        The training seed is not read: validation degrades its images as ``medsr evaluate`` does (seed 0), so
        a run's logged scores and ``medsr evaluate --split val`` of its checkpoint are the same numbers.
        """
        names = ("scale", "degradation", "degradation_params", "value_range", "raster_offset")
        found = {name: getattr(config, name) for name in names if hasattr(config, name)}
        found["degradation_params"] = dict(found.get("degradation_params") or {})
        return cls(**{**found, **overrides})

    def for_model(self, model_scale: Sequence[int], meta: Mapping[str, Any] | None = None) -> Protocol:
        """This protocol for a model that upsamples ``model_scale = (sy, sx)``, with header ``meta``.

        The scale, when None, becomes the model's (``max(sy, sx)``); ConfigError when the degradation at the
        scale is not what the model undoes, or when the degradation gives no image (a sinogram) or does not fix
        the scale (sparse-view CT: pass it). A model working in fixed modality units (CT in HU, its header's
        ``value_range``) has its images put on them, unless this protocol names a range.
        """
        spec = degradation_spec(self.degradation)
        if spec.output != "image":
            raise ConfigError(f"evaluate scores images; the {self.degradation} route's output is a {spec.output} "
                              "(use ct-sparse-view)")
        scale = self.scale
        if scale is None:
            if spec.lr_axes == "none":
                raise ConfigError(f"degradation {self.degradation!r} does not fix the scale; pass --scale")
            scale = max(int(v) for v in model_scale)
        wanted = spec.lr_scale(scale)
        if wanted != tuple(int(v) for v in model_scale):
            sy, sx = model_scale
            raise ConfigError(f"the model upsamples x{sy}x{sx}, but {self.degradation!r} at scale {scale} "
                              f"needs x{wanted[0]}x{wanted[1]}")
        units = model_units(meta) if self.value_range is None else {}
        return dataclasses.replace(self, scale=scale, **units)

    @property
    def crop(self) -> int:
        """Pixels cropped from each edge before scoring."""
        return self.scale if self.border is None else self.border

    def rng(self, key: str) -> np.random.Generator:
        """The generator of an image's random degradation: a function of the seed and the image's key."""
        return seeded_rng(self.seed, key)

    def pair(self, image: MedicalImage, key: str = "") -> Pair:
        """Steps 1-2: the HR (first frame, cropped) and its quantised LR. ValueError if too small."""
        if self.value_range is not None:
            image = to_value_range(image, self.value_range, self.raster_offset)
        pixels = image.pixels[0] if image.is_multiframe else image.pixels
        pixels = centre_crop(pixels, self.max_size)
        check_size(self.degradation, self.scale, pixels.shape[0], pixels.shape[1])
        spec = degradation_spec(self.degradation)
        pixels = crop_to_multiple(pixels, spec.hr_multiple(self.scale))
        hr = np.ascontiguousarray(pixels, dtype=np.float32)
        # the pixels' modality range: the model's fixed one when set (they were mapped to it above), else a
        # DICOM CT's own (as medsr.degrade.degrade_image)
        value_range = self.value_range if self.value_range is not None else (
            image.value_range if image.modality == "CT" else None)
        params = spec.with_value_range(self.degradation_params, value_range)
        bit_depth = resize_bit_depth(image)
        lr = spec.function(hr, self.scale, bit_depth=bit_depth, rng=self.rng(key), **params)
        levels = quantisation_levels(image)
        return Pair(hr=hr, lr=quantise(np.asarray(lr), levels), levels=levels, resize_bit_depth=bit_depth)

    def score(self, sr: np.ndarray, pair: Pair) -> tuple[np.ndarray, float, float]:
        """Steps 3-4 for one output: ``(quantised sr, psnr, ssim)``."""
        sr = np.asarray(sr)
        if sr.shape != pair.hr.shape:
            raise ValueError(f"output of shape {sr.shape} does not match the HR image's {pair.hr.shape}")
        sr = quantise(sr, pair.levels)
        border = self.crop
        return sr, float(psnr(sr, pair.hr, data_range=1.0, border=border)), float(
            ssim(sr, pair.hr, data_range=1.0, border=border))

    def run(
        self,
        pair: Pair,
        methods: Mapping[str, Method],
        on_output: Callable[[str, np.ndarray], None] | None = None,
    ) -> list[ScoreRow]:
        """Score each method on a pair: a row per method (its ``seconds`` are the method's wall time)."""
        rows = []
        for name, method in methods.items():
            start = time.perf_counter()
            out = np.asarray(method(pair.lr, pair.hr.shape[:2]))
            seconds = time.perf_counter() - start
            sr, value_psnr, value_ssim = self.score(out, pair)
            if on_output is not None:
                on_output(name, sr)
            rows.append(ScoreRow(method=name, scale=self.scale, psnr=value_psnr, ssim=value_ssim,
                                 seconds=seconds))
        return rows

    def baselines(self, names: Sequence[str], pair: Pair) -> dict[str, Method]:
        """The interpolation baselines ``names`` for a pair (resized on its image's Pillow path)."""
        return interpolation_methods(names, pair.resize_bit_depth)


# --- scoring many images -------------------------------------------------------------------------------------


def read_images(paths: Iterable[Path], failures: list[tuple[str, str]]) -> Iterator[MedicalImage]:
    """Read each path with :func:`medsr.io.read_image`, lazily; unreadable files go to ``failures``."""
    for path in paths:
        try:
            yield read_image(path)
        except MedsrError as exc:
            failures.append((str(path), getattr(exc, "reason", str(exc))))


def score_items(
    items: Iterable[Item],
    protocol: Protocol,
    methods: Callable[[], dict[str, Method]] | dict[str, Method],
    baselines: Sequence[str] = (),
    *,
    failures: list[tuple[str, str]],
    on_output: Callable[[Item, MedicalImage, str, np.ndarray], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[ScoreRow]:
    """Rows of every method on every readable item (with the item's path and source).

    Unreadable or unscorable images go to ``failures`` as ``(path, reason)``, and the run goes on.
    """
    items = list(items)
    rows: list[ScoreRow] = []
    for done, item in enumerate(items, start=1):
        for image in read_images([item.path], failures):
            try:
                pair = protocol.pair(image, item.key)
                chosen = {**(methods() if callable(methods) else methods), **protocol.baselines(baselines, pair)}
                saver = None if on_output is None else (lambda m, sr, im=image, it=item: on_output(it, im, m, sr))
                found = protocol.run(pair, chosen, saver)
            except (MedsrError, ValueError) as exc:
                failures.append((str(item.path), failure_reason(exc)))
                continue
            rows.extend(dataclasses.replace(row, image=str(item.path), source=item.source) for row in found)
        if progress is not None:
            progress(done, len(items))
    return rows
