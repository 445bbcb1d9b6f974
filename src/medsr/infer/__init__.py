"""Inference: tiled upscaling of any image size, batching, ONNX export and the ONNX Runtime backend.

``upscale(image_or_path, model=None, settings=None)`` is the public entry point (re-exported as
``medsr.upscale``); ``upscale_array`` / ``upscale_arrays`` work on ``(H, W, C)`` float arrays in [0, 1];
:class:`InferenceSettings` holds tile, memory budget, overlap, batch, device, backend, precision, colour and
clipping (a grayscale model runs on the luminance of colour images: :mod:`medsr.infer.colour`);
``inference_form`` and ``export_onnx`` prepare a model for deployment. Models come from :func:`medsr.models.load_model`.
"""

from medsr.infer.api import (
    clip_to_input,
    finish_output,
    tile_for,
    upscale,
    upscale_array,
    upscale_arrays,
    upscaled_image,
)
from medsr.infer.export import export_onnx, fold_batchnorm, inference_form, onnx_bytes
from medsr.infer.runtime import get_predictor
from medsr.infer.settings import BACKENDS, COLOURS, DEFAULT_MAX_MEMORY, PRECISIONS, InferenceSettings, parse_memory

__all__ = [
    "BACKENDS",
    "COLOURS",
    "DEFAULT_MAX_MEMORY",
    "PRECISIONS",
    "InferenceSettings",
    "clip_to_input",
    "export_onnx",
    "finish_output",
    "fold_batchnorm",
    "get_predictor",
    "inference_form",
    "onnx_bytes",
    "parse_memory",
    "tile_for",
    "upscale",
    "upscale_array",
    "upscale_arrays",
    "upscaled_image",
]
