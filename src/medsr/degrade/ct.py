"""``ct-sparse-view`` and ``ct-sinogram``: a CT scan that fires fewer projections (Radon-space degradation).

A CT scanner measures line integrals of the X-ray attenuation coefficient mu through the patient at many
view angles (the sinogram) and reconstructs the slice by filtered back-projection (FBP). A sparse-view scan
(lower dose, faster) keeps only every S-th view. Following Z. Liang (2019; jason-zl190/sisr_medical), the
degradation is done in Radon space with scikit-image: the slice (in HU, or as a [0, 1] image whose 0 is
air) becomes attenuation relative to water, ``mu / mu_water = 1 + HU / 1000`` (air 0, water 1), its
sinogram is taken at ``n_angles`` angles over [0, 180) degrees, every S-th angle is kept, and the sparse
sinogram is reconstructed with ramp-filtered FBP. The reconstruction has the HR size and the streak
artefacts of angular undersampling; two model routes undo it:

- ``ct-sparse-view``: image restoration at scale 1 (LR shape == HR shape): the streaky FBP image.
- ``ct-sinogram``: angular super-resolution: the sparse sinogram, LR along the angle axis (x) only. The
  route's HR target is the same function at scale 1 (all angles), and LR == HR[:, ::S].

To keep every pixel inside scikit-image's reconstruction circle, the slice is padded with air to a square
whose inscribed circle contains it (:func:`detector_count` detector positions) and cropped back after FBP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medsr.degrade.bicubic import quantise
from medsr.errors import ConfigError

DEFAULT_ANGLES = 180
"""Projections of the full scan, evenly spaced over [0, 180) degrees."""


@dataclass(frozen=True)
class SparseViewCT:
    """A simulated sparse-view scan of one slice.

    Sinograms are ``(detectors, angles)`` line integrals of ``mu / mu_water`` in pixel units;
    angles are in degrees; ``fbp`` is the ``(H, W)`` ramp-filtered reconstruction from the sparse angles,
    in the units of the input slice (HU, or the [0, 1] working scale), not clipped.
    """

    sinogram_full: np.ndarray
    sinogram_sparse: np.ndarray
    angles_full: np.ndarray
    angles_sparse: np.ndarray
    fbp: np.ndarray


def detector_count(height: int, width: int) -> int:
    """Detector positions (side of the padded square) for a ``height x width`` slice: its diagonal + 2."""
    return int(np.ceil(np.hypot(height, width))) + 2


def sinogram_shape(
    size: tuple[int, int], scale: int, *, n_angles: int = DEFAULT_ANGLES, **_: object
) -> tuple[int, int]:
    """``(detectors, kept angles)``: the shape ``ct-sinogram`` makes from a ``size = (h, w)`` slice at ``scale``."""
    height, width = size
    return detector_count(height, width), int(n_angles) // scale


def hu_to_attenuation(hu: np.ndarray) -> np.ndarray:
    """Hounsfield units -> attenuation relative to water (air 0, water 1); below-air values clip to 0."""
    return np.maximum(1.0 + np.asarray(hu, dtype=np.float64) / 1000.0, 0.0)


def attenuation_to_hu(mu: np.ndarray) -> np.ndarray:
    """Attenuation relative to water -> Hounsfield units."""
    return (np.asarray(mu, dtype=np.float64) - 1.0) * 1000.0


def scan_angles(n_angles: int = DEFAULT_ANGLES, step: int = 1) -> np.ndarray:
    """Every ``step``-th of ``n_angles`` view angles evenly spaced over [0, 180) degrees."""
    if n_angles < 1 or step < 1 or n_angles % step:
        raise ConfigError(f"n_angles ({n_angles}) must be a positive multiple of the angle step ({step})")
    return np.linspace(0.0, 180.0, n_angles, endpoint=False)[::step]


def _pad_to_circle(mu: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad an ``(H, W)`` attenuation map with air so it lies inside the inscribed circle of a square."""
    height, width = mu.shape
    side = detector_count(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    padded = np.zeros((side, side), dtype=np.float64)
    padded[top:top + height, left:left + width] = mu
    return padded, (top, left)


def _sinogram(mu: np.ndarray, angles: np.ndarray) -> np.ndarray:
    from skimage.transform import radon

    padded, _ = _pad_to_circle(mu)
    return radon(padded, theta=angles, circle=True)


def _fbp(sinogram: np.ndarray, angles: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from skimage.transform import iradon

    height, width = size
    side = sinogram.shape[0]
    top, left = (side - height) // 2, (side - width) // 2
    image = iradon(sinogram, theta=angles, output_size=side, filter_name="ramp", circle=True)
    return image[top:top + height, left:left + width]


def _slice_2d(image: np.ndarray, name: str) -> np.ndarray:
    if image.ndim == 3:
        if image.shape[2] != 1:
            raise ConfigError(f"{name} needs a grayscale (1-channel) CT slice, got {image.shape[2]} channels")
        image = image[..., 0]
    if image.ndim != 2:
        raise ConfigError(f"{name} needs an (H, W) or (H, W, 1) slice, got shape {image.shape}")
    return np.asarray(image, dtype=np.float64)


def _to_attenuation(image: np.ndarray, value_range: tuple[float, float] | None, hu: bool) -> np.ndarray:
    if hu:
        return hu_to_attenuation(image)
    if value_range is not None:
        low, high = value_range
        return hu_to_attenuation(low + image * (high - low))
    return np.maximum(image, 0.0)


def _from_attenuation(mu: np.ndarray, value_range: tuple[float, float] | None, hu: bool) -> np.ndarray:
    if hu:
        return attenuation_to_hu(mu)
    if value_range is not None:
        low, high = value_range
        return (attenuation_to_hu(mu) - low) / (high - low)
    return mu


def sparse_view_ct(
    image: np.ndarray,
    step: int = 4,
    *,
    n_angles: int = DEFAULT_ANGLES,
    value_range: tuple[float, float] | None = None,
    hu: bool = False,
) -> SparseViewCT:
    """Simulate a sparse-view scan of one CT slice, keeping every ``step``-th of ``n_angles`` views.

    ``image``: ``(H, W)`` or ``(H, W, 1)``. Its units: HU if ``hu``; else a [0, 1] working image, mapped to HU
    by ``value_range = (HU at 0, HU at 1)`` when given (a DICOM's ``MedicalImage.value_range``), or taken as
    attenuation directly (0 = air) when not. ``fbp`` comes back in the same units.
    """
    slice_2d = _slice_2d(image, "ct-sparse-view")
    angles_full = scan_angles(n_angles)
    angles_sparse = scan_angles(n_angles, step)
    full = _sinogram(_to_attenuation(slice_2d, value_range, hu), angles_full)
    sparse = full[:, ::step]
    fbp = _from_attenuation(_fbp(sparse, angles_sparse, slice_2d.shape), value_range, hu)
    return SparseViewCT(full, sparse, angles_full, angles_sparse, fbp)


def sparse_view_fbp(
    hr: np.ndarray,
    scale: int,
    *,
    bit_depth: int = 8,
    rng: np.random.Generator | None = None,
    n_angles: int = DEFAULT_ANGLES,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """The ``ct-sparse-view`` model: FBP from every ``scale``-th of ``n_angles`` views (scale-1 restoration).

    ``hr``: ``(H, W, 1)`` float in [0, 1] (0 = air unless ``value_range`` maps it to HU). Returns the
    ``(H, W, 1)`` float32 reconstruction with streak artefacts, clipped to [0, 1]. Deterministic.
    """
    return quantise(sparse_view_reconstruction(hr, scale, n_angles=n_angles, value_range=value_range), bit_depth)


def sparse_view_reconstruction(
    hr: np.ndarray, scale: int, *, n_angles: int = DEFAULT_ANGLES,
    value_range: tuple[float, float] | None = None, **_: object,
) -> np.ndarray:
    """:func:`sparse_view_fbp` before its clip to [0, 1]: the ``(H, W, 1)`` float64 reconstruction, affine in
    the slice's attenuation (HU -> mu is affine, and so are the Radon transform and the filtered
    back-projection), which is what lets :func:`sparse_view_change` add a small local change to it."""
    slice_2d = _slice_2d(hr, "ct-sparse-view")
    angles = scan_angles(n_angles, scale)
    sinogram = _sinogram(_to_attenuation(slice_2d, value_range, False), angles)
    return _from_attenuation(_fbp(sinogram, angles, slice_2d.shape), value_range, False)[..., None]


def sparse_view_change(
    present: np.ndarray, absent: np.ndarray, scale: int, *, n_angles: int = DEFAULT_ANGLES,
    value_range: tuple[float, float] | None = None, **_: object,
) -> np.ndarray:
    """What :func:`sparse_view_reconstruction` gains where a slice reads ``present`` instead of ``absent``.

    ``present`` and ``absent``: ``(h, w)`` or ``(h, w, 1)`` windows of the [0, 1] working slice that differ only
    inside (e.g. by inserted faint discs), so the rest of the slice, equal in both, cancels: the sparse-view FBP
    of the change in attenuation (clipped below air as :func:`hu_to_attenuation` clips it), back in the working
    units, ``(h, w, 1)`` float64. Computed on the window alone, it is the whole slice's change up to
    interpolation: scikit-image rotates the window about its own centre, not the slice's, so the disc's
    projections sample the pixel grid at other sub-pixel offsets (tests/data/test_signals_ct.py holds it
    within 20 % of the strongest disc's contrast at any pixel and 2.5 % RMS). A 64 px window takes about 10 ms,
    a whole 512 px slice most of a second.
    """
    angles = scan_angles(n_angles, scale)
    present_2d, absent_2d = _slice_2d(present, "ct-sparse-view"), _slice_2d(absent, "ct-sparse-view")
    change = _to_attenuation(present_2d, value_range, False) - _to_attenuation(absent_2d, value_range, False)
    fbp = _fbp(_sinogram(change, angles), angles, change.shape)
    return (_from_attenuation(fbp, value_range, False) - _from_attenuation(np.zeros(1), value_range, False))[..., None]


def sparse_view_sinogram(
    hr: np.ndarray,
    scale: int,
    *,
    bit_depth: int = 8,
    rng: np.random.Generator | None = None,
    n_angles: int = DEFAULT_ANGLES,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """The ``ct-sinogram`` model: the sinogram at every ``scale``-th of ``n_angles`` views, as an image.

    ``hr``: ``(H, W, 1)`` float in [0, 1] as for ``ct-sparse-view``. Returns ``(D, n_angles // scale, 1)``
    float32 (D = :func:`detector_count`; rows are detector positions, columns angles), the line integrals
    divided by D so that a slice of attenuation <= 1 gives values in [0, 1] (clipped). At ``scale == 1``
    it is the full sinogram, the HR target of this route.
    """
    slice_2d = _slice_2d(hr, "ct-sinogram")
    sinogram = _sinogram(_to_attenuation(slice_2d, value_range, False), scan_angles(n_angles, scale))
    return quantise(sinogram[..., None] / sinogram.shape[0], bit_depth)
