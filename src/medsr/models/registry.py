"""Architectures by name, medsr's checkpoint format, and conversion of foreign checkpoints.

Builders are ``"module:function"`` strings imported on first use, so one architecture's import cost (or a
broken import) never touches the others.

medsr checkpoint = one ``.safetensors`` file: the ``state_dict`` tensors, plus a JSON header stored in the
safetensors metadata under the key ``"medsr"`` (see :func:`model_header`). Loading never unpickles arbitrary
objects: foreign ``.pth`` files go through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib
import importlib.resources
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from medsr.atomic import atomic_path
from medsr.devices import resolve_device
from medsr.errors import CheckpointError, ConfigError
from medsr.lazy import LazyRegistry

GENERATORS: dict[str, str] = {
    "srresnet": "medsr.models.srresnet:build_generator",
    "srgan": "medsr.models.srresnet:build_generator",
    "swift-srgan": "medsr.models.swift_srgan:build_generator",
    "plainrep": "medsr.models.plainrep:build_generator",
    "unet": "medsr.models.unet:build_generator",
}
DISCRIMINATORS: dict[str, str] = {
    "srresnet": "medsr.models.srresnet:build_discriminator",
    "srgan": "medsr.models.srresnet:build_discriminator",
    "swift-srgan": "medsr.models.swift_srgan:build_discriminator",
    "plainrep": "medsr.models.srresnet:build_discriminator",
    "unet": "medsr.models.srresnet:build_discriminator",
}

FORMAT_VERSION = 1
INTENSITY = "[0,1] linear to the image's value_range"


def _resolve_builder(table: dict[str, str], arch: str, what: str) -> Any:
    if arch not in table:
        raise ConfigError(f"unknown {what} architecture {arch!r}; choose one of: {', '.join(sorted(table))}")
    return LazyRegistry(table)[arch]


def build_generator(
    arch: str, *, in_channels: int = 1, scale: int | tuple[int, int] = 4, global_skip: bool | None = None, **kw: Any
) -> nn.Module:
    """Build a generator by name: (N, C, h, w) in [0, 1] -> (N, C, h*sy, w*sx).

    ``scale`` is an int or (sy, sx) (e.g. (1, 4) upsamples width only). ``global_skip`` (learn a residual over
    bicubic) defaults to the architecture's own choice: on for plainrep, off for the published networks.
    Extra keywords (``num_channels``, ``num_blocks``, ``num_convs``) go to the architecture. The module gets
    ``.arch``, ``.arch_args``, ``.scale`` (sy, sx), ``.in_channels`` and ``.kind == "generator"``.
    """
    builder = _resolve_builder(GENERATORS, arch, "generator")
    if in_channels not in (1, 3):
        raise ConfigError(f"in_channels must be 1 (grayscale) or 3 (RGB), got {in_channels}")
    try:
        skip = {} if global_skip is None else {"global_skip": global_skip}
        model = builder(in_channels=in_channels, scale=scale, **skip, **kw)
    except TypeError as e:
        raise ConfigError(f"bad arguments for generator {arch!r}: {e}") from e
    model.kind = "generator"
    model.arch = arch
    model.arch_args = {
        "in_channels": in_channels,
        "scale": list(model.scale),
        "global_skip": bool(model.global_skip),
        **kw,
    }
    return model


def build_discriminator(arch: str, in_channels: int = 1, **kw: Any) -> nn.Module:
    """Build a discriminator by name: (N, C, H, W) in [0, 1] -> (N, 1) logits, any H, W >= 16."""
    builder = _resolve_builder(DISCRIMINATORS, arch, "discriminator")
    try:
        model = builder(in_channels=in_channels, **kw)
    except TypeError as e:
        raise ConfigError(f"bad arguments for discriminator {arch!r}: {e}") from e
    model.kind = "discriminator"
    model.arch = arch
    model.arch_args = {"in_channels": in_channels, **kw}
    return model


# --- medsr checkpoint format --------------------------------------------------------------------------------


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def model_header(model: nn.Module, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON header stored with a model: what to rebuild it, and what its pixels mean.

    Keys: format, version, kind, arch, arch_args, in_channels, channels ("gray"/"rgb"), scale [sy, sx]
    (generators), intensity, plus everything in ``meta`` (training data, metrics, ...). The model's own keys
    win over ``meta``, so passing an old checkpoint's ``.meta`` back in stays consistent.
    """
    model = _unwrap(model)
    if not hasattr(model, "arch") or not hasattr(model, "arch_args"):
        raise ConfigError("save_model needs a model made by medsr.models.build_generator/build_discriminator")
    core: dict[str, Any] = {
        "format": "medsr-checkpoint",
        "version": FORMAT_VERSION,
        "kind": getattr(model, "kind", "generator"),
        "arch": model.arch,
        "arch_args": dict(model.arch_args),
        "in_channels": model.in_channels,
        "channels": "gray" if model.in_channels == 1 else "rgb",
        "intensity": INTENSITY,
    }
    if hasattr(model, "scale"):
        core["scale"] = list(model.scale)
    header = {**dict(meta or {}), **core}
    return json.loads(json.dumps(header, default=_json_default))


def save_model(model: nn.Module, path: str | Path, meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` as a medsr ``.safetensors`` checkpoint with its JSON header, atomically."""
    header = model_header(model, meta)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in _unwrap(model).state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"medsr": json.dumps(header)})
    return path


def model_from_header(
    header: Mapping[str, Any], state: Mapping[str, torch.Tensor], source: str | Path
) -> nn.Module:
    """Rebuild the model a header describes and fill it strictly from ``state``."""
    try:
        arch, args = header["arch"], dict(header.get("arch_args", {}))
        if header.get("kind", "generator") == "discriminator":
            model = build_discriminator(arch, **args)
        else:
            model = build_generator(arch, **args)
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(source, f"header does not describe a medsr model ({e})") from e
    _load_strict(model, state, source)
    model.meta = dict(header)
    return model


def _short(names: list[str], n: int = 6) -> str:
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def _load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Load ``state`` into ``model``: every parameter/buffer filled, every tensor used, shapes equal."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_short(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes: {_short(wrong)}")
    if problems:
        raise CheckpointError(
            source, f"weights do not fit {getattr(model, 'arch', 'the model')}: " + "; ".join(problems)
        )
    model.load_state_dict(state, strict=True)


# --- the reference Swift-SRGAN format -----------------------------------------------------------------------

#: PReLU weights the reference code creates but never applies (its ConvBlock with use_act=False).
_UNUSED_REFERENCE_KEYS = re.compile(r"^(residual\.\d+\.block2\.act\.weight|convblock\.act\.weight)$")


def is_swift_srgan_state(state: Mapping[str, Any]) -> bool:
    """True for a state dict with the reference Swift-SRGAN generator's key names."""
    return "initial.cnn.depthwise.weight" in state and "final_conv.pointwise.weight" in state


def convert_swift_srgan_state(state: Mapping[str, torch.Tensor], source: str | Path) -> nn.Module:
    """Build a ``swift-srgan`` generator from a reference state dict, inferring its shape from the tensors.

    in_channels = rows of the first depthwise conv, width = rows of the first pointwise conv, blocks =
    ``residual.N`` indices, scale = product of each upsampler's sqrt(out / width) (so a reference "x8"
    checkpoint that really has four x2 stages loads as what it is, x16). Strict: the
    only dropped tensors are the unused PReLU weights; anything else missing, extra or misshapen is an error.
    """
    sd = {k: v for k, v in state.items() if not _UNUSED_REFERENCE_KEYS.match(k)}
    try:
        in_channels = int(sd["initial.cnn.depthwise.weight"].shape[0])
        width = int(sd["initial.cnn.pointwise.weight"].shape[0])
    except (KeyError, AttributeError, IndexError) as e:
        raise CheckpointError(source, f"not a Swift-SRGAN generator state dict ({e})") from e
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"residual\.(\d+)\.", k))}
    factors = []
    while (key := f"upsampler.{len(factors)}.conv.pointwise.weight") in sd:
        r2 = int(sd[key].shape[0]) // width
        r = math.isqrt(r2)
        if r * r != r2 or r < 2:
            raise CheckpointError(
                source, f"{key} has {sd[key].shape[0]} outputs: not width x r^2 for width {width}"
            )
        factors.append(r)
    scale = math.prod(factors)
    try:
        model = build_generator(
            "swift-srgan", in_channels=in_channels, scale=scale, num_channels=width, num_blocks=len(blocks)
        )
    except ConfigError as e:
        raise CheckpointError(source, f"cannot rebuild the Swift-SRGAN generator: {e}") from e
    _load_strict(model, sd, source)
    model.meta = model_header(
        model,
        {
            "source": {
                "format": "swift-srgan-reference",
                "path": str(source),
                "dropped_unused_keys": len(state) - len(sd),
            }
        },
    )
    return model


# --- loading ------------------------------------------------------------------------------------------------


def _weights_dir() -> Path:
    return Path(str(importlib.resources.files("medsr") / "weights"))


def list_bundled_models() -> list[dict[str, Any]]:
    """Models shipped in ``medsr/weights``: ``[{"name", "weights", "card", "meta"}]`` by name.

    A bundled model is ``<name>.safetensors`` with its model card ``<name>.yaml`` beside it (``card``: a
    :class:`medsr.models.cards.Card`, or None if missing); ``meta`` is the weights' JSON header. The card's test
    scores are the header's ``meta["metrics"]["test"]``; its sha256 is checked when the model is loaded.
    """
    from medsr.models.cards import read_card

    folder = _weights_dir()
    if not folder.is_dir():
        return []
    out = []
    for w in sorted(folder.glob("*.safetensors")):
        card = w.with_suffix(".yaml")
        out.append({"name": w.stem, "weights": w, "card": read_card(card) if card.is_file() else None,
                    "meta": read_header(w)})
    return out


def _verify_bundled(path: Path) -> None:
    """A bundled weights file must match the sha256 of its card (CheckpointError otherwise)."""
    card = path.with_suffix(".yaml")
    if path.parent.resolve() == _weights_dir().resolve() and card.is_file():
        from medsr.models.cards import read_card, verify_weights

        verify_weights(read_card(card), path)


def _resolve(name_or_path: str | Path) -> Path:
    if not str(name_or_path).strip():  # Path("") is ".", the current folder: say what was wrong instead
        names = ", ".join(sorted(m["name"] for m in list_bundled_models())) or "none"
        raise ConfigError(f"the model name is empty; give a bundled model ({names}) or a checkpoint file")
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.exists():
        raise CheckpointError(path, "not a file")
    bundled = {m["name"]: m["weights"] for m in list_bundled_models()}
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    names = ", ".join(sorted(bundled)) or "none"
    raise CheckpointError(name_or_path, f"no such file, and not a bundled model name (bundled: {names})")


def _sniff(path: Path) -> str:
    """'safetensors' or 'torch' from the first bytes, whatever the suffix says."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"
    if head[:2] == b"PK" or head[:1] == b"\x80":  # torch zip archive / legacy pickle
        return "torch"
    raise CheckpointError(path, "not a checkpoint (neither a safetensors file nor a PyTorch file)")


def _read_safetensors(path: Path, tensors: bool) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The medsr JSON header of a safetensors file, and its tensors when asked for."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}  # noqa: SIM118
    except Exception as e:
        raise CheckpointError(path, f"unreadable safetensors file ({e})") from e
    if "medsr" not in metadata:
        raise CheckpointError(
            path, "safetensors file without a medsr header (not written by medsr.save_model)"
        )
    try:
        return json.loads(metadata["medsr"]), state
    except json.JSONDecodeError as e:
        raise CheckpointError(path, f"medsr header is not valid JSON ({e})") from e


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a medsr ``.safetensors`` checkpoint, without loading its weights."""
    return _read_safetensors(Path(path), tensors=False)[0]


def _load_safetensors(path: Path) -> nn.Module:
    header, state = _read_safetensors(path, tensors=True)
    return model_from_header(header, state, path)


def _load_torch(path: Path) -> nn.Module:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(path, f"not a loadable PyTorch file with weights_only=True ({reason})") from e
    if not isinstance(obj, Mapping):
        raise CheckpointError(path, f"expected a dict of tensors, found {type(obj).__name__}")
    if "medsr" in obj:  # medsr training state: {"medsr": header, "model": state_dict, ...}
        header = obj["medsr"]
        header = json.loads(header) if isinstance(header, str) else header
        state = obj.get("model", obj.get("generator"))
        if not isinstance(state, Mapping):
            raise CheckpointError(path, "medsr training state without a 'model' state dict")
        return model_from_header(header, state, path)
    state = obj.get("model", obj)
    if isinstance(state, Mapping) and is_swift_srgan_state(state):
        return convert_swift_srgan_state(state, path)
    raise CheckpointError(
        path, f"unknown checkpoint layout (top-level keys: {_short(sorted(map(str, obj)))})"
    )


#: The model that ``medsr upscale``, ``medsr.upscale`` and the web app use when none is named.
DEFAULT_MODEL = "xray-x4"

ModelLike = str | Path | nn.Module | None
_CACHE: dict[tuple[str, int, str], nn.Module] = {}


def load_model(
    name_or_path: ModelLike = None, device: str | torch.device = "cpu", *, cache: bool = True
) -> nn.Module:
    """The one way to get a model: in eval mode, with a ``.meta`` dict (its JSON header), on ``device``.

    Accepts ``None`` (the default bundled model, :data:`DEFAULT_MODEL`), a bundled model name
    (``list_bundled_models``), a medsr ``.safetensors`` file, a reference Swift-SRGAN checkpoint
    (``{"model": state_dict}`` in a ``.pth``/``.pth.tar``), a medsr training-state file, or a module (returned
    as it is). A bundled model's weights are first checked against the sha256 of its card (a damaged or
    replaced file raises CheckpointError). Loaded models are cached per process by (file, modification time,
    device), so the CLI, the API and the web app load each model once; pass ``cache=False`` for a private copy
    to change. Anything unreadable raises CheckpointError(path, reason).
    """
    if isinstance(name_or_path, nn.Module):
        return name_or_path
    if name_or_path is not None and not isinstance(name_or_path, str | os.PathLike):
        raise ConfigError(f"model must be a name, a path or an nn.Module, got {type(name_or_path).__name__}")
    name = DEFAULT_MODEL if name_or_path is None else name_or_path
    path = _resolve(name)
    dev = resolve_device(device)
    key = (str(path.resolve()), path.stat().st_mtime_ns, str(dev))
    if cache and key in _CACHE:
        return _CACHE[key]
    _verify_bundled(path)
    model = _load_safetensors(path) if _sniff(path) == "safetensors" else _load_torch(path)
    model = model.to(dev).eval()
    model.meta.setdefault("name", path.stem if path.parent == _weights_dir() else path.name)
    if cache:
        _CACHE[key] = model
    return model


def model_name(model: nn.Module) -> str:
    """A short name for reports and DICOM DerivationDescription: the bundled name or file, else the arch."""
    meta = getattr(model, "meta", None) or {}
    return str(meta.get("name") or meta.get("arch") or getattr(model, "arch", type(model).__name__))


# --- running a model on images with another channel count ---------------------------------------------------


def adapt_channels(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on (N, C, h, w) whatever its ``in_channels``; returns (N, C, H, W) with the input's C.

    Rule: a 3-channel model given grayscale (C=1) sees the gray replicated into three channels, and its output
    is turned back into gray with the mean of the three channels. A 1-channel model given C channels runs on
    each channel separately.
    """
    c, mc = x.shape[1], model.in_channels
    if c == mc:
        return model(x)
    if c == 1 and mc == 3:
        return model(x.expand(-1, 3, -1, -1)).mean(dim=1, keepdim=True)
    if mc == 1:
        n, _, h, w = x.shape
        y = model(x.reshape(n * c, 1, h, w))
        return y.reshape(n, c, *y.shape[-2:])
    raise ConfigError(f"cannot run a {mc}-channel model on {c}-channel images")
