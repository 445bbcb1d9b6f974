"""What a result can be downloaded as, and why a format is withheld or rescaled.

PNG holds unsigned 8- or 16-bit integers, so medsr maps an image's value range linearly onto 0..65535:
a signed CT (HU) comes out shifted, a 12-bit MR stretched by about 16. Where that happens the page says so
and offers a TIFF of the real modality values (HU, stored MR values) instead, which any analysis tool reads.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import tifffile

from medsr.io.image import MedicalImage, modality_values


@dataclass(frozen=True)
class Download:
    """One download button: label, file name, MIME type and the format for :func:`encode`."""

    label: str
    file_name: str
    mime: str
    fmt: str


def modality_array(image: MedicalImage) -> np.ndarray:
    """The image's modality values (HU for CT, stored values for MR/CR) in the smallest exact dtype.

    Integer values in int16/uint16 range keep that type; anything else (a fractional rescale) is float32.
    Shape ``(H, W)`` for grey, ``(H, W, 3)`` for colour.
    """
    values = modality_values(image.pixels, image.value_range)
    rounded = np.rint(values)
    if np.allclose(values, rounded, atol=1e-3):
        lo, hi = float(rounded.min(initial=0)), float(rounded.max(initial=0))
        if lo >= 0 and hi <= 65535:
            values = rounded.astype(np.uint16)
        elif lo >= -32768 and hi <= 32767:
            values = rounded.astype(np.int16)
        else:
            values = values.astype(np.float32)
    else:
        values = values.astype(np.float32)
    return values[..., 0] if values.shape[-1] == 1 else values


def encode_values_tiff(image: MedicalImage) -> bytes:
    """A TIFF of :func:`modality_array` (MONOCHROME1 written as min-is-white, as it is meant to be shown)."""
    values = modality_array(image)
    if values.ndim == 3:
        photometric = "rgb"
    else:
        reversed_range = image.value_range[0] > image.value_range[1]
        photometric = "miniswhite" if reversed_range else "minisblack"
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, values, photometric=photometric, compression="zlib")
    return buffer.getvalue()


def png_scaling_note(image: MedicalImage) -> str | None:
    """Why a 16-bit PNG of ``image`` does not hold its real values, or None when it does.

    PNG stores the working pixels: ``(value - v0) / (v1 - v0) * 65535`` for ``value_range = (v0, v1)``, which
    for MONOCHROME1 (``v0 > v1``) also inverts the values.
    """
    if image.bit_depth <= 8 or image.format != "dicom":
        return None
    v0, v1 = (float(v) for v in image.value_range)
    if (v0, v1) == (0.0, 65535.0):
        return None
    factor = 65535.0 / abs(v1 - v0 or 1e-9)
    if v0 > v1:
        shift = f"{v0:g} - value"
    else:
        shift = "value" if v0 == 0 else (f"value + {-v0:g}" if v0 < 0 else f"value - {v0:g}")
    if abs(factor - 1) < 1e-6:
        formula = f"PNG = {shift}"
    else:
        formula = f"PNG = {shift} x {factor:.4g}" if shift == "value" else f"PNG = ({shift}) x {factor:.4g}"
    low, high = sorted((v0, v1))
    return (f"The 16-bit PNG maps the value range {low:g}..{high:g} onto 0..65535 ({formula}): its numbers are "
            f"not {'HU' if image.modality == 'CT' else 'the stored values'}. The TIFF (real values) and the "
            "derived DICOM keep them.")


def download_options(result: MedicalImage, source: MedicalImage, mode: str, cropped: bool,
                     stem: str) -> tuple[list[Download], list[str]]:
    """What the result can be saved as, and one line for each format withheld or rescaled (and why).

    PNG at the input's bit depth (TIFF for 16-bit colour); for DICOM inputs a TIFF of real values; a derived
    DICOM in Enhance mode when the whole image was processed.
    """
    bits = 8 if result.bit_depth <= 8 else 16
    options: list[Download] = []
    notes: list[str] = []
    if result.channels == 3 and bits == 16:
        options.append(Download("Download result (16-bit TIFF)", f"{stem}_medsr.tiff", "image/tiff", "tiff"))
    else:
        options.append(Download(f"Download result ({bits}-bit PNG)", f"{stem}_medsr.png", "image/png", "png"))
    if source.format == "dicom" and result.channels == 1:
        options.append(Download("Download result (TIFF, real values)", f"{stem}_medsr_values.tiff",
                                "image/tiff", "values-tiff"))
        note = png_scaling_note(result)
        if note:
            notes.append(note)
    if source.format == "dicom":
        if mode != "enhance":
            notes.append("No derived DICOM in Simulate mode: a simulated result is a test of the model, "
                         "not an image of the patient.")
        elif cropped:
            notes.append("No derived DICOM: this page processed only the centre crop, and a derived DICOM must "
                         "cover the whole image so that its geometry (position, spacing) stays true. "
                         "`medsr upscale FILE -o OUT --format dcm` processes the whole file.")
        else:
            options.append(Download("Download derived DICOM", f"{stem}_medsr.dcm", "application/dicom", "dicom"))
    return options, notes
