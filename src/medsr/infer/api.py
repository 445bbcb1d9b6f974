"""``medsr.upscale``: super-resolve an array, a MedicalImage or a file with a model, in tiles."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
from torch import nn

from medsr.consistency import consistency_map, project
from medsr.degrade.bicubic import pil_resize
from medsr.errors import ArrayError, ConfigError
from medsr.infer.colour import luminance, runs_on_luminance, upscale_luminance, with_chroma
from medsr.infer.runtime import OnnxPredictor, TorchPredictor, get_predictor
from medsr.infer.settings import InferenceSettings
from medsr.infer.tiling import MemoryCost, fit_tile, tile_needs, upscale_many, upscale_tiled
from medsr.intensity import clip_to_source, for_model, restore
from medsr.io import read_image
from medsr.io.image import MedicalImage
from medsr.models import ModelLike, load_model, model_name


def _budget(predictor: TorchPredictor | OnnxPredictor, settings: InferenceSettings) -> dict[str, Any]:
    """Tiling's keyword arguments: tile, overlap, batch size and, with ``settings.max_memory``, memory."""
    cost: MemoryCost | None = predictor.memory if settings.max_memory is not None else None
    return {"tile": settings.tile, "overlap": settings.overlap, "batch_size": settings.batch_size,
            "cost": cost, "max_memory": settings.max_memory}


def tile_for(model: ModelLike, shape: tuple[int, ...], settings: InferenceSettings | None = None) -> int:
    """The side of the tiles :func:`upscale_array` runs for an ``(H, W, C)`` image under ``settings``: at most
    ``settings.tile``, as large as ``settings.max_memory`` allows for a batch of them (``max(H, W)`` when the
    whole image fits; see :func:`medsr.infer.tiling.fit_tile`). The model's memory is measured on first use."""
    settings = settings or InferenceSettings()
    height, width, channels = shape
    net = load_model(model, settings.device)
    if runs_on_luminance(channels, int(net.in_channels), settings.colour):
        channels = 1
    predictor = get_predictor(net, settings)
    multiple, context = tile_needs(predictor)
    return fit_tile(height, width, channels, multiple=multiple, context=context, **_budget(predictor, settings))


def clip_to_input(sr: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """``sr`` ``(H', W', C)`` clipped in place, channel by channel, to the [min, max] of ``lr`` ``(H, W, C)``."""
    axes = tuple(range(lr.ndim - 1))
    return np.clip(sr, np.min(lr, axis=axes), np.max(lr, axis=axes), out=sr)


def upscale_array(
    model: ModelLike,
    lr: np.ndarray,
    settings: InferenceSettings | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Super-resolve one ``(H, W, C)`` float image in [0, 1] -> ``(H*sy, W*sx, C)`` float32 in [0, 1].

    ``model`` is anything :func:`medsr.models.load_model` takes. Images larger than the tile (``settings.tile``,
    shrunk to fit ``settings.max_memory``: :func:`tile_for`) run in overlapping tiles blended together (see
    :mod:`medsr.infer.tiling`); the result equals whole-image inference to well within one 8-bit grey level,
    and to float precision for a model that declares its tile needs (the U-Net of ``ct-sparse-view``).
    ``progress(done, total)`` follows the tiles. This is the model's own output, as the scoring protocol
    scores it: not clipped to the input's range (``settings.clip_to_input`` is applied by :func:`upscale`
    and :func:`upscale_arrays`, or with :func:`clip_to_input`). A 1-channel model meets an RGB image as
    ``settings.colour`` says (:mod:`medsr.infer.colour`).
    """
    settings = settings or InferenceSettings()
    net = load_model(model, settings.device)
    predictor = get_predictor(net, settings)
    budget = _budget(predictor, settings)
    if lr.ndim == 3 and runs_on_luminance(lr.shape[2], int(net.in_channels), settings.colour):
        return upscale_luminance(lr, lambda y: upscale_tiled(predictor, y, progress=progress, **budget))
    return upscale_tiled(predictor, lr, progress=progress, **budget)


def upscale_arrays(
    model: ModelLike, images: Sequence[np.ndarray], settings: InferenceSettings | None = None
) -> list[np.ndarray]:
    """Super-resolve many ``(H, W, C)`` images; same-size ones that fit one tile run in batches.

    Tiles fit ``settings.max_memory``; with ``settings.clip_to_input`` (the default) each output is clipped,
    per channel, to its own input's [min, max] (:func:`clip_to_input`). RGB images meet a 1-channel model as
    ``settings.colour`` says (:mod:`medsr.infer.colour`); their luminances batch with grey images of their size.
    """
    settings = settings or InferenceSettings()
    net = load_model(model, settings.device)
    predictor = get_predictor(net, settings)
    on_y = [np.ndim(im) == 3 and runs_on_luminance(np.shape(im)[2], int(net.in_channels), settings.colour)
            for im in images]
    inputs = [luminance(im) if y else im for im, y in zip(images, on_y, strict=True)]
    results = upscale_many(predictor, inputs, **_budget(predictor, settings))
    results = [with_chroma(sr, im) if y else sr for sr, im, y in zip(results, images, on_y, strict=True)]
    return [finish_output(sr, lr, tuple(net.scale), settings) for sr, lr in zip(results, images, strict=True)]


def finish_output(sr: np.ndarray, lr: np.ndarray, scale: tuple[int, int], settings: InferenceSettings) -> np.ndarray:
    """What :func:`upscale_arrays` does to a model output ``sr`` of ``lr`` after the network, in this order:
    ``settings.strength`` (:func:`toward_bicubic`), ``settings.clip_to_input`` (:func:`clip_to_input`, in place)
    and ``settings.consistency`` (:func:`project_onto_input`). The web app runs it on its tiled outputs so that
    they equal ``medsr upscale``'s with the same flags."""
    lr = np.asarray(lr, dtype=np.float32)
    if settings.strength != 1.0:
        sr = toward_bicubic(sr, lr, settings.strength)
    if settings.clip_to_input:
        sr = clip_to_input(sr, lr)
    if settings.consistency == "project":
        sr = project_onto_input(sr, lr, scale, settings.consistency_kernel, settings.fidelity)
    return sr


def toward_bicubic(sr: np.ndarray, lr: np.ndarray, strength: float) -> np.ndarray:
    """``bicubic + strength x (sr - bicubic)``: the model's change to Pillow's bicubic upscale of ``lr``, scaled."""
    bicubic = pil_resize(lr, sr.shape[:2], "bicubic", bit_depth=16)  # float path: no rounding to 8 bits
    return (bicubic + np.float32(strength) * (sr - bicubic)).astype(np.float32)


def project_onto_input(
    sr: np.ndarray, lr: np.ndarray, scale: tuple[int, int], kernel: str, fidelity: float = 1.0
) -> np.ndarray:
    """``sr`` moved ``fidelity`` of the way to its projection onto ``lr`` (:func:`medsr.consistency.project`;
    1: exactly consistent), then clipped to [0, 1]."""
    if tuple(scale) == (1, 1):
        raise ConfigError("the consistency projection needs a model that upscales (this one keeps the size)")
    target = project(sr, np.asarray(lr, dtype=np.float32), scale, kernel)
    return np.clip(sr + np.float32(fidelity) * (target - sr), 0.0, 1.0)


def consistency_maps(
    outputs: Sequence[np.ndarray], inputs: Sequence[np.ndarray], scale: tuple[int, int], kernel: str,
    levels: float = 255.0,
) -> list[np.ndarray]:
    """One :func:`medsr.consistency.consistency_map` ``(h, w, C)`` per output/input pair."""
    return [consistency_map(sr, np.asarray(lr, dtype=np.float32), scale, kernel, levels)
            for sr, lr in zip(outputs, inputs, strict=True)]


def _describe(array: np.ndarray) -> str:
    return f"shape {tuple(array.shape)}, dtype {array.dtype}"


def check_array(array: np.ndarray) -> tuple[np.ndarray, np.dtype | None]:
    """The ``(F, H, W, C)`` float32 frames in [0, 1] of an array given to :func:`upscale`, and the integer dtype
    to return (None for floats), by the rules :func:`upscale` documents; :class:`ArrayError` names the shape and
    the broken rule otherwise."""
    shape = tuple(array.shape)
    if array.ndim not in (2, 3, 4):
        raise ArrayError(f"cannot upscale an array of {_describe(array)}: expected (H, W), (H, W, C) or "
                         "(F, H, W, C) with C 1 or 3")
    if array.ndim >= 3 and shape[-1] not in (1, 3):
        first = shape[-3] if array.ndim == 3 else shape[1]
        hint = (" (channels first? pass np.moveaxis(a, -3, -1))" if first in (1, 3) else "")
        raise ArrayError(f"cannot upscale an array of {_describe(array)}: the last axis holds the channels and "
                         f"must be 1 or 3, not {shape[-1]}{hint}")
    if not all(shape):
        raise ArrayError(f"cannot upscale an array of {_describe(array)}: it holds no pixels")
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        if info.min < 0:
            raise ArrayError(f"cannot upscale an array of {_describe(array)}: signed integers are ambiguous; "
                             "pass unsigned integers (scaled by their maximum) or floats in [0, 1]")
        frames = np.multiply(array, np.float32(1 / info.max), dtype=np.float32)
        dtype: np.dtype | None = array.dtype
    elif np.issubdtype(array.dtype, np.floating):
        frames, dtype = array.astype(np.float32, copy=False), None
        finite = np.isfinite(frames)
        if not finite.all():
            bad = int(frames.size - np.count_nonzero(finite))
            raise ArrayError(f"cannot upscale an array of {_describe(array)}: {bad:,} value(s) are NaN or "
                             "infinite; replace them (np.nan_to_num) or crop them out first")
        low, high = float(frames.min()), float(frames.max())
        if low < 0.0 or high > 1.0:
            raise ArrayError(f"cannot upscale an array of {_describe(array)}: floats must lie in [0, 1], these "
                             f"span {low:g}..{high:g}; scale them first (e.g. (a - lo) / (hi - lo)) or pass a "
                             "MedicalImage whose value_range says what 0 and 1 mean")
    else:
        raise ArrayError(f"cannot upscale an array of {_describe(array)}: pass unsigned integers or floats")
    if frames.ndim == 2:
        frames = frames[None, :, :, None]
    elif frames.ndim == 3:
        frames = frames[None]
    return frames, dtype


def _from_float(array: np.ndarray, dtype: np.dtype | None) -> np.ndarray:
    if dtype is None:
        return array
    peak = np.iinfo(dtype).max
    return np.clip(np.rint(array * peak), 0, peak).astype(dtype)


@overload
def upscale(image_or_path: np.ndarray, model: ModelLike = ..., **kw: object) -> np.ndarray: ...
@overload
def upscale(
    image_or_path: MedicalImage | str | Path, model: ModelLike = ..., **kw: object
) -> MedicalImage: ...


def upscale(
    image_or_path: np.ndarray | MedicalImage | str | Path,
    model: ModelLike = None,
    settings: InferenceSettings | None = None,
    *,
    return_consistency: bool = False,
) -> np.ndarray | MedicalImage | tuple[np.ndarray | MedicalImage, np.ndarray]:
    """Super-resolve an image with ``model`` (default: :data:`medsr.models.DEFAULT_MODEL`).

    - A path or a :class:`MedicalImage` gives a MedicalImage with the upscaled pixels (multi-frame files
      frame by frame), ``pixel_spacing`` divided by the scale, and ``extra["medsr_upscale"] = {"model",
      "scale"}``; write it with :func:`medsr.io.write_image` (DICOM: a derived instance).
    - An array gives an array of the same layout. Layouts: ``(H, W)``; ``(H, W, C)`` with C = 1 or 3 (channels
      last; a channels-first ``(C, H, W)`` array is refused, not guessed); ``(F, H, W, C)``, a stack of F frames
      (or a batch of same-size images), each upscaled on its own. Values: floats must be finite and lie in
      [0, 1] (returned as float32); unsigned integers are scaled by their dtype's maximum (uint8: 255, uint16:
      65535) and returned in the same dtype. Anything else (NaN or inf, floats outside [0, 1], signed integers,
      other channel counts, 1-D or 5-D arrays, no pixels) raises :class:`medsr.errors.ArrayError` naming the
      shape: nothing is clipped or guessed silently.
    - With ``settings.clip_to_input`` (the default) every image (every frame) is clipped, per channel, to its
      input's [min, max]: a CT slice spanning -1000..1500 HU gives an upscaled slice within -1000..1500 HU.
    ``model`` is a bundled name, a checkpoint path or an ``nn.Module`` from :mod:`medsr.models`; loaded models
    and their prepared inference copies are cached per process. ``settings``: :class:`InferenceSettings`.

    With ``return_consistency`` the result comes with its consistency map: ``(result, map)``, the map float32
    on the input's grid (``(h, w)``, ``(h, w, C)`` or ``(F, h, w, C)`` as the input), the output degraded with
    ``settings.consistency_kernel`` minus the input, in units of the input's noise estimated from the input
    (:func:`medsr.consistency.consistency_map`; of the output as returned, before rounding to integers).
    """
    settings = settings or InferenceSettings()
    net = load_model(model, settings.device)
    scale = tuple(net.scale)
    if isinstance(image_or_path, np.ndarray):
        ndim = image_or_path.ndim
        stack, dtype = check_array(image_or_path)
        frames = list(stack)
        outputs = upscale_arrays(net, frames, settings)

        def layout(found: list[np.ndarray]) -> np.ndarray:  # back to the caller's layout
            return found[0][:, :, 0] if ndim == 2 else found[0] if ndim == 3 else np.stack(found)

        if not return_consistency:
            return _from_float(layout(outputs), dtype)
        levels = 65535.0 if dtype == np.uint16 else 255.0
        maps = consistency_maps(outputs, frames, scale, settings.consistency_kernel, levels)
        return _from_float(layout(outputs), dtype), layout(maps)
    if isinstance(image_or_path, str | os.PathLike):
        image = read_image(image_or_path)
    elif isinstance(image_or_path, MedicalImage):
        image = image_or_path
    else:
        raise ConfigError(f"cannot upscale a {type(image_or_path).__name__}; pass an array, image or path")
    source = image
    image = for_model(image, getattr(net, "meta", None))  # a CT model's fixed HU range (medsr.intensity)
    frames = list(image.pixels) if image.is_multiframe else [image.pixels]
    results = upscale_arrays(net, frames, settings)
    upscaled = restore(upscaled_image(image, np.stack(results) if image.is_multiframe else results[0], net,
                                      settings))
    if settings.clip_to_input and image is not source:  # again in the file's own units
        upscaled = clip_to_source(upscaled, source)
    if not return_consistency:
        return upscaled
    levels = 255.0 if image.bit_depth == 8 else 65535.0
    maps = consistency_maps(results, frames, scale, settings.consistency_kernel, levels)
    return upscaled, np.stack(maps) if image.is_multiframe else maps[0]


def upscaled_image(image: MedicalImage, pixels: np.ndarray, model: nn.Module,
                   settings: InferenceSettings | None = None) -> MedicalImage:
    """``image`` with super-resolved ``pixels``: pixel spacing divided by the scale, the model (and, where
    ``settings`` change its output, :meth:`InferenceSettings.output_note`) recorded in ``extra["medsr_upscale"]``
    (a derived DICOM's DerivationDescription says both); format, bit depth, value range and DICOM dataset kept
    for writing back."""
    sy, sx = model.scale
    spacing = image.pixel_spacing
    if spacing is not None:
        spacing = (spacing[0] / sy, spacing[1] / sx)
    record: dict[str, Any] = {"model": model_name(model), "scale": (sy, sx)}
    if settings is not None and settings.output_note():
        record["output"] = settings.output_note()
    extra = {**image.extra, "medsr_upscale": record}
    return image.with_pixels(pixels, pixel_spacing=spacing, extra=extra)
