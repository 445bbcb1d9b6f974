"""Running a model fast: a prepared copy per model, device, backend and precision; ONNX Runtime.

The default torch path on CPU runs an inference-only copy of the network: BatchNorm folded into the
convs, weights and activations in channels-last (NHWC) layout (depthwise convolutions are several times
faster in NHWC on CPU), under ``torch.inference_mode``. It computes the same function as the plain model in
fp32 (outputs agree to about 1e-6). ``precision="bf16"`` runs the convolutions in bfloat16 under autocast
(additions and the bicubic skip stay fp32): 1.6x faster than fp32 on a CPU with AVX512-BF16, emulated and
slower on one without; largest error about 1e-2 on the bundled ``xray-x4`` (under 3 8-bit grey levels;
``bench/upscale_speed.py``) and within 0.007 dB of fp32 PSNR per source on the validation split (README,
Speed).

Each predictor also knows its memory (``predictor.memory``, a :class:`ForwardMemory`): the bytes of tensors
alive at the peak of a forward, measured once per channel count on two small probe inputs and scaled by area,
which tiled inference uses to size its tiles for ``InferenceSettings.max_memory``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from medsr.devices import resolve_device
from medsr.errors import ConfigError
from medsr.extras import require
from medsr.infer.export import inference_form, onnx_bytes
from medsr.infer.settings import PRECISIONS, InferenceSettings
from medsr.infer.tiling import tile_needs
from medsr.models import adapt_channels

# Peak RSS growth over the measured peak of live tensors on CPU (swift-srresnet-xray-x4, 512x512 input,
# bench/upscale_memory.py): one whole-image forward 1.03 with glibc's default allocator and 1.26-1.29 with
# medsr.allocator.tune_allocator (as `medsr upscale` runs); tiled with the tuned allocator, whose heap fragments
# between tiles, 1.3-1.6 (2x2 tiles of 288) and 1.4-1.65 (5x5 tiles of 154), varying from run to run; 800x350
# RGB (three channels, 2x6 tiles of 207x187) 1.7-2.2. oneDNN's scratch space and the allocator's slack are not
# tensors, so the tensor peak is multiplied by this: RSS growth stays near the budget, not always under it.
ALLOCATOR_SLACK = 1.5
_PROBE_SIDES = (16, 32)


class _PeakTensorBytes(TorchFunctionMode):
    """Counts the bytes of the storages of tensors that torch functions return while active (views counted
    once) and keeps the largest total alive after any call: what a forward needs beyond its weights and input.

    A function mode, not a dispatch mode: the same totals here, without the first dispatch mode's import of
    torch._dynamo (2.5 s and 140 MB of RSS).
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage address -> [bytes, Python tensors alive on it]
        self.now = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                self.now -= entry[0]
                del self.live[key]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                key = storage.data_ptr()
                entry = self.live.get(key)
                if entry is None:
                    entry = self.live[key] = [storage.nbytes(), 0]
                    self.now += entry[0]
                entry[1] += 1
                weakref.finalize(tensor, self._release, key)
        self.peak = max(self.peak, self.now)
        return out


def peak_tensor_bytes(run: Callable[[], object]) -> int:
    """The most bytes of tensors that ``run()`` creates alive at once (its result included)."""
    with _PeakTensorBytes() as mode:
        run()
    return mode.peak


class ForwardMemory:
    """``memory(n, c, h, w)``: bytes a predictor holds while it runs an ``(n, c, h, w)`` batch (a tiling
    :data:`~medsr.infer.tiling.MemoryCost`).

    Measured, not guessed: the peak bytes of live tensors during a forward on ``c``-channel probes of 16x16
    and 32x32 give bytes per input pixel and a fixed part (bf16 weight copies); to those come the input batch
    and tiling's blending temporaries (two output tiles); the sum is multiplied by :data:`ALLOCATOR_SLACK`. One
    measurement per channel count, on first use.
    """

    def __init__(self, predictor: TorchPredictor) -> None:
        self._predictor = weakref.ref(predictor)
        sy, sx = predictor.scale
        self._outside = 4 * (1 + 2 * sy * sx)  # float32 bytes per input pixel and channel outside the forward
        self._fits: dict[int, tuple[float, float]] = {}

    def fit(self, channels: int) -> tuple[float, float]:
        """``(bytes per input pixel of one image, fixed bytes)`` of a forward on ``channels`` channels."""
        if channels not in self._fits:
            predictor = self._predictor()
            if predictor is None:
                raise RuntimeError("the predictor this memory estimate belongs to is gone")
            small, large = (peak_tensor_bytes(lambda side=side: predictor(
                np.full((1, channels, side, side), 0.5, dtype=np.float32))) for side in _PROBE_SIDES)
            a, b = (side * side for side in _PROBE_SIDES)
            per_pixel = max((large - small) / (b - a), 0.0)
            self._fits[channels] = (per_pixel, max(small - per_pixel * a, 0.0))
        return self._fits[channels]

    def __call__(self, n: int, c: int, h: int, w: int) -> float:
        per_pixel, fixed = self.fit(c)
        return ALLOCATOR_SLACK * (fixed + n * h * w * (per_pixel + self._outside * c))


class TorchPredictor:
    """Runs a PyTorch generator on numpy batches: ``(N, C, h, w)`` float32 -> ``(N, C, h*sy, w*sx)`` float32.

    ``fast=True`` (the default path) runs a collapsed, BatchNorm-folded, channels-last copy
    (:func:`medsr.infer.export.inference_form`); ``fast=False`` runs the model exactly as given. C may differ
    from the model's channels (see ``medsr.models.adapt_channels``). ``tile_multiple`` and ``tile_context`` are
    the model's (1 and 0 where it has none; :func:`medsr.infer.tiling.tile_needs`).
    """

    def __init__(
        self, model: nn.Module, device: torch.device, *, precision: str = "fp32", fast: bool = True
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
        self.scale: tuple[int, int] = tuple(model.scale)  # type: ignore[assignment]
        self.in_channels = int(model.in_channels)
        self.tile_multiple, self.tile_context = tile_needs(model)
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
        self.memory = ForwardMemory(self)

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
        ort = require("onnxruntime", "onnx", "the onnxruntime backend")  # optional and heavy: loaded only here

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
        meta = self.session.get_modelmeta().custom_metadata_map  # written by onnx_bytes: the graph's own needs
        self.tile_multiple = int(meta.get("tile_multiple", 1))
        self.tile_context = int(meta.get("tile_context", 0))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        lr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(["sr"], {"lr": lr})[0])


class OnnxPredictor:
    """Runs the exported ONNX graph (BatchNorm folded) with ONNX Runtime; same interface as TorchPredictor.

    ``tile_multiple`` and ``tile_context`` are read back from the graph's metadata
    (:func:`medsr.infer.export.onnx_metadata`).
    """

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.module = _OnnxModule(model, device)
        self.scale: tuple[int, int] = self.module.scale  # type: ignore[assignment]
        self.in_channels = self.module.in_channels
        self.tile_multiple, self.tile_context = tile_needs(self.module)
        self._twin = TorchPredictor(model, device)  # ONNX Runtime's arena is opaque: the torch graph's memory
        self.memory = self._twin.memory

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
