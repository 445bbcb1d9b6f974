"""Faint discs in sparse-view CT patches: HU contrast in soft tissue, and an LR that matches degrading the whole
slice with the discs in it, though only the discs' own FBP is computed per patch."""

from __future__ import annotations

import csv
import dataclasses
import re

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from medsr import degrade
from medsr.data.datasets import PatchDataset
from medsr.data.signals import FaintSignals, insert_faint_discs
from medsr.degrade.ct import sparse_view_change, sparse_view_fbp, sparse_view_reconstruction
from medsr.train.config import TrainConfig
from medsr.train.trainer import train

VALUE_RANGE = (-1024.0, 3071.0)
SPAN = VALUE_RANGE[1] - VALUE_RANGE[0]
CT_SIGNALS = FaintSignals(diameter=(4.0, 12.0), contrast=(5.0, 20.0), count=(2, 4), absolute=True,
                          within=(-200.0, 300.0))


def _phantom_hu(size: int = 128, seed: int = 0) -> np.ndarray:
    """A body (soft tissue with texture) with two lungs and a bone, in air: HU."""
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    hu = np.full((size, size), -1000.0)
    hu[(xx / 0.42) ** 2 + (yy / 0.34) ** 2 < 1] = 40.0
    hu += np.where(hu > -1000, gaussian_filter(np.random.default_rng(seed).normal(0, 60, hu.shape), 2.0), 0.0)
    for centre in (-0.2, 0.2):
        hu[((xx - centre) / 0.12) ** 2 + (yy / 0.18) ** 2 < 1] = -850.0
    hu[(xx ** 2 + (yy - 0.25) ** 2) < 0.03 ** 2] = 900.0
    return hu


def _save(tmp_path, hu: np.ndarray, name: str = "slice.png"):
    path = tmp_path / name
    Image.fromarray(np.uint16(np.rint(hu + 1024))).save(path)
    return path


def _dataset(path, **overrides) -> PatchDataset:
    settings = dict(scale=4, patch_size=48, degradation="ct-sparse-view", degradation_params={"n_angles": 180},
                    patches_per_image=12, value_range=VALUE_RANGE, raster_offset=1024.0, signal_prob=1.0,
                    signals=CT_SIGNALS, signal_pairs=True, augment=False)
    settings.update(overrides)
    return PatchDataset([path], **settings)


def test_ct_discs_add_their_hu_contrast_only_inside_soft_tissue():
    hu = _phantom_hu()
    unit = ((hu - VALUE_RANGE[0]) / SPAN).astype(np.float32)[..., None]
    flat = FaintSignals(diameter=(8.0, 8.0), contrast=(10.0, 10.0), count=(6, 6), bright=1.0, absolute=True,
                        within=(-200.0, 300.0))
    for seed in range(5):
        added = (insert_faint_discs(unit, np.random.default_rng(seed), flat, VALUE_RANGE) - unit)[..., 0] * SPAN
        assert added.max() == pytest.approx(10.0, abs=0.01) or added.max() > 10.0  # overlapping discs add up
        assert added.min() >= 0.0
        under = hu[added > 0]
        assert under.min() >= -200.0 and under.max() <= 300.0  # never on lung, bone or air
    # relative contrast (the chest default) is unchanged by a value range it does not use
    plain = FaintSignals(count=(3, 3))
    np.testing.assert_array_equal(insert_faint_discs(unit, np.random.default_rng(3), plain),
                                  insert_faint_discs(unit, np.random.default_rng(3), plain, VALUE_RANGE))
    with pytest.raises(ValueError, match="positive values"):
        FaintSignals(contrast=(0.0, 14.0), absolute=True)
    with pytest.raises(ValueError, match="within"):
        FaintSignals(within=(300.0, -200.0))


def test_the_reconstruction_is_affine_so_a_change_adds_its_own_fbp_to_float_precision():
    hu = _phantom_hu(96)
    unit = ((hu - VALUE_RANGE[0]) / SPAN)[..., None]
    discs = insert_faint_discs(unit.astype(np.float32), np.random.default_rng(4), CT_SIGNALS, VALUE_RANGE)
    params = {"n_angles": 60, "value_range": VALUE_RANGE}
    whole = sparse_view_reconstruction(discs, 4, **params)
    added = sparse_view_reconstruction(unit, 4, **params) + sparse_view_change(discs, unit, 4, **params)
    np.testing.assert_allclose(added, whole, rtol=0, atol=1e-9)
    assert np.abs(whole - sparse_view_reconstruction(unit, 4, **params)).max() * SPAN > 4.0  # the discs show
    np.testing.assert_array_equal(sparse_view_fbp(discs, 4, bit_depth=16, **params),
                                  np.clip(whole, 0, 1).astype(np.float32))


def test_patch_lrs_match_degrading_the_whole_slice_with_the_discs(tmp_path):
    hu = _phantom_hu()
    path = _save(tmp_path, hu)
    data = _dataset(path)
    stored = data.store.get(0)[0]  # the slice as training reads it: [0, 1] on the HU range
    params = {"n_angles": 180, "value_range": VALUE_RANGE}
    whole_absent = sparse_view_fbp(stored, 4, bit_depth=16, **params)
    with_discs = 0
    for index in range(len(data)):
        lr, hr, lr_absent, hr_absent = (t.numpy().transpose(1, 2, 0) for t in data[index])
        rows, cols = _locate(stored[..., 0], hr_absent[..., 0])
        window = np.s_[rows:rows + 48, cols:cols + 48]
        np.testing.assert_array_equal(lr_absent, whole_absent[window])  # the twin is the cached slice's LR
        discs = hr - hr_absent
        if not discs.any():
            np.testing.assert_array_equal(lr, lr_absent)
            continue
        with_discs += 1
        slice_with = stored.copy()
        slice_with[window] = hr
        reference = sparse_view_fbp(slice_with, 4, bit_depth=16, **params)[window] - whole_absent[window]
        got = lr - lr_absent
        peak = np.abs(discs).max()
        # the discs' FBP on the patch alone is the whole slice's up to interpolation (rotation about the window's
        # centre, not the slice's): within 20 % of the strongest disc at any pixel and 2.5 % RMS (measured at
        # most 14 % and 1.7 % on these slices)
        assert np.abs(got - reference).max() <= 0.20 * peak
        assert np.sqrt(np.mean((got - reference) ** 2)) <= 0.025 * peak
        # outside the discs the HR pair is equal; the LR differs by the discs' faint streaks, not more
        assert (hr[discs == 0] == hr_absent[discs == 0]).all()
        assert np.abs(got).max() <= 2.0 * peak
    assert with_discs >= 6


def _locate(image: np.ndarray, patch: np.ndarray) -> tuple[int, int]:
    """Where ``patch`` was cut from ``image`` (exact match; brute force)."""
    size = patch.shape[0]
    for top in range(image.shape[0] - size + 1):
        for left in range(image.shape[1] - size + 1):
            if image[top, left] == patch[0, 0] and np.array_equal(image[top:top + size, left:left + size], patch):
                return top, left
    raise AssertionError("patch not found in the slice")


def test_flips_apply_alike_and_runs_without_signals_keep_their_patches(tmp_path):
    path = _save(tmp_path, _phantom_hu())
    flipped, still = _dataset(path, augment=True), _dataset(path)
    for index in range(len(still)):
        a, b = flipped[index], still[index]
        # the same patch and discs (same draws before the flips), each of the four flipped the same way
        diffs = [(a[0] - a[2]).numpy(), (b[0] - b[2]).numpy()]
        assert any(np.array_equal(diffs[0], _orient(diffs[1], flip)) for flip in _ORIENTATIONS)
        hrs = [a[1].numpy(), b[1].numpy()]
        assert any(np.array_equal(hrs[0], _orient(hrs[1], flip)) and np.array_equal(diffs[0], _orient(diffs[1], flip))
                   for flip in _ORIENTATIONS)
    plain = _dataset(path, signal_prob=0.0, signal_pairs=False, augment=True)
    assert len(plain[0]) == 2 and not plain._whole_reconstruction  # the no-signal path caches nothing new
    plain.preload()
    assert not plain._whole_reconstruction


_ORIENTATIONS = [(fx, fy, tr) for fx in (False, True) for fy in (False, True) for tr in (False, True)]


def _orient(patch: np.ndarray, flip: tuple[bool, bool, bool]) -> np.ndarray:
    """``(C, H, W)`` patch flipped as :func:`medsr.data.datasets._augment` does."""
    flip_x, flip_y, transpose = flip
    if flip_x:
        patch = patch[:, :, ::-1]
    if flip_y:
        patch = patch[:, ::-1, :]
    return np.transpose(patch, (0, 2, 1)) if transpose else patch


def test_whole_image_degradations_without_affine_parts_still_refuse_signals(tmp_path, monkeypatch):
    path = _save(tmp_path, _phantom_hu(64))
    spec = degrade.REGISTRY["ct-sparse-view"]
    monkeypatch.setitem(degrade.REGISTRY, "ct-sparse-view", dataclasses.replace(spec, affine_parts=None))
    with pytest.raises(ValueError, match="whole images"):
        _dataset(path)


def test_a_tiny_ct_run_with_the_signal_loss_logs_it(tmp_path, capsys):
    rows = []
    for i in range(3):
        _save(tmp_path, _phantom_hu(64, seed=i), f"ct{i}.png")
        rows.append([f"ct{i}.png", f"p{i}", "val" if i == 2 else "train", "CT", 64, 64, 1, 16])
    manifest = tmp_path / "ct.csv"
    with manifest.open("w", newline="") as handle:
        csv.writer(handle).writerows([("path", "patient_id", "split", "modality", "width", "height", "channels",
                                       "bit_depth"), *rows])
    config = TrainConfig(manifest=str(manifest), model="plainrep", model_args={"num_channels": 8, "num_convs": 2},
                         degradation="ct-sparse-view", degradation_params={"n_angles": 36}, scale=4, patch_size=32,
                         batch_size=2, patches_per_image=2, epochs=1, num_workers=0, value_range=list(VALUE_RANGE),
                         raster_offset=1024.0, modality="CT", signal_prob=1.0, signal_weight=10.0,
                         signal_params={"absolute": True, "contrast": [5, 20], "within": [-200, 300]},
                         pixel_loss="l1", out=str(tmp_path / "run"), threads=1, tensorboard=False,
                         log_every_steps=1)
    assert config.validate().faint_signals().within == (-200, 300)
    run_dir = train(config)
    logged = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert float(logged[-1]["loss_g"]) > float(logged[-1]["loss_pixel"]) > 0  # the signal term adds to it
    steps = re.findall(r"loss_g=([0-9.e-]+) loss_pixel=([0-9.e-]+) loss_signal=([0-9.e-]+)", capsys.readouterr().out)
    assert len(steps) == 2
    for total, pixel, signal in steps:
        assert float(signal) > 0
        assert float(total) == pytest.approx(float(pixel) + 10.0 * float(signal), rel=1e-4)
