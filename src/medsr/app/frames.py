"""Every frame of a multi-frame file in the web app (an ultrasound cine, an enhanced CT or MR): run as
``medsr upscale`` runs it, scrolled as input / bicubic / model stacks, written as one derived multi-frame DICOM.

The frames go through :func:`medsr.infer.upscale` ``settings.batch_size`` at a time, as ``medsr upscale``
streams a multi-frame file (:mod:`medsr.infer.files`): the same model units, clipping and restoring; between
chunks the page shows its progress. Bicubic and the model's frames are quantised to the file's stored levels,
as the single-frame Enhance of :func:`medsr.app.logic.run_enhance`. The derived file is the multi-frame result
written by :func:`medsr.io.write_image`, the writer of ``medsr upscale``, encoded only when asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from medsr.app import logic
from medsr.app.exports import Download
from medsr.app.series import too_many_pixels
from medsr.degrade.bicubic import pil_resize
from medsr.devices import resolve_device
from medsr.infer import InferenceSettings, upscale, upscaled_image
from medsr.io.image import MedicalImage
from medsr.models import model_name
from medsr.protocol import quantisation_levels, quantise, resize_bit_depth


def too_large(image: MedicalImage, scale: tuple[int, int]) -> str | None:
    """Why running every frame of ``image`` is not for this page (frames over :data:`logic.DEMO_MAX_SIDE` per
    side, or more output pixels than :data:`medsr.app.series.MAX_SERIES_PIXELS`), else None."""
    frames = len(image.pixels) if image.is_multiframe else 1
    if max(image.height, image.width) > logic.DEMO_MAX_SIDE:
        return (f"its frames are {image.width} x {image.height} px, over the {logic.DEMO_MAX_SIDE} px per side "
                "this page runs whole (one frame runs on its centre crop; `medsr upscale` does every frame)")
    return too_many_pixels(frames, image.height, image.width, scale, "frames",
                           "run one frame here, or every frame with `medsr upscale`")


class FramesOutcome(logic.Run):
    """Every frame of one file run: input, bicubic and model stacks ``(F, H, W, C)`` in [0, 1], and the
    multi-frame result ready to write (:func:`medsr.io.write_image`)."""


def run_frames(image: MedicalImage, model: Any, *, device: str = "auto",
               progress: Callable[[int, int], None] | None = None,
               settings: InferenceSettings = logic.SETTINGS) -> FramesOutcome:
    """Enhance every frame of the multi-frame ``image`` with ``model`` under ``settings`` (those of ``medsr
    upscale``; the Faint findings choice changes them); ``progress(frames done, frames)``."""
    if not image.is_multiframe:
        raise ValueError("run_frames takes a multi-frame image (run_enhance runs one frame)")
    reason = too_large(image, tuple(int(s) for s in model.scale))
    if reason:
        raise ValueError(f"every frame is too much for this page: {reason}")
    count, step = len(image.pixels), max(1, settings.batch_size)
    levels = quantisation_levels(image)
    parts = []
    started = time.perf_counter()
    for start in range(0, count, step):
        chunk = image.with_pixels(image.pixels[start:start + step])
        parts.append(upscale(chunk, model, settings).pixels)  # what `medsr upscale` does to each chunk
        if progress is not None:
            progress(min(start + step, count), count)
    seconds = time.perf_counter() - started
    sr = quantise(np.concatenate(parts), levels)
    sy, sx = (int(s) for s in model.scale)
    size = (image.height * sy, image.width * sx)
    bicubic = np.stack([quantise(pil_resize(frame, size, "bicubic", resize_bit_depth(image)), levels)
                        for frame in image.pixels])
    return FramesOutcome(lr=image.pixels, bicubic=bicubic, sr=sr, result=upscaled_image(image, sr, model, settings),
                         model_name=model_name(model), scale=(sy, sx), seconds=seconds,
                         device=str(resolve_device(device)), output=settings.output_note())


def download_options(result: MedicalImage, source: MedicalImage, stem: str) -> list[Download]:
    """What every frame's result can be saved as: a derived multi-frame DICOM (and a multi-page TIFF of the
    real values) for a DICOM, else a multi-page TIFF; each file holds every frame."""
    count = len(result.pixels)
    if source.format != "dicom":
        return [Download(f"Download result ({count}-page TIFF)", f"{stem}_medsr.tiff", "image/tiff", "tiff")]
    options = [Download(f"Download derived DICOM ({count} frames)", f"{stem}_medsr.dcm", "application/dicom",
                        "dicom")]
    if result.channels == 1:
        options.append(Download(f"Download result (TIFF of real values, {count} pages)",
                                f"{stem}_medsr_values.tiff", "image/tiff", "values-tiff"))
    return options
