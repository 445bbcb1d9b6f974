"""The sidebar's "Faint findings" choice: how close the result stays to its input, as InferenceSettings.

A model that removes noise can remove faint round findings with it, and what it gives back in detectability
it costs in PSNR (docs/detectability.md; each model card's "Small findings"). ``medsr upscale`` lets the user
choose with ``--strength`` and ``--consistency project --consistency-kernel K --fidelity F``; this module maps
the app's choice onto those same :class:`~medsr.infer.InferenceSettings` fields (nothing is reimplemented:
:func:`medsr.infer.finish_output` applies them), so the page gives what ``medsr upscale`` with the same flags
gives, pixel for pixel.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from medsr.infer import InferenceSettings
from medsr.infer.settings import CONSISTENCY_KERNELS

AS_TRAINED = "As trained"
CLOSER = "Closer to the input"
STRENGTH = "Strength"
CHOICES = (AS_TRAINED, CLOSER, STRENGTH)
"""The choices, in the order the sidebar offers them (:data:`CLOSER` only for a model that upscales)."""

CLOSER_FIDELITY = 0.5
"""How far "Closer to the input" moves the output to its consistency projection: the setting the test split
measured (``xray-x4``: no size x contrast class below bicubic for either observer, at about bicubic's PSNR)."""

DEFAULT_STRENGTH = 0.5

TRADE = "Trades PSNR for the detectability of faint findings"
HELP = (f"{TRADE}: As trained gains the most PSNR, Closer to the "
        "input and a lower Strength keep more of the input's faint detail (and its noise). The model card's "
        "Small findings gives both figures for this model.")

KERNEL_HELP = ("The degradation the input is assumed to come from (`--consistency-kernel`): box, a detector "
               "averaging blocks of pixels; bicubic, Pillow's bicubic downscale. {advice}")


def choices(scale: tuple[int, int]) -> list[str]:
    """What the sidebar offers a model of ``scale``: no projection for one that keeps the size (a CT model
    at x1 has no downscale to be consistent with; its Strength blends toward the input itself)."""
    return [c for c in CHOICES if c != CLOSER or tuple(scale) != (1, 1)]


def training_kernel(meta: dict[str, Any] | None) -> str | None:
    """The consistency kernel of the LR degradation ``meta`` (a checkpoint header) says the model was trained on:
    ``bicubic`` (and ``ultrasound``, bicubic along the columns) -> bicubic, ``box-noise`` -> box, ``realistic``
    -> the one of its ``kernels`` drawn most often (``xray-x4``: bicubic,box,box,gaussian -> box); None when the
    header does not say or names no linear kernel."""
    config = ((meta or {}).get("training") or {}).get("config") or {}
    degradation = str(config.get("degradation") or "")
    if degradation in ("bicubic", "ultrasound"):
        return "bicubic"
    if degradation == "box-noise":
        return "box"
    if degradation == "realistic":
        drawn = str((config.get("degradation_params") or {}).get("kernels") or "").split(",")
        counts = Counter(k.strip() for k in drawn if k.strip() in CONSISTENCY_KERNELS)
        if counts:
            return max(CONSISTENCY_KERNELS, key=lambda k: counts[k])  # ties: bicubic, the CLI's default
    return None


def kernel_advice(meta: dict[str, Any] | None, name: str) -> tuple[str, str]:
    """``(kernel to offer first, why)``: the model's training kernel (:func:`training_kernel`), else
    bicubic, ``medsr upscale``'s default."""
    kernel = training_kernel(meta)
    if kernel is None:
        return "bicubic", (f"{name}'s header does not say which kernel it was trained on: bicubic is "
                           "`medsr upscale`'s default; choose box for a detector's own low-resolution image.")
    return kernel, f"{name} was trained mostly on {kernel}-downscaled inputs, so {kernel} is offered first."


def settings_for(choice: str, *, kernel: str = "bicubic", strength: float = DEFAULT_STRENGTH,
                 base: InferenceSettings | None = None) -> InferenceSettings:
    """The :class:`InferenceSettings` of a sidebar ``choice``: ``base`` (default: ``medsr upscale``'s defaults)
    as trained, with ``consistency="project"``, ``kernel`` and :data:`CLOSER_FIDELITY`, or with ``strength``."""
    base = base or InferenceSettings()
    if choice == AS_TRAINED:
        return base
    if choice == CLOSER:
        return base.with_(consistency="project", consistency_kernel=kernel, fidelity=CLOSER_FIDELITY)
    if choice == STRENGTH:
        return base.with_(strength=float(strength))
    raise ValueError(f"unknown faint-findings choice {choice!r}; choose one of: {', '.join(CHOICES)}")


def flags(settings: InferenceSettings) -> str:
    """The ``medsr upscale`` flags that give ``settings``' output ("" as trained): what the page says it ran."""
    parts = []
    if settings.strength != 1.0:
        parts.append(f"--strength {settings.strength:g}")
    if settings.consistency == "project":
        parts.append(f"--consistency project --consistency-kernel {settings.consistency_kernel} "
                     f"--fidelity {settings.fidelity:g}")
    return " ".join(parts)


def for_other_model(settings: InferenceSettings, model: Any, name: str) -> tuple[InferenceSettings, str]:
    """``settings`` for a model the page did not choose them for (Batch gives a CT or ultrasound DICOM the
    bundled model of its Modality), and a note when they changed: a model that keeps the size has no
    consistency projection (it runs without it, its strength kept), and another upscaling model's projection
    uses that model's own training kernel (:func:`training_kernel`)."""
    if settings.consistency != "project":
        return settings, ""
    if tuple(int(s) for s in model.scale) == (1, 1):
        return (settings.with_(consistency="none"),
                f"{name} keeps the image size: the consistency projection does not apply, its files ran without it.")
    kernel = training_kernel(getattr(model, "meta", None))
    if kernel is None or kernel == settings.consistency_kernel:
        return settings, ""
    return (settings.with_(consistency_kernel=kernel),
            f"{name} was trained on {kernel}-downscaled inputs: its files were projected with the {kernel} kernel.")
