"""The reading viewer of the web app: Cornerstone3D in the browser, fed each image's real values once.

The viewer is a Streamlit component whose frontend (``viewer_dist/index.html`` and ``static/viewer.js``, the
Cornerstone3D bundle that ``make viewer`` builds from ``web/viewer``) is served by Streamlit itself: nothing
comes from a CDN. Each panel's modality values (HU for CT, grey levels for PNG) travel once, as a zlib-compressed
typed array (rows sent as differences from the left neighbour, as PNG's Sub filter does) behind a URL of
Streamlit's media endpoint; a rerun of the page re-sends only the URLs, which the viewer has already loaded.
Windowing, value readout, measurements, zoom/pan and slice scrolling then run in the browser.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medsr.io.image import MedicalImage, modality_values

COMPONENT_DIR = Path(__file__).parent / "viewer_dist"
BUNDLE = Path(__file__).parent / "static" / "viewer.js"
"""The Cornerstone3D bundle, in the app's static folder: Streamlit serves it with ETag and Last-Modified (its
component route does not), so every viewer on a page shares one download."""
MISSING = (f"The image viewer's script {BUNDLE.name} is missing from {BUNDLE.parent}: build it with `make viewer` "
           "(needs Node.js and npm).")


@dataclass(frozen=True)
class Layer:
    """One panel of the viewer: its caption, its values ``(F, H, W)`` (``F`` frames or slices; modality values)
    or ``(F, H, W, 3)`` uint8 RGB, and the pixel spacing ``(row, column)`` in mm of the grid it is drawn on
    (1 when the image states none)."""

    name: str
    values: np.ndarray
    spacing: tuple[float, float]
    monochrome1: bool = False
    repeat: tuple[int, int] = (1, 1)
    """Each pixel sent as this many rows and columns, so that every panel of a viewer shares one grid (an x4
    input becomes 4 x 4 blocks, as it is drawn anyway; the repeats cost almost nothing once compressed); the
    readout still names the panel's own pixel."""


def panel_values(pixels: np.ndarray, image: MedicalImage) -> np.ndarray:
    """Working pixels ``(H, W, C)`` or ``(F, H, W, C)`` in [0, 1] -> what the viewer reads: modality values
    (float64; integers where the image's levels are integers), or uint8 RGB for colour."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 3:
        pixels = pixels[None]
    if pixels.shape[-1] == 3:
        return np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    values = modality_values(pixels[..., 0], image.value_range)
    rounded = np.rint(values)
    return rounded if np.allclose(values, rounded, atol=1e-3) else values


def encode_values(values: np.ndarray) -> tuple[bytes, str, bool]:
    """``values`` as ``(zlib bytes, dtype name, rows delta-coded)`` in the smallest exact typed array.

    Integer values fit ``u8``, ``u16`` or ``i16`` and are sent as row differences (wrapping, undone by a
    running sum in the browser); anything else is ``f32`` as is. The viewer decodes with the browser's own
    ``DecompressionStream("deflate")``.
    """
    values = np.asarray(values)
    dtype: Any = None
    if values.dtype == np.uint8 or np.issubdtype(values.dtype, np.integer) or np.all(np.rint(values) == values):
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        for name, candidate in (("u8", np.uint8), ("u16", np.uint16), ("i16", np.int16)):
            info = np.iinfo(candidate)
            if info.min <= low and high <= info.max:
                dtype = (name, candidate)
                break
    if dtype is None:
        return zlib.compress(np.ascontiguousarray(values, dtype="<f4").tobytes(), 6), "f32", False
    name, candidate = dtype
    data = np.ascontiguousarray(values.astype(candidate).astype(np.dtype(candidate).newbyteorder("<")))
    axis = data.ndim - 2 if data.ndim == 4 else data.ndim - 1  # along each row (per colour component)
    first = np.zeros_like(data.take([0], axis=axis))
    with np.errstate(over="ignore"):
        delta = np.diff(data, axis=axis, prepend=first)  # wraps around in its own dtype, as the browser undoes
    return zlib.compress(delta.tobytes(), 6), name, True


def bundle_ready() -> bool:
    """Whether the viewer's script has been built (``make viewer``)."""
    return BUNDLE.is_file() and BUNDLE.stat().st_size > 0


_COMPONENT: Any = None


def _component() -> Any:
    global _COMPONENT
    if _COMPONENT is None:
        from streamlit.components import v1 as components

        _COMPONENT = components.declare_component("medsr_viewer", path=str(COMPONENT_DIR))
    return _COMPONENT


def media_url(data: bytes, coordinates: str) -> str:
    """A URL of Streamlit's media endpoint serving ``data`` to this session ("" outside a Streamlit server).

    The same bytes get the same URL, so a rerun re-registers them without the browser fetching them again.
    """
    from streamlit import runtime

    if not runtime.exists():
        return ""
    return runtime.get_instance().media_file_mgr.add(data, "application/octet-stream", coordinates)


def show(layers: list[Layer], *, key: str, height: int, window: tuple[float, float] | None,
         presets: dict[str, tuple[float, float]] | None = None, modality: str | None = None,
         calibrated: bool = False, wipe: tuple[int, int] | None = None,
         slice_labels: list[str] | None = None) -> list[dict[str, Any]]:
    """Draw the viewer for ``layers`` (left to right), ``height`` CSS pixels of images, opening in ``window``
    (width, level in modality values). ``calibrated``: spacings are mm from the header (lengths, ROI areas and
    the scale bar are then offered). ``slice_labels``: what the status line says of each slice (a series'
    file names and positions). ``key`` names the viewer; its values are re-sent only when they change.
    Returns what each panel's values were sent as (URL, dtype, size, ...), so that the difference maps can be
    computed in the browser from the same bytes (:func:`medsr.app.viewer.viewer_html`)."""
    import streamlit as st

    if not bundle_ready():
        st.error(MISSING)  # the frame below then says that its script did not load
    panels = []
    for index, layer in enumerate(layers):
        values = layer.values if layer.values.ndim >= 3 else layer.values[None]
        values = np.repeat(np.repeat(values, layer.repeat[0], axis=1), layer.repeat[1], axis=2)
        colour = values.ndim == 4
        data, dtype, delta = encode_values(values)
        frames, rows, columns = values.shape[:3]
        panels.append({
            "name": layer.name, "url": media_url(data, f"medsr-viewer-{key}-{index}"), "dtype": dtype,
            "delta": delta, "size": [int(columns), int(rows)], "frames": int(frames),
            "components": 3 if colour else 1, "spacing": [float(s) for s in layer.spacing],
            "monochrome1": layer.monochrome1, "bytes": len(data), "repeat": [int(r) for r in layer.repeat],
        })
    unit = "HU" if (modality or "").upper() == "CT" else ""
    # one frame per viewer for the whole session (its script loads once); a new set of images gets a new id,
    # on which the viewer rebuilds its panels, and the same images keep theirs across reruns
    digest = hashlib.sha1(repr([(p["name"], p["url"], p["bytes"]) for p in panels]).encode()).hexdigest()[:12]
    _component()(panels=panels, id=f"{key}-{digest}", height=height, window=list(window) if window else None,
                 presets={k: list(v) for k, v in (presets or {}).items()}, modality=modality or "OT", unit=unit,
                 calibrated=calibrated, wipe=list(wipe) if wipe and len(layers) > 1 else None,
                 slice_labels=list(slice_labels) if slice_labels else None, key=key,
                 default=None)
    return panels
