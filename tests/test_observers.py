"""Observer sanity suite: synthetic data with known answers (white noise, where the ideal observer is analytic)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.stats import norm

from medsr.observers import (
    auc,
    auc_difference_interval,
    auc_interval,
    band_statistics,
    disc_signal,
    dprime,
    dprime_from_auc,
    fold_of_groups,
    group_counts,
    laguerre_gauss_channels,
    observer_scores,
    pair_wins,
    weighted_auc,
)

SIZE = 16


def white_noise_rois(amplitude: float, n: int = 4000, seed: int = 0, diameter: float = 6.0):
    """Paired present/absent ROIs in unit white Gaussian noise; the signal, and one group per 20 ROIs."""
    rng = np.random.default_rng(seed)
    signal = amplitude * disc_signal(SIZE, diameter)
    present = rng.normal(size=(n, SIZE, SIZE)) + signal
    absent = rng.normal(size=(n, SIZE, SIZE))
    return present, absent, signal, np.arange(n) // 20


def test_auc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(1)
    p, a = rng.integers(0, 5, 60).astype(float), rng.integers(0, 4, 45).astype(float)
    pairwise = np.mean((p[:, None] > a[None, :]) + 0.5 * (p[:, None] == a[None, :]))
    assert auc(p, a) == pytest.approx(pairwise, abs=1e-12)


def test_laguerre_gauss_channels_are_orthonormal():
    u = laguerre_gauss_channels(64, 8.0, 6)
    np.testing.assert_allclose(u @ u.T, np.eye(6), atol=2e-3)


def test_disc_signal_shape():
    disc = disc_signal(33, 10.0, edge=2.0)
    assert disc[16, 16] == 1.0 and disc[0, 0] == 0.0
    assert disc.sum() == pytest.approx(np.pi * 25, rel=0.03)  # a smooth edge keeps the disc's area


@pytest.mark.parametrize("observer", ["npw", "cho"])
def test_white_noise_observers_reach_the_ideal_observer(observer):
    """In white noise the ideal observer's d' is ||s|| / sigma and its AUC Phi(d' / sqrt 2)."""
    present, absent, signal, groups = white_noise_rois(0.35)
    ideal = float(np.linalg.norm(signal))  # sigma = 1
    assert 1.5 < ideal < 3.0
    sp, sa = observer_scores(present, absent, groups, observer, channel_width=5.0)
    assert dprime(sp, sa) == pytest.approx(ideal, rel=0.08)
    assert dprime(sp, sa) <= ideal * 1.04  # no observer beats the ideal one (beyond sampling error)
    assert auc(sp, sa) == pytest.approx(norm.cdf(ideal / np.sqrt(2)), abs=0.02)
    assert dprime_from_auc(auc(sp, sa)) == pytest.approx(dprime(sp, sa), rel=0.08)


def test_cho_analytic_dprime_is_the_signal_energy_its_channels_hold():
    """For white noise CHO d'^2 = s_c^T (U U^T)^-1 s_c (sigma 1): at most ||s||^2, and near it for a disc."""
    signal = disc_signal(SIZE, 6.0).ravel()
    u = laguerre_gauss_channels(SIZE, 5.0)
    sc = u @ signal
    cho = np.sqrt(sc @ np.linalg.solve(u @ u.T, sc))
    assert 0.95 * np.linalg.norm(signal) < cho <= np.linalg.norm(signal) + 1e-9


@pytest.mark.parametrize("observer", ["npw", "cho"])
def test_auc_is_one_half_when_present_equals_absent(observer):
    present, _, _, groups = white_noise_rois(0.0, n=400)
    sp, sa = observer_scores(present, present.copy(), groups, observer)
    assert auc(sp, sa) == 0.5
    interval = auc_interval(sp, sa, groups, count=200)
    assert interval.low == interval.high == 0.5


@pytest.mark.parametrize("observer", ["npw", "cho"])
def test_auc_rises_with_contrast(observer):
    values = []
    for amplitude in (0.05, 0.15, 0.3, 0.5):
        present, absent, _, groups = white_noise_rois(amplitude, n=600, seed=3)
        values.append(auc(*observer_scores(present, absent, groups, observer)))
    assert values == sorted(values) and values[-1] > 0.9 and values[0] < 0.65


def test_seeded_runs_repeat_exactly_and_the_seed_matters():
    present, absent, _, groups = white_noise_rois(0.2, n=600, seed=5)
    first = observer_scores(present, absent, groups, "cho", seed=1)
    again = observer_scores(present, absent, groups, "cho", seed=1)
    np.testing.assert_array_equal(first[0], again[0])
    other = observer_scores(present, absent, groups, "cho", seed=2)
    assert not np.array_equal(first[0], other[0])  # another split into halves
    a, b = auc_interval(*first, groups, seed=7), auc_interval(*first, groups, seed=7)
    assert a == b and a.low < a.value < a.high
    assert auc_interval(*first, groups, seed=8) != a


def test_folds_keep_each_image_on_one_side():
    groups = np.repeat(np.arange(10), 7)
    fold = fold_of_groups(groups, 2, seed=0)
    for g in range(10):
        assert len(set(fold[groups == g])) == 1
    assert sorted(np.bincount(fold)) == [35, 35]


def test_auc_difference_interval_of_a_weaker_method_lies_below_zero():
    present, absent, _, groups = white_noise_rois(0.3, n=1200, seed=2)
    strong = observer_scores(present, absent, groups, "cho")
    noise = np.random.default_rng(9).normal(size=present.shape) * 1.5
    weak = observer_scores(present + noise, absent + noise[::-1], groups, "cho")
    diff = auc_difference_interval(weak, strong, groups, count=300)
    assert diff.high < 0 and diff.value == pytest.approx(auc(*weak) - auc(*strong))


def test_a_resample_is_scored_as_its_rois_drawn_out_less_same_place_pairs_of_different_copies():
    rng = np.random.default_rng(11)
    present, absent = rng.normal(0.3, 1, 30).round(1), rng.normal(0, 1, 30).round(1)  # rounded: ties too
    groups = np.repeat(np.arange(6), 5)
    wins = pair_wins(present, absent)
    assert weighted_auc(wins, np.ones(30)) == pytest.approx(auc(present, absent))
    for weights in list(group_counts(groups, 5, seed=3)):
        # brute force: every ROI pair copied weights[i] times, copy c of each; Mann-Whitney over the copies,
        # leaving out a present copy against the absent ROI of its own place in another copy
        copies = [(i, c) for i in range(30) for c in range(int(weights[i]))]
        total = count = 0.0
        for i, c in copies:
            for j, d in copies:
                if i == j and c != d:
                    continue
                total += 1.0 if present[i] > absent[j] else 0.5 if present[i] == absent[j] else 0.0
                count += 1
        assert weighted_auc(wins, weights) == pytest.approx(total / count)


def test_the_interval_holds_the_auc_when_same_place_pairs_differ_by_the_signal_alone():
    """CT-like: few images, a background that varies from place to place far more than the signal, no noise
    between the present and absent ROI of one place. Counting those pairs once per copy keeps the interval
    around the AUC; counted per copy pair, 97.5 % of the resamples scored at or above it."""
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(4), 15)
    absent = rng.normal(0, 1, 60) + rng.normal(0, 1, 4)[groups]
    present = absent + 0.05
    interval = auc_interval(present, absent, groups)
    assert interval.low < interval.value < interval.high
    assert interval.value == pytest.approx(auc(present, absent))


def test_band_statistics_known_answers():
    rng = np.random.default_rng(4)
    truth = rng.normal(size=(128, 128))
    same = band_statistics(truth, truth, 4)
    assert same.power_ratio == pytest.approx(1.0) and same.correlation == pytest.approx(1.0)
    smooth = band_statistics(gaussian_filter(truth, 1.0, mode="wrap"), truth, 4)
    assert smooth.power_ratio < 0.3  # smoothed
    halved = band_statistics(0.5 * truth, truth, 4)
    assert halved.power_ratio == pytest.approx(0.25) and halved.correlation == pytest.approx(1.0)  # right, weaker
    invented = band_statistics(truth + rng.normal(size=truth.shape), truth, 4)
    assert invented.power_ratio == pytest.approx(2.0, rel=0.05)
    assert invented.correlation == pytest.approx(1 / np.sqrt(2), abs=0.03)
    assert abs(band_statistics(rng.normal(size=truth.shape), truth, 4).correlation) < 0.05


def test_octave_band_is_the_first_octave_above_the_lr_nyquist():
    from medsr.observers import high_band_mask

    whole, octave = high_band_mask((64, 64), 4), high_band_mask((64, 64), 4, octave=True)
    f = np.abs(np.fft.fftfreq(64))
    assert octave.sum() == (f <= 0.25).sum() ** 2 - (f <= 0.125).sum() ** 2  # 33^2 - 17^2 frequencies
    assert np.all(whole[octave]) and whole.sum() == 64**2 - 17**2
