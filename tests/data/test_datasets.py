"""Training and validation datasets: shapes, LR made by the degradation, determinism, workers, sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from medsr.data.datasets import PatchDataset
from medsr.degrade.bicubic import bicubic
from medsr.io import read_image
from medsr.protocol import Protocol


def _write(folder: Path, name: str, shape: tuple[int, ...], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, shape, dtype=np.uint8)
    path = folder / name
    Image.fromarray(array, "RGB" if len(shape) == 3 else "L").save(path)
    return path


@pytest.fixture
def gray_paths(tmp_path: Path) -> list[Path]:
    return [_write(tmp_path, f"g{i}.png", (70 + i, 90), i) for i in range(3)]


def test_patches_have_the_scaled_shapes_and_the_lr_is_pillow_bicubic_of_the_hr(gray_paths):
    dataset = PatchDataset(gray_paths, scale=4, patch_size=32, patches_per_image=2)
    assert len(dataset) == 6
    lr, hr = dataset[3]
    assert lr.shape == (1, 8, 8) and hr.shape == (1, 32, 32) and lr.dtype == torch.float32
    expected = bicubic(hr.numpy().transpose(1, 2, 0), 4, bit_depth=8)
    np.testing.assert_array_equal(lr.numpy().transpose(1, 2, 0), expected)
    # the HR patch is a crop (maybe flipped/rotated) of the image itself
    image = np.asarray(Image.open(gray_paths[1]), dtype=np.float32) / 255
    values = set(np.round(image.ravel() * 255).astype(int))
    assert set(np.round(hr.numpy().ravel() * 255).astype(int)) <= values


def test_sampling_depends_only_on_seed_epoch_and_index(gray_paths):
    a = PatchDataset(gray_paths, scale=2, patch_size=16, seed=1)
    b = PatchDataset(gray_paths, scale=2, patch_size=16, seed=1)
    assert torch.equal(a[2][1], b[2][1])
    a.set_epoch(1)
    assert not torch.equal(a[2][1], b[2][1])
    b.set_epoch(1)
    assert torch.equal(a[2][1], b[2][1])


def test_colour_stays_three_channels_and_ultrasound_keeps_height_without_augmentation(tmp_path):
    colour = [_write(tmp_path, "c.png", (40, 40, 3), 0)]
    lr, hr = PatchDataset(colour, scale=2, patch_size=16)[0]
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 16, 16)
    # ultrasound: a vertical gradient stays a vertical gradient (no rotation), LR keeps the full height
    ramp = np.repeat(np.linspace(0, 255, 64, dtype=np.float32)[:, None], 64, axis=1)
    Image.fromarray(np.uint8(ramp), "L").save(tmp_path / "us.png")
    dataset = PatchDataset([tmp_path / "us.png"], scale=4, patch_size=32, degradation="ultrasound",
                           patches_per_image=8)
    assert not dataset.augment
    for index in range(8):
        lr, hr = dataset[index]
        assert lr.shape == (1, 32, 8) and hr.shape == (1, 32, 32)
        assert torch.all(hr[0, 1:, 0] >= hr[0, :-1, 0]), "the patch was flipped or rotated"


def test_two_workers_give_the_same_batches_as_one_process(gray_paths):
    dataset = PatchDataset(gray_paths, scale=2, patch_size=16, patches_per_image=4)
    single = [b[1] for b in DataLoader(dataset, batch_size=4, num_workers=0)]
    workers = [b[1] for b in DataLoader(dataset, batch_size=4, num_workers=2)]
    assert all(torch.equal(x, y) for x, y in zip(single, workers, strict=True))


def test_a_distributed_sampler_splits_the_patches_between_ranks(gray_paths):
    dataset = PatchDataset(gray_paths, scale=2, patch_size=16, patches_per_image=4)
    ranks = [list(DistributedSampler(dataset, num_replicas=2, rank=r, shuffle=True, seed=0)) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1])
    assert set(ranks[0]) | set(ranks[1]) == set(range(len(dataset)))


def test_the_cache_keeps_images_only_while_it_has_room(gray_paths):
    cached = PatchDataset(gray_paths, scale=2, patch_size=16)
    cached.store.preload()
    assert len(cached.store._cache) == 3
    uncached = PatchDataset(gray_paths, scale=2, patch_size=16, cache_bytes=0)
    uncached.store.preload()
    assert not uncached.store._cache
    assert torch.equal(cached[1][1], uncached[1][1])


def test_an_image_smaller_than_the_patch_names_itself_and_the_fix(tmp_path):
    small = [_write(tmp_path, "tiny.png", (10, 10), 0)]
    with pytest.raises(ValueError, match=r"tiny\.png.*--min-size 32"):
        PatchDataset(small, scale=4, patch_size=32)[0]


def test_validation_images_are_whole_crops_to_a_multiple_of_the_scale(gray_paths):
    image = read_image(gray_paths[1])
    pair = Protocol(scale=4).pair(image)  # 71 x 90 -> 68 x 88
    assert pair.hr.shape == (68, 88, 1) and pair.lr.shape == (17, 22, 1) and pair.levels == 255
    np.testing.assert_array_equal(pair.lr, bicubic(pair.hr, 4))
    assert Protocol(scale=4, max_size=40).pair(image).hr.shape == (40, 40, 1)


def test_patch_candidates_steer_patches_to_detail_and_stay_reproducible(tmp_path):
    """Left half flat grey, right half noise: with 8 candidates almost every patch is on the detailed side."""
    from medsr.data.datasets import patch_detail

    rng = np.random.default_rng(0)
    pixels = np.full((128, 256), 100, np.uint8)
    pixels[:, 128:] = rng.integers(0, 256, (128, 128), dtype=np.uint8)
    path = tmp_path / "half.png"
    Image.fromarray(pixels).save(path)

    def detailed_share(candidates: int) -> float:
        data = PatchDataset([path], scale=4, patch_size=32, patches_per_image=200, patch_candidates=candidates,
                            augment=False)
        details = [patch_detail(data[i][1].numpy()[0] * 255) for i in range(len(data))]
        return float(np.mean([d > 20 for d in details]))

    assert detailed_share(1) < 0.8
    assert detailed_share(8) > 0.97
    again = PatchDataset([path], scale=4, patch_size=32, patches_per_image=4, patch_candidates=8)
    torch.testing.assert_close(again[3][1], PatchDataset([path], scale=4, patch_size=32, patches_per_image=4,
                                                         patch_candidates=8)[3][1])
    with pytest.raises(ValueError, match="patch_candidates"):
        PatchDataset([path], patch_candidates=0)


def test_hard_edge_patches_cover_the_one_marker_step_of_an_otherwise_smooth_image(tmp_path):
    """A smooth gradient with one small bright square (a burned-in marker): hard_edge_fraction=1 puts every
    patch over the square's outline; random patches mostly miss it; images without steps keep random patches."""
    from medsr.data.datasets import hard_edge_points

    ramp = np.tile(np.linspace(40, 90, 256), (256, 1))
    pixels = np.rint(ramp).astype(np.uint8)
    pixels[200:212, 30:42] = 250  # the marker: steps of ~200 grey levels along its four sides
    path = tmp_path / "marker.png"
    Image.fromarray(pixels).save(path)
    points = hard_edge_points(pixels[..., None], 255.0, 40 / 255)
    assert len(points) and points[:, 0].min() >= 199 and points[:, 0].max() <= 211
    assert points[:, 1].min() >= 29 and points[:, 1].max() <= 41
    assert len(hard_edge_points(pixels[..., None], 255.0, 40 / 255, limit=5)) == 5

    def marker_share(fraction: float, image: Path = path) -> float:
        data = PatchDataset([image], scale=4, patch_size=32, patches_per_image=100, hard_edge_fraction=fraction)
        return float(np.mean([data[i][1].max().item() > 0.9 for i in range(len(data))]))

    assert marker_share(1.0) == 1.0
    assert marker_share(0.0) < 0.2
    assert 0.3 < marker_share(0.5) < 0.75
    smooth = tmp_path / "smooth.png"
    Image.fromarray(np.rint(ramp).astype(np.uint8)).save(smooth)
    assert len(PatchDataset([smooth], scale=4, patch_size=32, hard_edge_fraction=1.0)) == 1
    assert PatchDataset([smooth], scale=4, patch_size=32, hard_edge_fraction=1.0)[0][1].shape == (1, 32, 32)
    for bad in ({"hard_edge_fraction": 1.5}, {"hard_edge_step": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PatchDataset([path], **bad)


def test_balanced_sources_draw_a_small_source_as_often_as_a_large_one(tmp_path):
    """Three flat images of source a and one of b: b is drawn three times per epoch, half of all patches."""
    from medsr.data.datasets import source_repeats

    assert source_repeats(["a", "a", "a", "b"]) == [1, 1, 1, 3]
    assert source_repeats(["h"] * 193 + ["n"] * 139 + ["k"] * 54) == [1] * 193 + [1] * 139 + [4] * 54
    assert source_repeats([]) == []
    paths = []
    for value in (10, 20, 30, 200):
        paths.append(tmp_path / f"flat{value}.png")
        Image.fromarray(np.full((40, 48), value, np.uint8)).save(paths[-1])
    data = PatchDataset(paths, scale=2, patch_size=16, patches_per_image=2, repeats=[1, 1, 1, 3])
    assert len(data) == 12
    values = [round(float(data[i][1].mean()) * 255) for i in range(len(data))]
    assert values.count(200) == 6 and values.count(10) == values.count(20) == values.count(30) == 2
    with pytest.raises(ValueError, match="repeats"):
        PatchDataset(paths, repeats=[1, 0, 1, 1])
    with pytest.raises(ValueError, match="repeats"):
        PatchDataset(paths, repeats=[1, 1])


def test_sparse_view_ct_patches_are_cut_from_the_degraded_whole_slice_with_the_same_flips(tmp_path):
    from scipy.ndimage import gaussian_filter

    from medsr.degrade.ct import sparse_view_fbp

    hu = gaussian_filter(np.random.default_rng(3).random((48, 40)), 2.0) * 1500 - 900
    Image.fromarray(np.uint16(np.rint(hu + 1024))).save(tmp_path / "ct.png")
    value_range = (-1024.0, 3071.0)
    kw = dict(scale=4, patch_size=16, degradation="ct-sparse-view", degradation_params={"n_angles": 36},
              patches_per_image=6, value_range=value_range, raster_offset=1024.0)
    plain = PatchDataset([tmp_path / "ct.png"], augment=False, **kw)
    plain.preload()  # degrades each whole slice now, before DataLoader workers would fork
    plain.degrade = None  # so any later degradation would fail
    whole_hr = (np.clip(np.rint(hu), -1024, 3071) + 1024) / 4095
    whole_lr = sparse_view_fbp(whole_hr[..., None].astype(np.float32), 4, bit_depth=16, n_angles=36,
                               value_range=value_range)
    np.testing.assert_allclose(plain.whole_lr(0), whole_lr, atol=2e-5)  # degraded once, as a whole slice
    augmented = PatchDataset([tmp_path / "ct.png"], augment=True, **kw)
    for index in range(6):
        lr, hr = (t[0].numpy() for t in augmented[index])
        # the LR patch is the same window of the whole FBP as the HR patch, under the same flips/transpose
        matches = [
            (top, left, k) for top in range(48 - 16 + 1) for left in range(40 - 16 + 1)
            for k, (view_hr, view_lr) in enumerate(zip(_views(whole_hr[top:top + 16, left:left + 16]),
                                                       _views(whole_lr[top:top + 16, left:left + 16, 0]), strict=True))
            if np.allclose(view_hr, hr, atol=1e-4) and np.allclose(view_lr, lr, atol=1e-4)
        ]
        assert matches, f"patch {index}: LR and HR are not the same window"


def _views(patch: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/transposes of a square patch."""
    out = []
    for p in (patch, patch.T):
        out += [p, p[:, ::-1], p[::-1, :], p[::-1, ::-1]]
    return out
