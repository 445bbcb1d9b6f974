"""Running a model fast: a prepared copy per model, device, backend and precision; ONNX Runtime.

The default torch path on CPU runs an inference-only copy of the network: BatchNorm folded into the
convs, weights and activations in channels-last (NHWC) layout (depthwise convolutions are several times
faster in NHWC on CPU), under ``torch.inference_mode``. It computes the same function as the plain model in
fp32 (outputs agree to about 1e-6). ``precision="bf16"`` runs the convolutions in bfloat16 under autocast
(additions, the bicubic skip and the output head stay fp32): faster on CPUs with AMX/AVX512-BF16, largest
error about 5e-3 on the bundled model (about one 8-bit grey level; ``bench/upscale_speed.py``) and 0.007 dB
of test-split PSNR (``medsr evaluate --precision bf16``).
"""

from __future__ import annotations

import weakref

import numpy as np
import torch
from torch import nn

from medsr.devices import resolve_device
from medsr.errors import ConfigError
from medsr.infer.export import inference_form, onnx_bytes
from medsr.infer.settings import PRECISIONS, InferenceSettings
from medsr.models import adapt_channels


class TorchPredictor:
    """Runs a PyTorch generator on numpy batches: ``(N, C, h, w)`` float32 -> ``(N, C, h*sy, w*sx)`` float32.

    ``fast=True`` (the default path) runs a collapsed, BatchNorm-folded, channels-last copy
    (:func:`medsr.infer.export.inference_form`); ``fast=False`` runs the model exactly as given. C may differ
    from the model's channels (see ``medsr.models.adapt_channels``).
    """

    def __init__(
        self, model: nn.Module, device: torch.device, *, precision: str = "fp32", fast: bool = True
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
        self.scale: tuple[int, int] = tuple(model.scale)  # type: ignore[assignment]
        self.in_channels = int(model.in_channels)
        self.device = device
        self.autocast = precision == "bf16"
        prepared = inference_form(model) if fast else model.eval()
        prepared = prepared.to(device=device)
        self.channels_last = fast and device.type == "cpu"
        if self.channels_last:
            prepared = prepared.to(memory_format=torch.channels_last)
        for p in prepared.parameters():
            p.requires_grad_(False)
        self.model = prepared

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
            y = adapt_channels(self.model, x)
        return y.to(device="cpu", dtype=torch.float32).numpy()


class _OnnxModule:
    """An ONNX Runtime session that looks like the model to ``adapt_channels``: tensors in, tensors out."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        import onnxruntime as ort  # optional and heavy: loaded only for this backend

        self.in_channels = int(model.in_channels)
        self.scale = tuple(model.scale)
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(onnx_bytes(model), options, providers=providers)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        lr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(["sr"], {"lr": lr})[0])


class OnnxPredictor:
    """Runs the exported ONNX graph (BatchNorm folded) with ONNX Runtime; same interface as TorchPredictor."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.module = _OnnxModule(model, device)
        self.scale: tuple[int, int] = self.module.scale  # type: ignore[assignment]
        self.in_channels = self.module.in_channels

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return adapt_channels(self.module, x).numpy()


_Cached = tuple[tuple[int, ...], "TorchPredictor | OnnxPredictor"]  # (weight versions, predictor)
_PREDICTORS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, ...], _Cached]] = weakref.WeakKeyDictionary()


def get_predictor(model: nn.Module, settings: InferenceSettings | None = None) -> TorchPredictor | OnnxPredictor:
    """The prepared runner for ``model`` under ``settings`` (device, backend, precision), built once, reused
    while the weights stay.

    Preparing (collapsing, folding BatchNorm, exporting to ONNX) costs far more than one small image, so it is
    cached per model object; changing the model's weights in place invalidates the cached copy.
    """
    settings = settings or InferenceSettings()
    for attr in ("scale", "in_channels"):
        if not hasattr(model, attr):
            raise ConfigError(f"model {type(model).__name__} has no .{attr}; build it with medsr.models")
    dev = resolve_device(settings.device)
    key = (str(dev), settings.backend, settings.precision)
    versions = tuple(t._version for t in [*model.parameters(), *model.buffers()])
    per_model = _PREDICTORS.setdefault(model, {})
    cached = per_model.get(key)
    if cached is not None and cached[0] == versions:
        return cached[1]
    if settings.backend == "torch":
        predictor: TorchPredictor | OnnxPredictor = TorchPredictor(model, dev, precision=settings.precision)
    else:
        predictor = OnnxPredictor(model, dev)
    per_model[key] = (versions, predictor)
    return predictor
