"""Optional dependencies: which ``pip install`` extra provides each one, and the one-line error when it is missing.

The core (reading, upscaling, scoring, training) needs none of them. ``medsr[app]`` adds the web app (Streamlit),
``medsr[onnx]`` ONNX export and the ONNX Runtime backend, ``medsr[tensorboard]`` TensorBoard logging during
training, ``medsr[ray]`` ``medsr upscale --engine ray``, ``medsr[plot]`` the plots of ``medsr detectability``;
``medsr[all]`` adds them all.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from medsr.errors import MedsrError

#: extra -> the import names it provides (pyproject.toml's [project.optional-dependencies] lists the packages)
EXTRAS: dict[str, tuple[str, ...]] = {
    "app": ("streamlit",),
    "onnx": ("onnx", "onnxruntime"),
    "tensorboard": ("tensorboard",),
    "serve": ("pynetdicom", "dicomweb_client", "prometheus_client", "pydantic"),
    "ray": ("ray",),
    "plot": ("matplotlib",),
}


class MissingExtraError(MedsrError):
    """An optional dependency is not installed; the message says which extra to install."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra`` (``pip install 'medsr[onnx]'``)."""
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    return f"pip install 'medsr[{extra}]'"


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the optional package {module.partition('.')[0]}, which is not installed: "
            f"{install_hint(extra)} (or 'medsr[all]')"
        ) from exc
