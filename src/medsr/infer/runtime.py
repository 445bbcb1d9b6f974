"""Running a model fast: device choice, a prepared copy per model and backend, ONNX Runtime, a model cache.

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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medsr.errors import ConfigError

DEFAULT_MODEL = "swift-srresnet-xray-x4"
BACKENDS = ("torch", "onnxruntime")
PRECISIONS = ("fp32", "bf16")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; anything else is checked and returned as a torch.device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    return dev


def _adapt(model: Any, x: torch.Tensor) -> torch.Tensor:
    from medsr.models import adapt_channels

    return adapt_channels(model, x)


class TorchPredictor:
    """Runs a PyTorch generator on numpy batches: ``(N, C, h, w)`` float32 -> ``(N, C, h*sy, w*sx)`` float32.

    ``fast=True`` (the default path) runs a collapsed, BatchNorm-folded, channels-last copy
    (:func:`medsr.infer.export.inference_form`); ``fast=False`` runs the model exactly as given. C may differ
    from the model's channels (see ``medsr.models.adapt_channels``).
    """

    def __init__(
        self, model: nn.Module, device: torch.device, *, precision: str = "fp32", fast: bool = True
    ) -> None:
        from medsr.infer.export import inference_form

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
            y = _adapt(self.model, x)
        return y.to(device="cpu", dtype=torch.float32).numpy()


class _OnnxModule:
    """An ONNX Runtime session that looks like the model to ``adapt_channels``: tensors in, tensors out."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        import onnxruntime as ort

        from medsr.infer.export import onnx_bytes

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
        return _adapt(self.module, x).numpy()


_PREDICTORS: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, ...], tuple[tuple[int, ...], Any]]] = (
    weakref.WeakKeyDictionary()
)


def get_predictor(
    model: nn.Module, *, device: str | torch.device = "auto", backend: str = "torch", precision: str = "fp32"
) -> TorchPredictor | OnnxPredictor:
    """The prepared runner for ``model`` on a device and backend, built once, reused while the weights stay.

    Preparing (folding BatchNorm, exporting to ONNX) costs far more than one small image, so it is cached per
    model object; changing the model's weights in place invalidates the cached copy.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if backend == "onnxruntime" and precision != "fp32":
        raise ConfigError(f"precision {precision} is only available with the torch backend")
    for attr in ("scale", "in_channels"):
        if not hasattr(model, attr):
            raise ConfigError(f"model {type(model).__name__} has no .{attr}; build it with medsr.models")
    dev = resolve_device(device)
    key = (str(dev), backend, precision)
    versions = tuple(t._version for t in [*model.parameters(), *model.buffers()])
    per_model = _PREDICTORS.setdefault(model, {})
    cached = per_model.get(key)
    if cached is not None and cached[0] == versions:
        return cached[1]
    predictor = (
        TorchPredictor(model, dev, precision=precision) if backend == "torch" else OnnxPredictor(model, dev)
    )
    per_model[key] = (versions, predictor)
    return predictor


_MODELS: dict[tuple[str, int, str], nn.Module] = {}


def load_cached_model(name_or_path: str | Path | None, device: str | torch.device = "auto") -> nn.Module:
    """``medsr.models.load_model`` cached per (name or file and its modification time, device).

    ``None`` means the default bundled model (:data:`DEFAULT_MODEL`).
    """
    from medsr.models import load_model

    name = DEFAULT_MODEL if name_or_path is None else name_or_path
    dev = resolve_device(device)
    path = Path(name)
    if path.is_file():
        key = (str(path.resolve()), path.stat().st_mtime_ns, str(dev))
    else:
        key = (str(name), 0, str(dev))
    if key not in _MODELS:
        model = load_model(name, device=dev)
        if not isinstance(getattr(model, "meta", None), dict):
            model.meta = {}
        model.meta.setdefault("name", path.name if path.is_file() else str(name))
        _MODELS[key] = model
    return _MODELS[key]


def model_name(model: nn.Module) -> str:
    """A short name for reports and DICOM DerivationDescription: the bundled name or file, else the arch."""
    meta = getattr(model, "meta", None) or {}
    return str(meta.get("name") or meta.get("arch") or getattr(model, "arch", type(model).__name__))


