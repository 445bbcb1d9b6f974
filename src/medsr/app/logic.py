"""What the web app computes, without Streamlit: reading uploads, display windows, runs, downloads.

Everything here is a plain function of arrays and :class:`~medsr.io.image.MedicalImage`s, so it is tested
without a browser. Arrays are ``(H, W, C)`` float32 in [0, 1] (C = 1 or 3) unless a docstring says
``uint8``: those are display images, ``(H, W)`` grey or ``(H, W, 3)`` RGB, ready for ``st.image``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from medsr.app import exports
from medsr.app.exports import Download
from medsr.degrade import lr_scale
from medsr.degrade.bicubic import pil_resize
from medsr.devices import resolve_device
from medsr.errors import ConfigError, ImageReadError, os_reason
from medsr.infer import InferenceSettings, finish_output, upscale_array, upscaled_image
from medsr.infer.modality import MODALITY_MODELS, model_for_modality
from medsr.intensity import for_model, model_units, restore
from medsr.io import read_image, write_image
from medsr.io.find import image_key
from medsr.io.image import DEFAULT_MAX_PIXELS, MedicalImage, modality_values
from medsr.models import DEFAULT_MODEL, list_bundled_models, model_name
from medsr.protocol import Protocol, quantisation_levels, quantise, resize_bit_depth

SETTINGS = InferenceSettings()  # the app runs models exactly as `medsr upscale` does by default (see also
# medsr.app.fidelity: the sidebar's Faint findings choice changes strength / consistency / fidelity only)

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
"""Uploads larger than this are refused (Streamlit's ``server.maxUploadSize`` is set to the same 200 MB)."""

DEMO_MAX_SIDE = 1024
"""The app works on at most this many input pixels per side (centre crop), so that a page stays responsive."""

MIN_SIDE = 16
"""Model inputs smaller than this per side are refused: a few pixels hold no anatomy to restore, and their
run time (all overhead) would say nothing about the model's speed."""

AUTO_MODEL = "Automatic: by the image's modality"
"""The model picker's first choice: the bundled model ``medsr upscale`` runs without ``--model``."""

WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "Lung": (1500.0, -600.0),
    "Mediastinum": (350.0, 50.0),
    "Bone": (2000.0, 300.0),
}
"""CT display windows as (width, level) in Hounsfield units."""

SIMULATE_DEGRADATIONS = ("bicubic", "bicubic-blur-noise", "endoscopy", "ultrasound", "ct-sparse-view")
"""Degradations Simulate mode can offer (``ct-sinogram`` gives a sinogram, not an image to look at); a model is
offered those it can undo (:func:`compatible_degradations`)."""

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".tar")


# --- input --------------------------------------------------------------------------------------------------


MAX_UPLOAD_NAME_BYTES = 200
"""Uploaded file names are cut to this many UTF-8 bytes (keeping the suffix) before they are used."""


def upload_name(name: str, max_bytes: int = MAX_UPLOAD_NAME_BYTES) -> str:
    """A safe base name for an uploaded file's ``name``: what the app shows and stores it under.

    Path parts (``/`` and ``\\``), control characters (NUL, newlines) and leading or trailing dots and spaces
    are dropped, so ``".."`` or ``"../../etc/passwd.png"`` cannot name anything outside the app's own folder;
    the result is at most ``max_bytes`` UTF-8 bytes, keeping a short suffix, and never empty (``"upload"``).
    """
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip(" .")
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem or len(suffix) > 16:
        stem, suffix = base, ""
    suffix = f".{suffix}" if suffix else ""
    room = max(max_bytes - len(suffix.encode()), 1)
    stem = stem.encode()[:room].decode(errors="ignore").rstrip(" .")
    return f"{stem}{suffix}" if stem else "upload" + suffix


def read_upload(
    name: str, data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> MedicalImage:
    """Read uploaded bytes with :func:`medsr.io.read_image` via a private temporary folder.

    The folder is removed before returning. Every failure is one :class:`ImageReadError` line naming the upload
    by its safe name (:func:`upload_name`), never the temporary path: too large (bytes or pixels), corrupt,
    unsupported, or the upload could not be stored.
    """
    shown = upload_name(name)
    if len(data) > max_bytes:
        raise ImageReadError(
            shown, f"file too large: {len(data) / 2**20:.0f} MB, over the limit of {max_bytes / 2**20:.0f} MB"
        )
    folder = None
    try:
        with tempfile.TemporaryDirectory(prefix="medsr-app-") as folder:
            path = Path(folder) / shown
            path.write_bytes(data)
            image = read_image(path, max_pixels=max_pixels)
    except ImageReadError as exc:
        raise ImageReadError(shown, _hide_folder(exc.reason, folder, shown)) from None
    except OSError as exc:  # the temporary copy could not be written (disk full, ...)
        raise ImageReadError(shown, f"cannot store the upload ({os_reason(exc)})") from None
    except Exception as exc:  # anything else a reader raises: one line, not a traceback in the page
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ImageReadError(shown, f"unreadable upload ({_hide_folder(detail, folder, shown)})") from None
    image.path = shown
    return image


def _hide_folder(text: str, folder: str | None, shown: str) -> str:
    """``text`` quoting the upload's name, not its temporary path (which is not the user's business)."""
    if not folder:
        return text
    return text.replace(str(Path(folder) / shown), shown).replace(folder, "")


def sample_paths() -> list[Path]:
    """The bundled sample images (``medsr/samples/*.png``), sorted by name."""
    folder = Path(str(resources.files("medsr") / "samples"))
    return sorted(folder.glob("*.png"))


def describe(image: MedicalImage) -> dict[str, str]:
    """What to tell the user about an image: format, size, bit depth, frames; modality and spacing."""
    info = {
        "Format": image.format.upper(),
        "Size": f"{image.width} x {image.height} px",
        "Bit depth": f"{image.bit_depth} bit, {'grey' if image.channels == 1 else 'colour'}",
    }
    if image.is_multiframe:
        info["Frames"] = str(len(image.pixels))
    if image.modality:
        info["Modality"] = image.modality
    if image.format == "dicom" or image.pixel_spacing is not None:
        spacing = image.pixel_spacing
        info["Pixel spacing"] = f"{spacing[0]:.4g} x {spacing[1]:.4g} mm" if spacing else "not given"
    return info


def select_frame(image: MedicalImage, index: int = 0) -> MedicalImage:
    """One frame of ``image`` as a single-frame image (the image itself when it has one frame)."""
    if not image.is_multiframe:
        return image
    return image.with_pixels(image.pixels[index])


def size_limits_text(max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """The upload limits in words, as the reader enforces them (one source for the help and the messages)."""
    return f"up to {max_bytes / 2**20:.0f} MB and {max_pixels:,} pixels ({max_pixels / 1e6:g} megapixels)"


def too_small(height: int, width: int, min_side: int = MIN_SIDE) -> str | None:
    """Why a model input of ``height`` x ``width`` is refused (smaller than ``min_side`` per side), else None."""
    if min(height, width) >= min_side:
        return None
    return (f"too small: the model's input would be {width} x {height} px; the app needs at least {min_side} px "
            "per side")


def input_label(image: MedicalImage, shown: tuple[int, ...]) -> str:
    """The caption of an input panel showing ``shown`` = ``(H, W, ...)`` of ``image``: says when it is a crop."""
    height, width = shown[:2]
    if (height, width) == (image.height, image.width):
        return f"Input ({width} x {height})"
    return f"Input (centre {width} x {height} crop of {image.width} x {image.height})"


def limit_side(pixels: np.ndarray, max_side: int = DEMO_MAX_SIDE) -> tuple[np.ndarray, bool]:
    """Centre-crop an ``(H, W, C)`` image to at most ``max_side`` per side; also whether it was cropped."""
    height, width = pixels.shape[:2]
    new_h, new_w = min(height, max_side), min(width, max_side)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    return pixels[top:top + new_h, left:left + new_w], (new_h, new_w) != (height, width)


# --- display ------------------------------------------------------------------------------------------------


def window_level(values: np.ndarray, width: float, level: float) -> np.ndarray:
    """DICOM linear VOI window (PS3.3 C.11.2.1.2.1) of modality ``values`` -> float64 in [0, 1].

    Values up to ``level - 0.5 - (width - 1) / 2`` become 0, values above ``level - 0.5 + (width - 1) / 2``
    become 1, and the ramp between is linear. ``width`` must be at least 1 (width 1 is a threshold).
    """
    if width < 1:
        raise ValueError(f"window width must be >= 1, got {width}")
    values = np.asarray(values, dtype=np.float64)
    if width == 1:
        return (values > level - 0.5).astype(np.float64)
    return np.clip((values - (level - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def to_display(
    pixels: np.ndarray,
    value_range: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
) -> np.ndarray:
    """An ``(H, W, C)`` image in [0, 1] -> ``uint8`` display image, through a (width, level) window if given.

    The window is in modality values (``value_range`` maps the pixels to them); a MONOCHROME1 image (reversed
    ``value_range``) stays brighter-is-denser, as its working pixels are.
    """
    if window is not None and value_range is not None:
        shown = window_level(modality_values(pixels, value_range), *window)
        if value_range[0] > value_range[1]:
            shown = 1.0 - shown
    else:
        shown = np.clip(pixels, 0.0, 1.0)
    out = np.rint(shown * 255.0).astype(np.uint8)
    return out[..., 0] if out.ndim == 3 and out.shape[-1] == 1 else out


def default_window(image: MedicalImage) -> tuple[float, float] | None:
    """The first (width, level) window stored in a DICOM header, if any."""
    ds = image.dataset
    if ds is None or "WindowWidth" not in ds or "WindowCenter" not in ds:
        return None

    def first(value: Any) -> float:  # a DICOM window may hold several values (VM 1-n): take the first
        return float(value[0] if isinstance(value, Sequence) and not isinstance(value, str) else value)

    try:
        width, level = first(ds.WindowWidth), first(ds.WindowCenter)
    except (TypeError, ValueError, IndexError):
        return None
    return (width, level) if width >= 1 else None


def abs_error(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pixel absolute difference ``(H, W)`` (mean over channels) of two ``(H, W, C)`` images in [0, 1]."""
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {target.shape}")
    return np.abs(pred.astype(np.float32) - target.astype(np.float32)).mean(axis=-1)


HEATMAP_SCALES = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
"""Full-scale choices for the difference heatmap, as fractions of the intensity range."""


def suggest_full_scale(error: np.ndarray, percentile: float = 99.0) -> float:
    """The smallest of :data:`HEATMAP_SCALES` at or above the ``percentile`` of ``error`` (else the largest).

    Errors differ by orders of magnitude between an 8-bit X-ray and a CT over its whole HU range, so a fixed
    full scale shows one of them black.
    """
    level = float(np.percentile(error, percentile)) if error.size else 0.0
    return next((s for s in HEATMAP_SCALES if s >= level), HEATMAP_SCALES[-1])


# --- models -------------------------------------------------------------------------------------------------


def models_dir_from_env() -> Path | None:
    """The folder of extra checkpoints: ``$MEDSR_MODELS_DIR`` (set by ``medsr demo --models-dir``), if any."""
    value = os.environ.get("MEDSR_MODELS_DIR", "").strip()
    return Path(value) if value else None


def find_checkpoints(folder: Path | None) -> list[Path]:
    """Checkpoint files (``.safetensors``, ``.pth``, ``.pt``, ``.pth.tar``) under ``folder``, recursively."""
    if folder is None or not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if not hidden and path.is_file() and path.name.lower().endswith(CHECKPOINT_SUFFIXES):
            found.append(path)
    return found


def model_choices(models_dir: Path | None) -> dict[str, str]:
    """``label -> name or path`` for the model picker: automatic (:data:`AUTO_MODEL`, value ``""``), bundled
    models, then checkpoints in the folder."""
    choices = {AUTO_MODEL: ""}
    choices.update({f"{m['name']} (bundled)": str(m["name"]) for m in list_bundled_models()})
    for path in find_checkpoints(models_dir):
        choices[f"{path.relative_to(models_dir)} (models folder)"] = str(path)
    return choices


def automatic_model(modality: str | None, given: bool = False) -> tuple[str, str]:
    """``(bundled model, why)`` for an image of ``modality``, chosen as ``medsr upscale`` chooses without
    ``--model`` (:func:`medsr.infer.modality.model_for_modality`). ``given``: the user named the modality
    (a PNG/TIFF has none), as ``--modality`` does."""
    name = model_for_modality(modality)
    found = (modality or "").strip().upper()
    where = "the modality you gave" if given else "the DICOM header's Modality"
    if not found:
        return name, f"{name}: the image states no modality (PNG, JPEG, TIFF), so the default chest X-ray model"
    if found not in MODALITY_MODELS:
        return name, f"{name}: no bundled model for modality {found} ({where}), so the default {DEFAULT_MODEL}"
    return name, f"{name}: {where} is {found}, as `medsr upscale` chooses"


def compatible_scales(degradation: str, model_scale: tuple[int, int], candidates=(2, 3, 4, 8)) -> list[int]:
    """The scales at which ``degradation`` makes an LR image that a model of ``model_scale`` can undo."""
    return [s for s in candidates if lr_scale(degradation, s) == tuple(model_scale)]


def compatible_degradations(model_scale: tuple[int, int]) -> list[str]:
    """The Simulate degradations that a model of ``model_scale`` can undo at some scale (only those are offered:
    an x4 model cannot undo ultrasound's column-only x4 or a sparse-view CT at full size)."""
    return [d for d in SIMULATE_DEGRADATIONS if compatible_scales(d, model_scale)]


SETTING_NAMES = {"frame": "frame", "mode": "mode", "model": "model", "stamp": "model file", "device": "device",
                 "faint": "faint-findings setting", "degradation": "degradation", "scale": "scale",
                 "seed": "noise seed"}


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What changed between the settings of the last run and now, in one sentence for the page.

    ``"The model (xray-x4 -> tiny.safetensors) changed since the last run: press Run ... to update the result."``
    Frames are shown 1-based, as the frame slider counts them ("all" for every frame).
    """
    changed = []
    for key, name in SETTING_NAMES.items():
        before, after = old.get(key), new.get(key)
        if before == after or (key == "stamp" and old.get("model") != new.get("model")):
            continue
        if key in ("degradation", "scale", "seed") and old.get("mode") != new.get("mode"):
            continue  # the mode says it: Enhance has none of these
        if key == "frame":  # "all": every frame of a multi-frame file
            before, after = (v if v == "all" else int(v or 0) + 1 for v in (before, after))
        if key == "stamp":
            changed.append("the model file (reloaded)")
        else:
            changed.append(f"the {name} ({Path(str(before)).name or '-'} -> {Path(str(after)).name or '-'})")
    if not changed:
        changed = ["the image"]
    listed = ", ".join(changed[:-1]) + (" and " if len(changed) > 1 else "") + changed[-1]
    verb = "have" if len(changed) > 1 else "has"
    return (f"{listed[:1].upper()}{listed[1:]} {verb} changed since the last run: press Run super-resolution "
            "to update the result.")


# --- running ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """What every model run of the app holds: input, bicubic and model panels float32 in [0, 1] (one image
    ``(H, W, C)``, or a stack ``(F, H, W, C)``), the model output as a :class:`MedicalImage` ready to write
    (``result``), and which model ran how, where and for how long. ``output``: how the settings changed the
    model's output (:meth:`InferenceSettings.output_note`: strength, consistency projection; "" as trained)."""

    lr: np.ndarray
    bicubic: np.ndarray
    sr: np.ndarray
    result: MedicalImage
    model_name: str
    scale: tuple[int, int]
    seconds: float
    device: str
    output: str = field(default="", kw_only=True)

    @property
    def shown_name(self) -> str:
        """The model as the page names its result (:func:`shown_name`)."""
        return shown_name(self.model_name, self.output)


def shown_name(model: str, output: str) -> str:
    """The model as the page names a result: ``xray-x4 (strength 0.5)``, or just ``xray-x4`` as trained
    (``output``: :meth:`InferenceSettings.output_note`)."""
    return f"{model} ({output})" if output else model


@dataclass
class Outcome(Run):
    """One run of the app on one image: the panels (``(H, W, C)``), scores and what to download.

    ``hr`` and ``scores`` exist in Simulate mode only; ``scores`` is ``{"Bicubic": {"psnr", "ssim"},
    "Model": {...}}``.
    """

    mode: str
    cropped: bool
    hr: np.ndarray | None = None
    scores: dict[str, dict[str, float]] | None = None
    notes: list[str] = field(default_factory=list)


Progress = Callable[[int, int], None]


def _super_resolve(model: Any, lr: np.ndarray, progress: Progress | None,
                   settings: InferenceSettings) -> tuple[np.ndarray, float]:
    """Output for ``lr`` in tiles, finished (strength, clipping, consistency projection) by ``settings`` as
    ``medsr upscale`` with the same flags finishes it (:func:`medsr.infer.finish_output`); and the seconds."""
    start = time.perf_counter()
    sr = upscale_array(model, lr, settings, progress=progress)
    sr = finish_output(sr, lr, tuple(int(s) for s in model.scale), settings)
    return sr, time.perf_counter() - start


def run_enhance(
    image: MedicalImage,
    model: Any,
    *,
    device: str = "auto",
    max_side: int = DEMO_MAX_SIDE,
    progress: Progress | None = None,
    settings: InferenceSettings = SETTINGS,
) -> Outcome:
    """Enhance mode: ``image`` (one frame) is the LR input; upscale it with bicubic and with ``model``.

    Inputs over ``max_side`` are centre-cropped. The model runs under ``settings`` (default: ``medsr
    upscale``'s; the Faint findings choice, :mod:`medsr.app.fidelity`, changes strength / consistency /
    fidelity) and its output equals what ``medsr upscale`` with those flags writes. Outputs are quantised to
    the image's stored levels, as writing them would. No ground truth, so no scores. ``device`` is where
    ``model`` was loaded.
    """
    if image.is_multiframe:
        raise ValueError("pass one frame (select_frame) to run_enhance")
    lr, cropped = limit_side(image.pixels, max_side)
    lr = np.ascontiguousarray(lr, dtype=np.float32)
    sy, sx = (int(s) for s in model.scale)
    levels = quantisation_levels(image)
    # a CT model runs on its fixed HU range (medsr.intensity), and its output comes back on the image's own
    mapped = for_model(image.with_pixels(lr), getattr(model, "meta", None))
    # clipped to the input's range as `medsr upscale` writes it (Simulate scores the raw output, as evaluate)
    sr, seconds = _super_resolve(model, mapped.pixels, progress, settings)
    sr = quantise(restore(mapped.with_pixels(sr)).pixels, levels)
    size = (lr.shape[0] * sy, lr.shape[1] * sx)
    bicubic = quantise(pil_resize(lr, size, "bicubic", resize_bit_depth(image)), levels)
    result = upscaled_image(image.with_pixels(lr), sr, model, settings)
    return Outcome(
        mode="enhance", lr=lr, bicubic=bicubic, sr=sr, result=result, model_name=model_name(model),
        scale=(sy, sx), seconds=seconds, device=str(resolve_device(device)), cropped=cropped,
        output=settings.output_note(),
    )


def run_simulate(
    image: MedicalImage,
    model: Any,
    *,
    degradation: str = "bicubic",
    scale: int = 4,
    device: str = "auto",
    seed: int = 0,
    max_side: int = DEMO_MAX_SIDE,
    progress: Progress | None = None,
    settings: InferenceSettings = SETTINGS,
) -> Outcome:
    """Simulate mode: ``image`` (one frame) is the ground truth; degrade, super-resolve, score.

    Scored by :class:`medsr.protocol.Protocol`, exactly as ``medsr evaluate`` scores a file of the same name
    (``max_side`` plays the part of ``--max-size``): bicubic and the model, quantised to the image's levels,
    PSNR/SSIM on the image's own scale with ``border = scale``. The model's output is finished by ``settings``'
    strength and consistency projection (not clipped to the input's range: evaluate scores the raw output), so
    the scores show what a Faint findings choice costs or gains in PSNR on this image.
    """
    if image.is_multiframe:
        raise ValueError("pass one frame (select_frame) to run_simulate")
    needed = lr_scale(degradation, scale)
    if tuple(model.scale) != needed:
        raise ConfigError(
            f"model {model_name(model)} upsamples x{model.scale[0]}x{model.scale[1]}, but {degradation} at "
            f"scale {scale} needs x{needed[0]}x{needed[1]}"
        )
    cropped = max(image.height, image.width) > max_side
    meta = getattr(model, "meta", None)
    protocol = Protocol(scale=scale, degradation=degradation, seed=seed, max_size=max_side, **model_units(meta))
    pair = protocol.pair(image, image_key(image.path))
    outputs: dict[str, np.ndarray] = {}
    timing: dict[str, float] = {}

    def model_method(lr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        sr, timing["seconds"] = _super_resolve(model, lr, progress, settings.with_(clip_to_input=False))
        return sr

    rows = protocol.run(pair, {"Bicubic": protocol.baselines(["bicubic"], pair)["bicubic"], "Model": model_method},
                        outputs.__setitem__)
    scores = {row.method: {"psnr": row.psnr, "ssim": row.ssim} for row in rows}
    # shown on the image's own range (a CT model scored them on its fixed HU range, as evaluate does)
    mapped = for_model(image, meta)  # only its value range and the source's are used below
    hr, lr, bicubic, sr = (restore(mapped.with_pixels(a)).pixels
                           for a in (pair.hr, pair.lr, outputs["Bicubic"], outputs["Model"]))
    truth = image.with_pixels(hr)
    return Outcome(
        mode="simulate", lr=lr, bicubic=bicubic, sr=sr,
        result=truth.with_pixels(sr), model_name=model_name(model),
        scale=(int(needed[0]), int(needed[1])), seconds=timing["seconds"], device=str(resolve_device(device)),
        cropped=cropped, hr=hr, scores=scores, output=settings.output_note(),
    )


# --- downloads ----------------------------------------------------------------------------------------------


def download_options(outcome: Outcome, source: MedicalImage, stem: str) -> list[Download]:
    """What the result can be saved as (see :func:`medsr.app.exports.download_options`, which also says why
    a format is withheld or rescaled)."""
    return exports.download_options(outcome.result, source, outcome.mode, outcome.cropped, stem)[0]


def encode_image(image: MedicalImage, fmt: str) -> bytes:
    """``image`` written by :func:`medsr.io.write_image` as ``fmt``, returned as bytes (``"values-tiff"``:
    a TIFF of its modality values, :func:`medsr.app.exports.encode_values_tiff`).

    The file goes to a private temporary folder that is removed at once: sessions never share a file.
    """
    if fmt == "values-tiff":
        return exports.encode_values_tiff(image)
    suffix = {"png": ".png", "tiff": ".tiff", "dicom": ".dcm"}[fmt]
    with tempfile.TemporaryDirectory(prefix="medsr-app-") as folder:
        path = Path(folder) / f"result{suffix}"
        write_image(image, path, format=fmt)
        return path.read_bytes()
