"""Synthetic burned-in annotations: sharp, local, reproducible, and only where asked for."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medsr.data.datasets import PatchDataset, hard_edge_points
from medsr.data.overlays import _draw, burn_in_annotation


def _smooth(size: int = 96) -> np.ndarray:
    ramp = np.linspace(0.3, 0.6, size, dtype=np.float32)
    return np.tile(ramp, (size, 1))[..., None]


def test_an_annotation_adds_hard_steps_and_leaves_the_rest_of_the_patch_exactly_as_it_was():
    patch = _smooth()
    assert len(hard_edge_points(patch, 1.0, 40 / 255)) == 0
    for seed in range(20):
        out = burn_in_annotation(patch, np.random.default_rng(seed))
        assert out.shape == patch.shape and out.dtype == patch.dtype
        assert 0.0 <= out.min() and out.max() <= 1.0
        changed = np.abs(out - patch)[..., 0] > 1e-6
        assert 0 < changed.mean() < 0.6, seed  # local: strokes, not the whole patch
        assert len(hard_edge_points(out, 1.0, 40 / 255)) > 0, seed
    again = burn_in_annotation(patch, np.random.default_rng(7))
    np.testing.assert_array_equal(again, burn_in_annotation(patch, np.random.default_rng(7)))
    assert not np.array_equal(again, burn_in_annotation(patch, np.random.default_rng(8)))


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max(), cols.min(), cols.max()


def test_half_the_side_markers_sit_on_a_filled_disc_or_box_under_their_ring_and_letter():
    """NIH's circled "L": a bright ring and letter on a dark disc. The disc is the outline layer, inside the ring."""
    filled = []
    for seed in range(40):
        fill, outline = _draw("marker", (96, 96), np.random.default_rng(seed))
        ring_and_letter, disc = fill > 0.5, outline > 0.5
        assert ring_and_letter.any(), seed
        if disc.any():
            assert disc.sum() > ring_and_letter.sum(), seed  # a filled shape, not another ring
            assert _bounds(disc) == _bounds(ring_and_letter), seed  # the ring is the disc's rim
        filled.append(disc.any())
    assert 0.25 < np.mean(filled) < 0.75


def test_colour_patches_get_the_same_grey_annotation_in_every_channel():
    patch = np.repeat(_smooth(), 3, axis=2)
    out = burn_in_annotation(patch, np.random.default_rng(3))
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_the_dataset_draws_annotations_on_the_asked_share_of_patches_on_the_stored_grid(tmp_path):
    path = tmp_path / "smooth.png"
    Image.fromarray(np.rint(_smooth(128)[..., 0] * 255).astype(np.uint8)).save(path)

    def annotated(prob: float) -> list[bool]:
        data = PatchDataset([path], scale=4, patch_size=64, patches_per_image=60, overlay_prob=prob)
        hrs = [data[i][1].numpy() for i in range(len(data))]
        for hr in hrs:  # 8-bit grid, like the image the annotation is burned into
            np.testing.assert_allclose(hr * 255, np.rint(hr * 255), atol=1e-3)
        return [len(hard_edge_points(hr.transpose(1, 2, 0), 1.0, 40 / 255)) > 0 for hr in hrs]

    assert not any(annotated(0.0))
    assert all(annotated(1.0))
    assert 0.25 < np.mean(annotated(0.5)) < 0.75
    plain = PatchDataset([path], scale=4, patch_size=64, patches_per_image=3)
    zero = PatchDataset([path], scale=4, patch_size=64, patches_per_image=3, overlay_prob=0.0)
    for i in range(3):  # off by default: the same patches as before the option existed
        np.testing.assert_array_equal(plain[i][1].numpy(), zero[i][1].numpy())
    with pytest.raises(ValueError, match="overlay_prob"):
        PatchDataset([path], overlay_prob=1.5)
    with pytest.raises(ValueError, match="whole images"):
        PatchDataset([path], degradation="ct-sparse-view", scale=1, overlay_prob=0.5)
