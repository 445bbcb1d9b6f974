"""Training data: HR patches from a manifest split, LR made on the fly by a degradation.

Validation is not a dataset: it is :class:`medsr.protocol.Protocol`, as in ``medsr evaluate``.

Sampling is a pure function of ``(seed, epoch, index)``, so a run that is resumed, or that feeds the
model through several ``DataLoader`` workers or distributed ranks, sees exactly the same patches as an
unbroken single-process run. Images are decoded once and kept in memory (as uint8/uint16, a quarter or
half the size of float32) when they fit in ``cache_bytes``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from medsr.data.manifest import ManifestRow, read_manifest
from medsr.data.overlays import burn_in_annotation
from medsr.data.signals import FaintSignals, insert_faint_discs
from medsr.degrade import degradation_spec
from medsr.degrade.bicubic import quantise
from medsr.intensity import to_value_range
from medsr.io import read_image
from medsr.lazy import load

DEFAULT_CACHE_BYTES = 4 * 1024**3


def _load_first_frame(
    path: Path, value_range: Sequence[float] | None = None, raster_offset: float = 0.0
) -> tuple[np.ndarray, int]:
    """Read an image as (H, W, C) float32 in [0, 1] and its bit depth; multi-frame files give frame 0.

    With ``value_range`` the pixels are on that fixed modality range (CT in HU, :mod:`medsr.intensity`).
    """
    image = read_image(path)
    if value_range is not None:
        image = to_value_range(image, value_range, raster_offset)
    pixels = image.pixels[0] if image.is_multiframe else image.pixels
    return pixels, image.bit_depth


def _to_channels(pixels: np.ndarray, channels: int | None) -> np.ndarray:
    """Grayscale stays one channel and colour three, unless ``channels`` asks for the other."""
    if channels is None or pixels.shape[2] == channels:
        return pixels
    if channels == 3:
        return np.repeat(pixels, 3, axis=2)
    return pixels.mean(axis=2, keepdims=True)


class _ImageStore:
    """Decoded images by index, cached in memory as integers while the cache has room."""

    def __init__(
        self, paths: Sequence[Path], channels: int | None, cache_bytes: int,
        value_range: Sequence[float] | None = None, raster_offset: float = 0.0,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.value_range = value_range
        self.raster_offset = raster_offset
        self.channels = channels
        self.cache_bytes = cache_bytes
        self._cache: dict[int, tuple[np.ndarray, float, int]] = {}
        self._used = 0

    def __len__(self) -> int:
        return len(self.paths)

    def get_stored(self, index: int) -> tuple[np.ndarray, float, int]:
        """(H, W, C) integer image, the peak that maps it to [0, 1], and its bit depth."""
        if index in self._cache:
            return self._cache[index]
        pixels, bit_depth = _load_first_frame(self.paths[index], self.value_range, self.raster_offset)
        pixels = _to_channels(pixels, self.channels)
        dtype, peak = (np.uint8, 255.0) if bit_depth <= 8 else (np.uint16, 65535.0)
        stored = np.rint(pixels * peak).astype(dtype)
        if self._used + stored.nbytes <= self.cache_bytes:
            self._cache[index] = (stored, peak, bit_depth)
            self._used += stored.nbytes
        return stored, peak, bit_depth

    def get(self, index: int) -> tuple[np.ndarray, int]:
        """(H, W, C) float32 image in [0, 1] and its bit depth."""
        stored, peak, bit_depth = self.get_stored(index)
        return stored.astype(np.float32) / peak, bit_depth

    def preload(self) -> None:
        """Decode every image now (before DataLoader workers fork, so they share the cache)."""
        for index in range(len(self.paths)):
            self.get(index)


def patch_detail(patch: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (both axes, all channels), in stored units."""
    values = patch.astype(np.float32)
    return float(np.abs(np.diff(values, axis=0)).mean() + np.abs(np.diff(values, axis=1)).mean())


def hard_step_mask(values: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean (H, W): pixels whose step to the next pixel down or right exceeds ``threshold`` (``values``' units)."""
    mask = np.zeros(values.shape, dtype=bool)
    mask[:, :-1] |= np.abs(np.diff(values, axis=1)) > threshold
    mask[:-1, :] |= np.abs(np.diff(values, axis=0)) > threshold
    return mask


def hard_edge_points(stored: np.ndarray, peak: float, step: float, *, limit: int = 4096,
                     seed: int = 0) -> np.ndarray:
    """(N, 2) row/column positions where a neighbour differs by more than ``step`` (a fraction of full range).

    These are the straight high-contrast steps of burned-in markers, collimator edges and padding bars, where
    bicubic rings most; at most ``limit`` of them, drawn reproducibly with ``seed`` when there are more.
    """
    values = stored.astype(np.float32).max(axis=2) if stored.ndim == 3 else stored.astype(np.float32)
    points = np.argwhere(hard_step_mask(values, step * peak)).astype(np.int32)
    if len(points) > limit:
        points = points[np.random.default_rng(seed).choice(len(points), limit, replace=False)]
    return points


def _augment(*patches: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random horizontal/vertical flips and 90-degree rotation of each (H, W, C) patch."""
    flip_x, flip_y, transpose = (rng.random() < 0.5 for _ in range(3))
    out = []
    for patch in patches:
        if flip_x:
            patch = patch[:, ::-1]
        if flip_y:
            patch = patch[::-1, :]
        if transpose:
            patch = np.transpose(patch, (1, 0, 2))
        out.append(np.ascontiguousarray(patch))
    return out


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) float array -> (C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


class PatchDataset(Dataset):
    """Random HR patches and their LR counterparts, ``patches_per_image`` per image and epoch.

    Item ``i`` is ``(lr, hr)``: float32 tensors ``(C, h, w)`` and ``(C, H, W)`` in [0, 1], where
    ``(h, w) = lr_shape(degradation, (H, W), scale)`` (e.g. 24x24 for a 96x96 patch at x4 bicubic;
    96x24 for ``ultrasound``). Flips and 90-degree rotations are applied to the HR patch before it is
    degraded, except for ``ultrasound``, whose two axes differ physically. Degradations of the whole image
    (``Degradation.whole_image``: sparse-view CT, whose streaks come from the whole slice) are
    applied once per image (deterministic, cached) and the patch is cut from both HR and LR, then augmented.
    With ``patch_candidates`` > 1 each
    patch is the one with the largest mean absolute gradient (:func:`patch_detail`) among that many random
    positions: most of a radiograph is smooth, and a step on flat background teaches the network little.
    With ``hard_edge_fraction`` > 0 that share of patches (drawn per patch) is instead placed, at a random
    offset, over a hard step (:func:`hard_edge_points`: a neighbour difference above ``hard_edge_step`` of the
    full range): markers and padding bars hold under 4% of a radiograph's pixels but most of bicubic's
    error, and random or most-detailed patches rarely contain them. Images without such steps keep the
    candidates' patch. ``repeats`` (one count per path, e.g. from :func:`source_repeats`) draws each image's
    patches that many times per epoch, so that a small source weighs as much as a large one. With
    ``overlay_prob`` > 0 that share of HR patches gets a synthetic burned-in annotation
    (:func:`medsr.data.overlays.burn_in_annotation`: text, a side marker or a line) before it is degraded.
    With ``signal_prob`` > 0 that share of HR patches gets a few faint round discs
    (:func:`medsr.data.signals.insert_faint_discs`, drawn as ``signals`` says) before it is degraded, so that the
    network learns to keep small, faint findings instead of removing them with the noise. With ``signal_pairs``
    every item is ``(lr, hr, lr_absent, hr_absent)``: the patch without its discs, flipped alike and degraded
    with the same random draws (the same kernel and noise), for :func:`medsr.losses.signal_preservation_loss`
    (a patch that drew no discs has twins equal to itself). Whole-image degradations take signals too where
    they are affine before their final clip (``Degradation.affine_parts``: sparse-view CT): the LR with the
    discs is the whole image's reconstruction plus the FBP of the discs alone on the patch (to within its
    interpolation: :func:`medsr.degrade.ct.sparse_view_change`), the twin the cached whole-image LR.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        scale: int = 4,
        patch_size: int = 96,
        degradation: str = "bicubic",
        degradation_params: dict | None = None,
        patches_per_image: int = 1,
        patch_candidates: int = 1,
        hard_edge_fraction: float = 0.0,
        hard_edge_step: float = 40 / 255,
        repeats: Sequence[int] | None = None,
        overlay_prob: float = 0.0,
        signal_prob: float = 0.0,
        signals: FaintSignals | None = None,
        signal_pairs: bool = False,
        augment: bool = True,
        channels: int | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        seed: int = 0,
        value_range: Sequence[float] | None = None,
        raster_offset: float = 0.0,
    ) -> None:
        spec = degradation_spec(degradation)
        self.whole_image = spec.whole_image
        if any(patch_size % multiple for multiple in spec.hr_multiple(scale)):
            raise ValueError(f"patch size {patch_size} is not a multiple of scale {scale}")
        self.store = _ImageStore([Path(p) for p in paths], channels, cache_bytes, value_range, raster_offset)
        repeats = [1] * len(self.store) if repeats is None else [int(r) for r in repeats]
        if len(repeats) != len(self.store) or min(repeats, default=1) < 1:
            raise ValueError(f"repeats must give a count of at least 1 for each of the {len(self.store)} images")
        self._order = [image for image, count in enumerate(repeats) for _ in range(count)]
        if not 0.0 <= overlay_prob <= 1.0:
            raise ValueError(f"overlay_prob must lie in [0, 1], not {overlay_prob}")
        if overlay_prob and self.whole_image:
            raise ValueError(f"overlay_prob needs a per-patch degradation; {degradation} degrades whole images")
        self.overlay_prob = overlay_prob
        if not 0.0 <= signal_prob <= 1.0:
            raise ValueError(f"signal_prob must lie in [0, 1], not {signal_prob}")
        if signal_prob and self.whole_image and spec.affine_parts is None:
            raise ValueError(f"signal_prob needs a per-patch degradation; {degradation} degrades whole images")
        self._affine_parts = spec.affine_parts
        self.signal_prob = signal_prob
        self.signals = signals or FaintSignals()
        if signal_pairs and not signal_prob:
            raise ValueError("signal_pairs needs signal_prob > 0: a pair differs only by its inserted signals")
        self.signal_pairs = signal_pairs
        self.scale = scale
        self.patch_size = patch_size
        self.degradation = degradation
        self.degrade = spec.function
        self.degradation_params = spec.with_value_range(degradation_params or {}, value_range)
        self.value_range = value_range
        self._whole_lr: dict[int, np.ndarray] = {}
        self._whole_reconstruction: dict[int, np.ndarray] = {}
        self.patches_per_image = patches_per_image
        if patch_candidates < 1:
            raise ValueError(f"patch_candidates must be at least 1, not {patch_candidates}")
        self.patch_candidates = patch_candidates
        if not 0.0 <= hard_edge_fraction <= 1.0:
            raise ValueError(f"hard_edge_fraction must lie in [0, 1], not {hard_edge_fraction}")
        if not 0.0 < hard_edge_step < 1.0:
            raise ValueError(f"hard_edge_step must lie in (0, 1), not {hard_edge_step}")
        self.hard_edge_fraction = hard_edge_fraction
        self.hard_edge_step = hard_edge_step
        self._edge_points: dict[int, np.ndarray] = {}
        self.augment = augment and spec.rotations
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose patches ``__getitem__`` returns (call before building the iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._order) * self.patches_per_image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image_index = self._order[index // self.patches_per_image]
        stored, peak, bit_depth = self.store.get_stored(image_index)
        height, width = stored.shape[:2]
        size = self.patch_size
        if height < size or width < size:
            raise ValueError(
                f"{self.store.paths[image_index]}: {width}x{height} is smaller than the "
                f"{size}x{size} patch (drop it with `medsr prepare --min-size {size}`)"
            )
        corners = [(int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1)))
                   for _ in range(self.patch_candidates)]
        top, left = corners[0] if len(corners) == 1 else max(
            corners, key=lambda c: patch_detail(stored[c[0]:c[0] + size, c[1]:c[1] + size]))
        if self.hard_edge_fraction and rng.random() < self.hard_edge_fraction:
            points = self.edge_points(image_index)
            if len(points):
                row, col = points[int(rng.integers(len(points)))]
                top = int(np.clip(row - rng.integers(0, size), 0, height - size))
                left = int(np.clip(col - rng.integers(0, size), 0, width - size))
        hr = stored[top:top + size, left:left + size].astype(np.float32) / peak
        if self.overlay_prob and rng.random() < self.overlay_prob:
            # on the stored grid, as the scanner's software burns annotations into the stored pixels
            hr = np.rint(burn_in_annotation(hr, rng) * peak).astype(np.float32) / peak
        absent = hr
        if self.signal_prob and rng.random() < self.signal_prob:
            hr = insert_faint_discs(hr, rng, self.signals, self.value_range)
        if self.whole_image and self.signal_prob:
            return self._whole_image_signal_item(image_index, top, left, hr, absent, bit_depth, rng)
        if self.whole_image:
            lr = self.whole_lr(image_index)[top:top + size, left:left + size]
            hr, lr = _augment(hr, lr, rng=rng) if self.augment else (hr, lr)
            return _to_tensor(lr), _to_tensor(hr)
        if not self.signal_pairs:
            if self.augment:
                (hr,) = _augment(hr, rng=rng)
            lr = self.degrade(hr, self.scale, bit_depth=bit_depth, rng=rng, **self.degradation_params)
            return _to_tensor(lr), _to_tensor(hr)
        if self.augment:
            hr, absent = _augment(hr, absent, rng=rng)
        twin_rng = copy.deepcopy(rng)  # the absent twin gets the same kernel and noise draws
        lr = self.degrade(hr, self.scale, bit_depth=bit_depth, rng=rng, **self.degradation_params)
        lr_absent = self.degrade(absent, self.scale, bit_depth=bit_depth, rng=twin_rng, **self.degradation_params)
        return _to_tensor(lr), _to_tensor(hr), _to_tensor(lr_absent), _to_tensor(absent)

    def _whole_image_signal_item(self, image_index: int, top: int, left: int, hr: np.ndarray, absent: np.ndarray,
                                 bit_depth: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """The item of a patch at ``(top, left)`` of a whole-image degradation, ``hr`` with its discs and
        ``absent`` without: the LR without them is cut from the degraded whole image; the LR with them is the
        whole image's reconstruction before its clip plus the degradation's change for the discs, computed on
        the patch alone (``Degradation.affine_parts``), so the whole slice is not degraded again per patch."""
        size = self.patch_size
        lr_absent = self.whole_lr(image_index)[top:top + size, left:left + size]
        lr = lr_absent
        if hr is not absent:
            change = load(self._affine_parts[1])(hr, absent, self.scale, **self.degradation_params)
            reconstruction = self.whole_reconstruction(image_index)[top:top + size, left:left + size]
            lr = quantise(reconstruction + change, bit_depth)
        if not self.signal_pairs:
            hr, lr = _augment(hr, lr, rng=rng) if self.augment else (hr, lr)
            return _to_tensor(lr), _to_tensor(hr)
        if self.augment:
            hr, lr, absent, lr_absent = _augment(hr, lr, absent, lr_absent, rng=rng)
        return _to_tensor(lr), _to_tensor(hr), _to_tensor(lr_absent), _to_tensor(absent)

    def edge_points(self, image_index: int) -> np.ndarray:
        """The hard-step positions of image ``image_index`` (:func:`hard_edge_points`), found once and kept."""
        if image_index not in self._edge_points:
            stored, peak, _ = self.store.get_stored(image_index)
            self._edge_points[image_index] = hard_edge_points(stored, peak, self.hard_edge_step,
                                                              seed=self.seed + image_index)
        return self._edge_points[image_index]

    def preload(self) -> None:
        """Decode every image, and degrade each whole image once for whole-image degradations, now: before
        DataLoader workers fork, so that they share the results instead of each making its own."""
        self.store.preload()
        if self.hard_edge_fraction:
            for index in range(len(self.store)):
                self.edge_points(index)
        if self.whole_image:
            for index in range(len(self.store)):
                self.whole_lr(index)
                if self.signal_prob:
                    self.whole_reconstruction(index)

    def whole_lr(self, image_index: int) -> np.ndarray:
        """The degraded whole image ``image_index`` (a whole-image degradation), made once and kept."""
        if image_index not in self._whole_lr:
            stored, peak, bit_depth = self.store.get_stored(image_index)
            hr = stored.astype(np.float32) / peak
            rng = np.random.default_rng([self.seed, image_index])
            lr = self.degrade(hr, self.scale, bit_depth=bit_depth, rng=rng, **self.degradation_params)
            self._whole_lr[image_index] = np.asarray(lr, dtype=np.float32)
        return self._whole_lr[image_index]


    def whole_reconstruction(self, image_index: int) -> np.ndarray:
        """The whole image ``image_index`` through the affine part of its degradation, before the final clip
        (``Degradation.affine_parts``), made once and kept: what faint signals are added to."""
        if image_index not in self._whole_reconstruction:
            stored, peak, _ = self.store.get_stored(image_index)
            hr = stored.astype(np.float32) / peak
            reconstruct = load(self._affine_parts[0])
            self._whole_reconstruction[image_index] = reconstruct(hr, self.scale, **self.degradation_params)
        return self._whole_reconstruction[image_index]


def source_repeats(sources: Sequence[str]) -> list[int]:
    """Per image, how often to draw it so that every source gives about as many patches as the largest:
    round(largest source's count / its source's count), at least 1 (e.g. 193, 139, 54 images -> 1, 1, 4)."""
    counts: dict[str, int] = {}
    for source in sources:
        counts[source] = counts.get(source, 0) + 1
    largest = max(counts.values(), default=1)
    return [max(1, round(largest / counts[source])) for source in sources]


def split_rows(manifest: str | Path, split: str, *, min_size: int = 0) -> list[ManifestRow]:
    """Rows of one split of a ``medsr prepare`` manifest whose images are at least ``min_size`` a side."""
    return [row for row in read_manifest(manifest, split=split) if min(int(row.width), int(row.height)) >= min_size]


def manifest_paths(manifest: str | Path, split: str, *, min_size: int = 0) -> list[Path]:
    """Image paths of one split of a ``medsr prepare`` manifest (resolved against the manifest's folder)."""
    return [Path(row.path) for row in split_rows(manifest, split, min_size=min_size)]
