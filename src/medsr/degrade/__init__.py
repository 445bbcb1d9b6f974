"""Degradation models: pure functions that turn an HR image into the LR input a model learns to invert.

Every model is found by name and has one signature::

    fn(hr, scale, *, bit_depth=8, rng=None, **params) -> lr

``hr`` is an ``(H, W, C)`` float32 image in [0, 1] whose H and W are multiples of the scale (see
:func:`medsr.degrade.bicubic.crop_to_multiple`); ``lr`` is float32 in [0, 1] with shape
``lr_shape(name, (H, W), scale)``. ``bit_depth == 8`` quantises the LR to 8-bit levels (as if saved as an
8-bit file); deeper data stay float. ``rng`` (a ``numpy.random.Generator``) makes random models reproducible.

The registry maps names to ``"module:function"`` strings and imports a model on first use, so importing
this package does not import scikit-image or SciPy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from medsr.degrade.bicubic import crop_to_multiple
from medsr.degrade.ct import DEFAULT_ANGLES, detector_count
from medsr.errors import ConfigError
from medsr.io.image import MedicalImage
from medsr.lazy import LazyRegistry

Degradation = Callable[..., Any]

_TARGETS: dict[str, str] = {
    "bicubic": "medsr.degrade.bicubic:bicubic_degradation",
    "bicubic-blur-noise": "medsr.degrade.blur_noise:blur_noise",
    "realistic": "medsr.degrade.realistic:realistic",
    "box-noise": "medsr.degrade.realistic:box_noise",
    "ultrasound": "medsr.degrade.ultrasound:ultrasound",
    "ct-sparse-view": "medsr.degrade.ct:sparse_view_fbp",
    "ct-sinogram": "medsr.degrade.ct:sparse_view_sinogram",
    "endoscopy": "medsr.degrade.endoscopy:endoscopy",
}

DEFAULT_DEGRADATION = "bicubic"

# Upsampling factor (sy, sx) a model must apply to undo each degradation, as a function of the scale.
_LR_SCALE: dict[str, Callable[[int], tuple[int, int]]] = {
    "bicubic": lambda s: (s, s),
    "bicubic-blur-noise": lambda s: (s, s),
    "realistic": lambda s: (s, s),
    "box-noise": lambda s: (s, s),
    "endoscopy": lambda s: (s, s),
    "ultrasound": lambda s: (1, s),
    "ct-sparse-view": lambda s: (1, 1),
    "ct-sinogram": lambda s: (1, s),
}


DEGRADATIONS: Mapping[str, Degradation] = LazyRegistry(_TARGETS)
"""Every degradation model by name (imported on first access)."""


def _check_name(name: str) -> None:
    if name not in _TARGETS:
        raise ConfigError(f"unknown degradation {name!r}; choose one of: {', '.join(_TARGETS)}")


def get_degradation(name: str) -> Degradation:
    """The degradation function called ``name``; :class:`ConfigError` naming the valid names if unknown."""
    _check_name(name)
    return DEGRADATIONS[name]


def lr_scale(name: str, scale: int) -> tuple[int, int]:
    """The ``(sy, sx)`` upsampling factor a model must apply to undo ``name`` at ``scale``."""
    _check_name(name)
    return _LR_SCALE[name](scale)


def lr_shape(name: str, size: tuple[int, int], scale: int, **params: Any) -> tuple[int, int]:
    """The ``(h_lr, w_lr)`` that ``name`` makes from an HR image of ``size = (h, w)`` (scale multiples).

    ``ct-sinogram`` gives a sinogram (detector positions x kept angles), so its shape depends on the
    ``n_angles`` parameter, passed here the same way as to the degradation.
    """
    _check_name(name)
    height, width = size
    if name == "ct-sinogram":
        n_angles = int(params.get("n_angles", DEFAULT_ANGLES))
        return detector_count(height, width), n_angles // scale
    sy, sx = lr_scale(name, scale)
    return height // sy, width // sx


def hr_multiple(name: str, scale: int) -> tuple[int, int]:
    """What an HR image's ``(h, w)`` must be multiples of for ``name`` at ``scale``.

    The CT models work on whole slices (their scale thins the view angles), so any size will do.
    """
    _check_name(name)
    return (1, 1) if name.startswith("ct-") else lr_scale(name, scale)


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
    _check_name(name)
    return name == "ct-sparse-view"


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
    function = get_degradation(name)
    if name.startswith("ct-") and image.modality == "CT" and "value_range" not in params:
        params = {**params, "value_range": tuple(image.value_range)}
    check_size(name, scale, image.height, image.width)
    hr = crop_to_multiple(image.pixels, hr_multiple(name, scale))
    frames = hr if image.is_multiframe else hr[None]
    lr = np.stack([function(frame, scale, bit_depth=image.bit_depth, rng=rng, **params) for frame in frames])
    spacing = image.pixel_spacing
    if spacing is not None:
        sy, sx = lr_scale(name, scale)
        spacing = None if name == "ct-sinogram" else (spacing[0] * sy, spacing[1] * sx)
    return image.with_pixels(lr if image.is_multiframe else lr[0], pixel_spacing=spacing)


__all__ = [
    "DEFAULT_DEGRADATION",
    "DEGRADATIONS",
    "check_size",
    "degradation_params",
    "degrade_image",
    "get_degradation",
    "hr_multiple",
    "lr_scale",
    "lr_shape",
    "parse_params",
]
