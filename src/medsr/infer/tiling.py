"""Tiled inference: any image size in bounded memory, equal to whole-image inference.

An image larger than ``tile`` is cut into tiles of at most ``tile`` pixels. Each tile is super-resolved on its
own and added into the output with a separable weight: zero where the tile has less than ``margin`` pixels of
context (those pixels saw the tile's padding instead of the neighbour), a linear ramp over the next ``overlap``
pixels, one beyond; weights are normalised per axis so they sum to exactly one at every pixel, and neighbours
share at least ``2 * margin + overlap`` pixels. ``margin`` is ``overlap / 2``, raised to the model's
``tile_context`` where the model needs more. With the default overlap of 32 pixels, trained and random
SRResNet/Swift-SRGAN generators agree with whole-image inference to within 0.1 grey levels (8-bit), so no seam
can show.

A model whose output depends on where its pooling grid falls (the U-Net, ``medsr.models.unet``) says so through
two attributes of its predictor (:func:`tile_needs`): ``tile_multiple``, which tile starts must be multiples of
(in input pixels), and ``tile_context``, the context beyond which no input pixel changes an output pixel.
Tiles then start on that grid and the last one ends at the image's edge, so each tile computes exactly what the
whole image would at every pixel it is given weight for: tiled equals whole-image inference to float precision,
whatever the tile, the overlap or the memory budget. Models without them have multiple 1 and context 0.

Only the output array and one batch of tiles' activations are held in memory; given a memory ``cost`` of the
predictor and a budget ``max_memory``, :func:`fit_tile` shrinks the tile until one batch of tiles fits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from medsr.io.image import empty_reason


class Predictor(Protocol):
    """A model ready to run: ``(N, C, h, w)`` float32 in [0, 1] -> ``(N, C, h*sy, w*sx)`` float32.

    It may also carry ``tile_multiple`` and ``tile_context`` (ints, input pixels; see :func:`tile_needs`).
    """

    scale: tuple[int, int]

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


MemoryCost = Callable[[int, int, int, int], float]
"""``cost(n, c, h, w)``: bytes a predictor holds at its peak while it runs an ``(n, c, h, w)`` batch."""


def tile_needs(predict: object) -> tuple[int, int]:
    """``(tile_multiple, tile_context)`` of a predictor (or model): ``(1, 0)`` where it declares none.

    ``tile_multiple``: tile starts must be multiples of it (input pixels) for a tile to compute what the whole
    image does; ``tile_context``: an output pixel with at least this many input pixels on every side within
    its tile equals the whole image's.
    """
    multiple, context = int(getattr(predict, "tile_multiple", 1)), int(getattr(predict, "tile_context", 0))
    if multiple < 1 or context < 0:
        raise ValueError(f"tile_multiple {multiple} / tile_context {context}: need >= 1 and >= 0")
    return multiple, context


def shared_pixels(overlap: int, context: int = 0) -> int:
    """Pixels neighbouring tiles share at least: ``2 * margin + overlap``, ``margin = max(overlap / 2, context)``."""
    return max(2 * overlap, 2 * context + overlap)


def workable_tile(tile: int, overlap: int, *, multiple: int = 1, context: int = 0) -> int:
    """``tile``, raised where the model's needs do not fit it: to at least what lets :func:`tile_layout` step by
    ``multiple`` pixels at any image length, and, where the model's ``context`` widens what neighbours share
    beyond ``2 * overlap``, to twice that (so each tile still trusts about half of its pixels; 268 for a 4-level
    U-Net at overlap 32). Never raised without a context and with ``multiple`` 1 (``tile > 2 * overlap``)."""
    shared = shared_pixels(overlap, context)
    return max(tile, shared + 2 * multiple - 1, 2 * shared if shared > 2 * overlap else 0)


def tile_layout(
    length: int, tile: int, overlap: int, *, multiple: int = 1, context: int = 0
) -> tuple[int, list[int]]:
    """``(size, starts)`` of equal tiles covering ``[0, length)``, neighbours sharing >= :func:`shared_pixels`.

    Starts are multiples of ``multiple`` and the last tile ends at ``length``. Uses as few tiles as ``tile``
    allows, then shrinks them to the smallest size that still covers the axis (640 pixels with tile 512 and
    overlap 32: two tiles of 352, not two of 512), so little work is repeated.
    """
    shared = shared_pixels(overlap, context)
    if length <= tile:
        if tile <= shared:
            raise ValueError(f"tile ({tile}) must be larger than the {shared} pixels tiles share")
        return length, [0]
    largest = tile - (tile - length) % multiple  # the largest size <= tile that leaves the last start on the grid
    if largest - shared < multiple:
        raise ValueError(f"tile ({tile}) must be at least {shared + 2 * multiple - 1} (shared pixels {shared},"
                         f" starts on multiples of {multiple})")
    # sizes length - u * multiple; u units of `multiple` to advance over n - 1 steps of at most (size - shared)
    n = 1 + -(-((length - largest) // multiple) // ((largest - shared) // multiple))  # fewest tiles
    units = (n - 1) * ((length - shared) // multiple) // n  # the most units: the smallest tiles that still cover
    return length - units * multiple, [multiple * round(i * units / (n - 1)) for i in range(n)]


def tile_starts(length: int, tile: int, overlap: int, *, multiple: int = 1, context: int = 0) -> list[int]:
    """Starts of the tiles of :func:`tile_layout`."""
    return tile_layout(length, tile, overlap, multiple=multiple, context=context)[1]


def smallest_tile(tile: int, overlap: int, *, multiple: int = 1, context: int = 0) -> int:
    """The smallest tile :func:`fit_tile` goes down to: twice the pixels neighbours share (``4 * overlap``
    without a model context; at least 8 and what :func:`workable_tile` needs), so each tile still trusts about
    half of its pixels (smaller tiles would mostly recompute their neighbours' context)."""
    tile = workable_tile(tile, overlap, multiple=multiple, context=context)
    shared = shared_pixels(overlap, context)
    return min(tile, max(8, 2 * shared, shared + 2 * multiple - 1))


def fit_tile(
    height: int,
    width: int,
    channels: int,
    *,
    tile: int,
    overlap: int,
    batch_size: int = 1,
    cost: MemoryCost | None = None,
    max_memory: float | None = None,
    multiple: int = 1,
    context: int = 0,
) -> int:
    """The tile side used for a ``(height, width, channels)`` image: from the largest ``t <= tile`` whose batch
    of tiles fits ``max_memory`` by ``cost``, the longer side of :func:`tile_layout`'s tiles at ``t``.

    ``cost`` is asked about the actual tile shapes (an image 350 pixels high never gets taller tiles; 512
    pixels with ``t`` 511 give two tiles of 288 per axis, so 288 is returned) and ``min(batch_size, number of
    tiles)`` tiles per batch. The side returned lays out the same tiles as ``t`` and never exceeds ``tile``
    (:func:`workable_tile` of it where the model's ``multiple`` and ``context`` need more); it is
    ``max(height, width)`` when the whole image fits. Without ``cost`` or ``max_memory``, ``t`` is ``tile``;
    when even :func:`smallest_tile` does not fit the budget, ``t`` is that (and the budget is exceeded).
    """
    grid = {"multiple": multiple, "context": context}
    side = _fitting_tile(height, width, channels, tile, overlap, batch_size, cost, max_memory, **grid)
    return max(tile_layout(height, side, overlap, **grid)[0], tile_layout(width, side, overlap, **grid)[0])


def _fitting_tile(
    height: int, width: int, channels: int, tile: int, overlap: int, batch_size: int, cost: MemoryCost | None,
    max_memory: float | None, *, multiple: int = 1, context: int = 0,
) -> int:
    """The ``t`` of :func:`fit_tile` (the tile argument for :func:`tile_layout`)."""
    grid = {"multiple": multiple, "context": context}
    tile = workable_tile(tile, overlap, **grid)
    if cost is None or max_memory is None:
        return tile
    smallest = smallest_tile(tile, overlap, **grid)
    for side in range(tile, smallest, -1):
        (th, ys), (tw, xs) = tile_layout(height, side, overlap, **grid), tile_layout(width, side, overlap, **grid)
        if cost(min(batch_size, len(ys) * len(xs)), channels, th, tw) <= max_memory:
            return side
    return smallest


def axis_weights(
    length: int, tile: int, overlap: int, scale: int, *, multiple: int = 1, context: int = 0
) -> list[np.ndarray]:
    """Per-tile 1-D blending weights in output pixels along one axis, normalised to sum to one at each pixel.

    Returns one float64 array of length ``size * scale`` per start of :func:`tile_layout`. A weight is zero
    where the tile has less than ``max(overlap / 2, context)`` input pixels of context towards a neighbour.
    """
    size, starts = tile_layout(length, tile, overlap, multiple=multiple, context=context)
    size *= scale
    if len(starts) == 1:
        return [np.ones(size, dtype=np.float64)]
    margin = max(overlap / 2.0, context) * scale  # context below which a pixel is not trusted at all
    ramp = max(overlap * scale, 1.0)  # then a linear rise to full weight
    context_of = np.arange(size, dtype=np.float64) + 0.5  # distance of each pixel centre from the tile's start
    rise = np.clip((context_of - margin) / ramp, 0.0, 1.0)
    fall = rise[::-1]
    raw = []
    for i in range(len(starts)):
        w = np.ones(size, dtype=np.float64)
        if i > 0:  # an inner edge at the start
            w = np.minimum(w, rise)
        if i < len(starts) - 1:  # an inner edge at the end
            w = np.minimum(w, fall)
        raw.append(w)
    total = np.zeros(length * scale, dtype=np.float64)
    for start, w in zip(starts, raw, strict=True):
        total[start * scale : start * scale + size] += w
    if np.any(total <= 0):  # cannot happen when neighbours share shared_pixels(); guards the invariant
        raise AssertionError("tile weights leave pixels uncovered")
    return [w / total[s * scale : s * scale + size] for s, w in zip(starts, raw, strict=True)]


def _check_image(lr: np.ndarray) -> np.ndarray:
    if lr.ndim != 3:
        raise ValueError(f"expected an (H, W, C) image, got shape {lr.shape}")
    reason = empty_reason(lr.shape)
    if reason:
        raise ValueError(reason)
    return np.asarray(lr, dtype=np.float32)


def upscale_tiled(
    predict: Predictor,
    lr: np.ndarray,
    *,
    tile: int = 512,
    overlap: int = 32,
    batch_size: int = 1,
    progress: Callable[[int, int], None] | None = None,
    cost: MemoryCost | None = None,
    max_memory: float | None = None,
) -> np.ndarray:
    """Super-resolve one ``(H, W, C)`` float image in [0, 1] by tiles -> ``(H*sy, W*sx, C)`` float32.

    ``predict`` must accept images with ``C`` channels (:func:`medsr.infer.runtime.get_predictor` adapts a
    model's channels). ``progress(done, total)`` is called after each batch of tiles. With ``cost`` and
    ``max_memory`` the tile is :func:`fit_tile`'s, at most ``tile``. The predictor's :func:`tile_needs` place
    the tiles and raise the margin of untrusted pixels above ``overlap / 2`` where the model needs it.
    """
    lr = _check_image(lr)
    height, width, channels = lr.shape
    multiple, context = tile_needs(predict)
    grid = {"multiple": multiple, "context": context}
    tile = _fitting_tile(height, width, channels, tile, overlap, batch_size, cost, max_memory, **grid)
    sy, sx = predict.scale
    (th, ys), (tw, xs) = tile_layout(height, tile, overlap, **grid), tile_layout(width, tile, overlap, **grid)
    if len(ys) == 1 and len(xs) == 1:
        out = predict(np.ascontiguousarray(lr.transpose(2, 0, 1))[None])[0]
        if progress:
            progress(1, 1)
        return np.clip(out.transpose(1, 2, 0), 0.0, 1.0)
    wys, wxs = axis_weights(height, tile, overlap, sy, **grid), axis_weights(width, tile, overlap, sx, **grid)
    out = np.zeros((height * sy, width * sx, channels), dtype=np.float32)
    tiles = [(iy, ix) for iy in range(len(ys)) for ix in range(len(xs))]
    for first in range(0, len(tiles), batch_size):
        chunk = tiles[first : first + batch_size]
        batch = np.stack([lr[ys[i] : ys[i] + th, xs[j] : xs[j] + tw].transpose(2, 0, 1) for i, j in chunk])
        result = predict(np.ascontiguousarray(batch))
        for (iy, ix), sr in zip(chunk, result, strict=True):
            weight = (wys[iy][:, None] * wxs[ix][None, :]).astype(np.float32)
            y0, x0 = ys[iy] * sy, xs[ix] * sx
            out[y0 : y0 + th * sy, x0 : x0 + tw * sx] += sr.transpose(1, 2, 0) * weight[:, :, None]
        if progress:
            progress(min(first + batch_size, len(tiles)), len(tiles))
    return np.clip(out, 0.0, 1.0, out=out)


def upscale_many(
    predict: Predictor,
    images: Sequence[np.ndarray],
    *,
    tile: int = 512,
    overlap: int = 32,
    batch_size: int = 8,
    cost: MemoryCost | None = None,
    max_memory: float | None = None,
) -> list[np.ndarray]:
    """Super-resolve several ``(H, W, C)`` images; same-size images that fit in one tile run as one batch.

    Larger images go through :func:`upscale_tiled`. Results come back in input order; each equals what
    :func:`upscale_tiled` gives for that image alone. With ``cost`` and ``max_memory``, tiles are sized by
    :func:`fit_tile` and batches of whole images hold as many as fit (at least one).
    """
    images = [_check_image(im) for im in images]
    results: list[np.ndarray | None] = [None] * len(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    batch_size = max(1, batch_size)
    multiple, context = tile_needs(predict)
    for i, im in enumerate(images):
        h, w, c = im.shape
        fitted = _fitting_tile(h, w, c, tile, overlap, 1, cost, max_memory, multiple=multiple, context=context)
        if h <= fitted and w <= fitted:
            groups.setdefault(im.shape, []).append(i)
        else:
            results[i] = upscale_tiled(predict, im, tile=tile, overlap=overlap, cost=cost, max_memory=max_memory)
    for shape, indices in groups.items():
        step = batch_size
        if cost is not None and max_memory is not None:
            h, w, c = shape
            step = next((n for n in range(batch_size, 1, -1) if cost(n, c, h, w) <= max_memory), 1)
        for first in range(0, len(indices), step):
            part = indices[first : first + step]
            batch = np.stack([images[i].transpose(2, 0, 1) for i in part])
            out = predict(np.ascontiguousarray(batch))
            for i, sr in zip(part, out, strict=True):
                results[i] = np.clip(sr.transpose(1, 2, 0), 0.0, 1.0)
    return [r for r in results if r is not None]
