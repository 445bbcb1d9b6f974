"""Faint round training signals: the stated contrast, local, reproducible, and only where asked for."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medsr.data.datasets import PatchDataset
from medsr.data.signals import FaintSignals, insert_faint_discs
from medsr.errors import ConfigError
from medsr.observers import disc_signal
from medsr.train.config import TrainConfig

ONE = FaintSignals(diameter=(8.0, 8.0), contrast=(0.02, 0.02), count=(1, 1), bright=1.0)


def test_a_disc_adds_its_contrast_times_the_local_mean_and_nothing_outside_it():
    for level in (0.25, 0.5):
        patch = np.full((48, 48, 1), level, np.float32)
        added = (insert_faint_discs(patch, np.random.default_rng(1), ONE) - patch)[..., 0]
        assert added.max() == pytest.approx(0.02 * level, rel=1e-4)  # the disc's flat core
        assert added.min() == 0.0
        # the whole disc and nothing else: its integral is the contrast times the smooth disc's area
        area = disc_signal(13, 8.0, 1.0).sum()
        assert added.sum() == pytest.approx(0.02 * level * area, rel=1e-3)
        assert area == pytest.approx(np.pi * 4.0**2, rel=0.05)
        rows, cols = np.nonzero(added)
        assert rows.max() - rows.min() <= 12 and cols.max() - cols.min() <= 12


def test_dark_discs_subtract_every_channel_alike_and_the_result_stays_in_range():
    patch = np.repeat(np.linspace(0.0, 1.0, 64, dtype=np.float32)[None, :, None], 64, axis=0)
    patch = np.repeat(patch, 3, axis=2)
    dark = FaintSignals(count=(4, 4), bright=0.0)
    out = insert_faint_discs(patch, np.random.default_rng(2), dark)
    assert out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    added = out - patch
    assert added.max() <= 0.0 and added.min() < 0.0
    np.testing.assert_array_equal(added[..., 0], added[..., 2])


def test_seeded_draws_repeat_and_differ_between_seeds():
    patch = np.full((96, 96, 1), 0.4, np.float32)
    first = insert_faint_discs(patch, np.random.default_rng(5))
    np.testing.assert_array_equal(first, insert_faint_discs(patch, np.random.default_rng(5)))
    assert not np.array_equal(first, insert_faint_discs(patch, np.random.default_rng(6)))


def test_settings_refuse_impossible_ranges():
    for bad in ({"diameter": (0.0, 4.0)}, {"contrast": (0.05, 0.01)}, {"count": (0, 2)}, {"bright": 1.5}):
        with pytest.raises(ValueError, match="signal"):
            FaintSignals(**bad)


def test_the_dataset_adds_discs_to_the_asked_share_of_patches_only(tmp_path):
    path = tmp_path / "flat.png"
    Image.fromarray(np.full((128, 128), 128, np.uint8)).save(path)

    def hrs(prob: float) -> list[np.ndarray]:
        data = PatchDataset([path], scale=4, patch_size=64, patches_per_image=40, augment=False, signal_prob=prob)
        return [data[i][1].numpy() for i in range(len(data))]

    flat = 128 / 255
    plain = hrs(0.0)
    assert all(np.array_equal(hr, np.full_like(hr, np.float32(flat))) for hr in plain)
    changed = [not np.allclose(hr, flat, atol=1e-6) for hr in hrs(1.0)]
    assert all(changed)
    assert 0.25 < np.mean([not np.allclose(hr, flat, atol=1e-6) for hr in hrs(0.5)]) < 0.75
    with pytest.raises(ValueError, match="signal_prob"):
        PatchDataset([path], signal_prob=-0.1)


def test_the_training_config_checks_the_signal_settings(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,patient_id,split\n")
    ok = TrainConfig(manifest=str(manifest), signal_prob=0.5, signal_params={"count": [2, 3]}).validate()
    assert ok.faint_signals().count == (2, 3)
    with pytest.raises(ConfigError, match="signal_params"):
        TrainConfig(manifest=str(manifest), signal_params={"count": [0, 3]}).validate()
    with pytest.raises(ConfigError, match="signal_params"):
        TrainConfig(manifest=str(manifest), signal_params={"size": 3}).validate()
    with pytest.raises(ConfigError, match="signal_prob"):
        TrainConfig(manifest=str(manifest), signal_prob=2.0).validate()
