"""Inference: tiled upscaling of any image size, batching, ONNX export and the ONNX Runtime backend.

``upscale(image_or_path, model=None)`` is the public entry point (re-exported as ``medsr.upscale``);
``upscale_array`` / ``upscale_arrays`` work on ``(H, W, C)`` float arrays in [0, 1]; ``fold_batchnorm`` and
``export_onnx`` prepare a model for deployment.
"""

from medsr.allocator import tune_allocator
from medsr.infer.api import resolve_model, upscale, upscale_array, upscale_arrays
from medsr.infer.export import export_onnx, fold_batchnorm, inference_form, onnx_bytes
from medsr.infer.runtime import (
    BACKENDS,
    DEFAULT_MODEL,
    get_predictor,
    load_cached_model,
    model_name,
    resolve_device,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "export_onnx",
    "fold_batchnorm",
    "inference_form",
    "get_predictor",
    "load_cached_model",
    "model_name",
    "onnx_bytes",
    "resolve_device",
    "resolve_model",
    "tune_allocator",
    "upscale",
    "upscale_array",
    "upscale_arrays",
]
