"""Degradation models: pure functions that turn an HR image into the LR input a model learns to invert.

Every model is a :class:`Degradation` record in :data:`REGISTRY`, found by name, and its function has one
signature::

    fn(hr, scale, *, bit_depth=8, rng=None, **params) -> lr

``hr`` is an ``(H, W, C)`` float32 image in [0, 1] whose H and W are multiples of :meth:`Degradation.hr_multiple`
(see :func:`medsr.degrade.bicubic.crop_to_multiple`); ``lr`` is float32 in [0, 1] with shape
``lr_shape(name, (H, W), scale)``. ``bit_depth == 8`` quantises the LR to 8-bit levels (as if saved as an
8-bit file); deeper data stay float. ``rng`` (a ``numpy.random.Generator``) makes random models reproducible.

Callers ask the record (LR scale, HR multiple, whole image or patch, value units, output kind) and never test
names. Functions are ``"module:function"`` strings imported on first use, so importing this package does not
import scikit-image or SciPy.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from medsr.degrade.bicubic import crop_to_multiple
from medsr.errors import ConfigError
from medsr.io.image import MedicalImage
from medsr.lazy import LazyRegistry, load

DegradationFunction = Callable[..., Any]


@dataclass(frozen=True)
class Degradation:
    """What medsr knows about one degradation model, asked by every caller instead of testing its name.

    ``lr_axes``: which axes the scale divides ("both"; "columns": x only; "none": LR keeps the HR size).
    ``any_size``: the model works on a slice of any size (CT thins view angles, not pixels), so HR images
    need not be scale multiples. ``whole_image``: its LR only makes sense made from the whole image (CT
    streaks come from the whole slice), so training degrades each image once and cuts patches from the pair.
    ``value_units``: the units of its ``value_range`` parameter (HU for CT: pixels are mapped to them before
    the physics), None when it works on the [0, 1] scale alone. ``output``: "image", or "sinogram" (not an
    image of the patient: nothing to score or show). ``rotations``: whether training may flip and rotate its
    patches (not for ultrasound, whose lateral and axial axes differ physically). ``lr_shape_target``: a
    ``"module:function"`` giving ``(h_lr, w_lr)`` for outputs whose shape is not the HR size over the scale.
    ``affine_parts``: for a whole-image model that is affine in the image before a final
    :func:`~medsr.degrade.bicubic.quantise`, ``("module:reconstruction", "module:change")``: ``function(hr) ==
    quantise(reconstruction(hr), bit_depth)``, and ``change(present, absent, scale, **params)`` is what
    ``reconstruction`` gains where a window of the image reads ``present`` instead of ``absent`` (evaluated on the
    window alone). Training inserts faint signals into patches of such a model without degrading the whole
    image again.
    """

    name: str
    target: str
    summary: str
    lr_axes: Literal["both", "columns", "none"] = "both"
    any_size: bool = False
    whole_image: bool = False
    value_units: str | None = None
    output: Literal["image", "sinogram"] = "image"
    rotations: bool = True
    lr_shape_target: str | None = None
    affine_parts: tuple[str, str] | None = None

    @property
    def function(self) -> DegradationFunction:
        """The degradation function (imported now)."""
        return DEGRADATIONS[self.name]

    def lr_scale(self, scale: int) -> tuple[int, int]:
        """The ``(sy, sx)`` upsampling factor a model must apply to undo this degradation at ``scale``."""
        return {"both": (scale, scale), "columns": (1, scale), "none": (1, 1)}[self.lr_axes]

    def hr_multiple(self, scale: int) -> tuple[int, int]:
        """What an HR image's ``(h, w)`` must be multiples of at ``scale``."""
        return (1, 1) if self.any_size else self.lr_scale(scale)

    def lr_shape(self, size: tuple[int, int], scale: int, **params: Any) -> tuple[int, int]:
        """The ``(h_lr, w_lr)`` made from an HR image of ``size = (h, w)`` (multiples of :meth:`hr_multiple`)."""
        if self.lr_shape_target is not None:
            return load(self.lr_shape_target)(size, scale, **params)
        sy, sx = self.lr_scale(scale)
        return size[0] // sy, size[1] // sx

    def with_value_range(
        self, params: Mapping[str, Any], value_range: Sequence[float] | None
    ) -> dict[str, Any]:
        """``params`` plus ``value_range`` (the pixels' modality values at 0 and 1) when this model works in
        modality units and ``params`` does not set one; unchanged otherwise. The one place CT gets its HU range."""
        params = dict(params)
        if self.value_units is not None and value_range is not None and "value_range" not in params:
            params["value_range"] = tuple(float(v) for v in value_range)
        return params


def _register(*records: Degradation) -> dict[str, Degradation]:
    return {record.name: record for record in records}


REGISTRY: Mapping[str, Degradation] = _register(
    Degradation("bicubic", "medsr.degrade.bicubic:bicubic_degradation",
                "Pillow bicubic downscale (the classic SR benchmark)."),
    Degradation("bicubic-blur-noise", "medsr.degrade.blur_noise:blur_noise",
                "Gaussian blur, bicubic downscale, Gaussian or Poisson noise (low-dose X-ray)."),
    Degradation("realistic", "medsr.degrade.realistic:realistic",
                "random kernel, noise and JPEG per image (training for unknown scanners)."),
    Degradation("box-noise", "medsr.degrade.realistic:box_noise",
                "detector-style box average plus Gaussian noise (the fixed realistic test)."),
    Degradation("ultrasound", "medsr.degrade.ultrasound:ultrasound",
                "bicubic downscale along x only (lateral ultrasound resolution).",
                lr_axes="columns", rotations=False),
    Degradation("ct-sparse-view", "medsr.degrade.ct:sparse_view_fbp",
                "FBP from every S-th view of a simulated scan: same size, streaks (HU).",
                lr_axes="none", any_size=True, whole_image=True, value_units="HU",
                affine_parts=("medsr.degrade.ct:sparse_view_reconstruction", "medsr.degrade.ct:sparse_view_change")),
    Degradation("ct-sinogram", "medsr.degrade.ct:sparse_view_sinogram",
                "the sparse sinogram itself, LR along the angle axis (HU).",
                lr_axes="columns", any_size=True, value_units="HU", output="sinogram",
                lr_shape_target="medsr.degrade.ct:sinogram_shape"),
    Degradation("endoscopy", "medsr.degrade.endoscopy:endoscopy",
                "Gaussian blur, bicubic downscale, JPEG round trip (endoscopy video)."),
)
"""Every degradation model, by name."""

DEFAULT_DEGRADATION = "bicubic"

DEGRADATIONS: Mapping[str, DegradationFunction] = LazyRegistry(
    {name: record.target for name, record in REGISTRY.items()})
"""Every degradation function by name (imported on first access)."""


def degradation_spec(name: str) -> Degradation:
    """The :class:`Degradation` record called ``name``; :class:`ConfigError` naming the valid names if unknown."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown degradation {name!r}; choose one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def registry_help() -> str:
    """One line per registered degradation (name: summary), for the CLI's help."""
    return "\n\n".join(f"{record.name}: {record.summary}" for record in REGISTRY.values())


def get_degradation(name: str) -> DegradationFunction:
    """The degradation function called ``name``; :class:`ConfigError` naming the valid names if unknown."""
    return degradation_spec(name).function


def lr_scale(name: str, scale: int) -> tuple[int, int]:
    """The ``(sy, sx)`` upsampling factor a model must apply to undo ``name`` at ``scale``."""
    return degradation_spec(name).lr_scale(scale)


def lr_shape(name: str, size: tuple[int, int], scale: int, **params: Any) -> tuple[int, int]:
    """The ``(h_lr, w_lr)`` that ``name`` makes from an HR image of ``size = (h, w)`` (scale multiples).

    ``ct-sinogram`` gives a sinogram (detector positions x kept angles), so its shape depends on the
    ``n_angles`` parameter, passed here the same way as to the degradation.
    """
    return degradation_spec(name).lr_shape(size, scale, **params)


def hr_multiple(name: str, scale: int) -> tuple[int, int]:
    """What an HR image's ``(h, w)`` must be multiples of for ``name`` at ``scale``.

    The CT models work on whole slices (their scale thins the view angles), so any size will do.
    """
    return degradation_spec(name).hr_multiple(scale)


def check_size(name: str, scale: int, height: int, width: int) -> None:
    """Refuse an HR image too small for ``name`` at ``scale`` (under one :func:`hr_multiple` a side, or empty).

    Raises ``ValueError("image too small for x4 (2x2 pixels)")`` (width x height): one message for every
    command, given before anything is degraded or written.
    """
    multiple_y, multiple_x = hr_multiple(name, scale)
    if height < max(multiple_y, 1) or width < max(multiple_x, 1):
        raise ValueError(f"image too small for x{scale} ({width}x{height} pixels)")


def degrades_whole_image(name: str) -> bool:
    """True for degradations that only make sense on a whole image (CT: streaks come from the whole slice),
    so training degrades each image once and cuts patches from the pair instead of degrading patches."""
    return degradation_spec(name).whole_image


def seeded_rng(seed: int, key: str) -> np.random.Generator:
    """The generator of one image's random degradation: a function of ``seed`` and the image's name ``key``
    (:attr:`medsr.io.find.Item.key`) alone, so its LR depends on neither the other images nor their order."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def degradation_params(name: str) -> dict[str, Any]:
    """The model-specific parameters of ``name`` and their defaults (not ``bit_depth``/``rng``)."""
    signature = inspect.signature(get_degradation(name))
    return {
        key: p.default for key, p in list(signature.parameters.items())[2:]
        if key not in ("bit_depth", "rng") and p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _coerce(name: str, key: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if default is None or isinstance(default, tuple):
            if "," in text:
                return tuple(float(v) for v in text.split(","))
            return float(text)
    except ValueError:
        raise ConfigError(f"parameter {key}={text!r} of degradation {name!r} is not a valid value") from None
    return text


def parse_params(name: str, items: list[str]) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` (the CLI's ``--param``) into typed keyword arguments for ``name``.

    Values take the type of the parameter's default; ``a,b`` becomes a tuple of floats (``value_range``).
    Unknown keys raise :class:`ConfigError` listing the valid ones.
    """
    valid = degradation_params(name)
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in valid:
            choices = ", ".join(valid) or "none"
            raise ConfigError(f"invalid parameter {item!r} for degradation {name!r}; parameters: {choices}")
        params[key] = _coerce(name, key, text.strip(), valid[key])
    return params


def degrade_image(
    image: MedicalImage,
    name: str = DEFAULT_DEGRADATION,
    scale: int = 4,
    *,
    rng: np.random.Generator | None = None,
    **params: Any,
) -> MedicalImage:
    """Degrade a whole :class:`~medsr.io.image.MedicalImage` (every frame) and keep how to write it back.

    The pixels are centre-cropped to :func:`hr_multiple` first; ``bit_depth`` comes from the image; for a
    DICOM CT (``modality == "CT"``) the CT models get the image's ``value_range`` (HU) unless ``params`` has
    one. The pixel spacing grows by :func:`lr_scale` (and is dropped for a sinogram).
    """
    spec = degradation_spec(name)
    function = spec.function
    params = spec.with_value_range(params, image.value_range if image.modality == "CT" else None)
    check_size(name, scale, image.height, image.width)
    hr = crop_to_multiple(image.pixels, hr_multiple(name, scale))
    frames = hr if image.is_multiframe else hr[None]
    lr = np.stack([function(frame, scale, bit_depth=image.bit_depth, rng=rng, **params) for frame in frames])
    spacing = image.pixel_spacing
    if spacing is not None:
        sy, sx = spec.lr_scale(scale)
        spacing = None if spec.output != "image" else (spacing[0] * sy, spacing[1] * sx)
    return image.with_pixels(lr if image.is_multiframe else lr[0], pixel_spacing=spacing)


__all__ = [
    "DEFAULT_DEGRADATION",
    "DEGRADATIONS",
    "REGISTRY",
    "Degradation",
    "check_size",
    "degradation_spec",
    "degradation_params",
    "degrade_image",
    "get_degradation",
    "hr_multiple",
    "lr_scale",
    "lr_shape",
    "parse_params",
    "registry_help",
    "seeded_rng",
]
