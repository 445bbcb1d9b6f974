"""Inference-only model rewrites: re-parameterised layers collapsed, BatchNorm folded, ONNX export.

In eval mode a BatchNorm is a per-channel affine map, so ``bn(conv(x))`` equals one convolution with scaled
weights and a shifted bias: folding it removes a full pass over every activation, and the exported graph is
smaller and faster. Networks trained with parallel branches (``plainrep``) say how to sum them into single
convolutions through a ``collapse()`` method; :func:`inference_form` applies both rewrites.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import warnings
from pathlib import Path

import torch
import torch.fx
from torch import nn

from medsr.atomic import atomic_path
from medsr.errors import ImageWriteError
from medsr.extras import require

log = logging.getLogger(__name__)

_KEPT_ATTRIBUTES = ("scale", "in_channels", "meta", "name", "tile_multiple", "tile_context")


def _fold_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv equal to ``bn(conv(x))`` with ``bn`` in eval mode (its running statistics)."""
    fused = copy.deepcopy(conv)
    std = torch.sqrt(bn.running_var.double() + bn.eps)
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(std)
    factor = gamma / std
    weight = conv.weight.double() * factor.reshape(-1, *([1] * (conv.weight.dim() - 1)))
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(std)
    bias = (bias - bn.running_mean.double()) * factor + beta
    fused.weight = nn.Parameter(weight.to(conv.weight.dtype), requires_grad=False)
    fused.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)
    return fused


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` where every BatchNorm2d fed only by a Conv2d is folded into that conv.

    The pattern is found in the traced data flow (``torch.fx``), not guessed from the order of submodules. The
    model's ``scale``, ``in_channels`` and ``meta`` attributes are kept. A model without BatchNorm is returned as
    an eval-mode copy untraced. If the model cannot be traced, an unfolded eval-mode copy is returned (same
    outputs, just slower) and a warning is logged.
    """
    model = copy.deepcopy(model).eval()
    if not any(isinstance(module, nn.BatchNorm2d) for module in model.modules()):
        model.folded_batchnorms = 0
        return model  # nothing to fold: no trace, and no warning for a network that cannot be traced
    try:
        graph_module = torch.fx.symbolic_trace(model)
    except Exception as exc:  # any tracing failure means "cannot fold", never a wrong model
        log.warning("BatchNorm not folded: %s cannot be traced (%s)", type(model).__name__, exc)
        return model
    modules = dict(graph_module.named_modules())
    folded = 0
    for node in list(graph_module.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        source = node.args[0]
        if not (
            isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and isinstance(modules.get(source.target), nn.Conv2d)
            and len(source.users) == 1
        ):
            continue
        bn = modules[node.target]
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        fused = _fold_into_conv(modules[source.target], bn)
        parent_name, _, attr = source.target.rpartition(".")
        setattr(graph_module.get_submodule(parent_name) if parent_name else graph_module, attr, fused)
        modules[source.target] = fused
        node.replace_all_uses_with(source)
        graph_module.graph.erase_node(node)
        folded += 1
    graph_module.graph.lint()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
    for name in _KEPT_ATTRIBUTES:
        if hasattr(model, name):
            setattr(graph_module, name, getattr(model, name))
    graph_module.folded_batchnorms = folded
    return graph_module.eval()


def inference_form(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` computing the same function faster: branches collapsed, BatchNorm folded.

    The original model is left untouched (it may still be training).
    """
    collapse = getattr(model, "collapse", None)
    if callable(collapse):
        collapsed = copy.deepcopy(model).eval().collapse()
        for name in _KEPT_ATTRIBUTES:
            if hasattr(model, name):
                setattr(collapsed, name, getattr(model, name))
        model = collapsed
    return fold_batchnorm(model)


def onnx_bytes(model: nn.Module, *, opset: int = 17) -> bytes:
    """The ONNX graph of ``model`` (:func:`inference_form`) with dynamic batch, height and width, as bytes.

    Input ``lr`` is ``(N, C, h, w)`` float32 in [0, 1], output ``sr`` is ``(N, C, h*sy, w*sx)``. The graph's
    metadata properties hold :func:`onnx_metadata` (ONNX Runtime: ``session.get_modelmeta().custom_metadata_map``).
    """
    onnx = require("onnx", "onnx", "ONNX export")  # torch's exporter needs it; checked first for a one-line error
    folded = inference_form(model).cpu().float()
    channels = int(getattr(model, "in_channels", 1))
    example = torch.rand(1, channels, 24, 20)
    buffer = io.BytesIO()
    # The TorchScript-based exporter: 0.5 s here against 10-30 s for the torch.export-based one, same graph
    # quality for these convolution-only networks. Its deprecation warning is not the user's concern.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            folded,
            (example,),
            buffer,
            input_names=["lr"],
            output_names=["sr"],
            dynamic_axes={
                "lr": {0: "batch", 2: "height", 3: "width"},
                "sr": {0: "batch", 2: "out_height", 3: "out_width"},
            },
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in onnx_metadata(model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def onnx_metadata(model: nn.Module) -> dict[str, str]:
    """What an exported graph records of ``model``: ``scale`` ("sy,sx"), ``in_channels``, ``tile_multiple`` and
    ``tile_context`` (tiled inference's needs, :func:`medsr.infer.tiling.tile_needs`), ``producer`` and, where
    the model has one, ``medsr_meta`` (its ``meta`` dict as JSON)."""
    sy, sx = getattr(model, "scale", (1, 1))
    meta = {"scale": f"{sy},{sx}", "in_channels": str(getattr(model, "in_channels", 1)),
            "tile_multiple": str(int(getattr(model, "tile_multiple", 1))),
            "tile_context": str(int(getattr(model, "tile_context", 0))), "producer": "medsr"}
    if isinstance(getattr(model, "meta", None), dict):
        meta["medsr_meta"] = json.dumps(model.meta, default=str)
    return meta


def export_onnx(model: nn.Module, path: str | Path, *, opset: int = 17) -> Path:
    """Write ``model`` as a checked ONNX file at ``path`` (atomically) and return the path.

    The graph is validated with ``onnx.checker`` and records medsr's metadata (:func:`onnx_metadata`).
    """
    onnx = require("onnx", "onnx", "ONNX export")
    path = Path(path)
    proto = onnx.load_from_string(onnx_bytes(model, opset=opset))
    onnx.checker.check_model(proto, full_check=True)
    try:
        with atomic_path(path) as tmp:
            onnx.save(proto, str(tmp))
    except OSError as exc:
        raise ImageWriteError(path, exc.strerror or str(exc)) from exc
    return path
