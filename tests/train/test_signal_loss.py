"""The signal-preservation loss: pairs that differ only by faint discs, and a loss on the network's response."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter, maximum_filter
from torch import nn

from medsr.data.datasets import PatchDataset
from medsr.errors import ConfigError
from medsr.losses import GeneratorLoss, signal_preservation_loss
from medsr.train.config import TrainConfig
from medsr.train.steps import StepSettings, gan_step
from medsr.train.trainer import train


def _reference(sr_p, sr_a, hr_p, hr_a, margin, blur=0.0):
    """NumPy/SciPy: mean |(sr_p - sr_a) - (hr_p - hr_a)| over the support of the signals grown by margin; with
    ``blur``, of that difference Gaussian-filtered (zero outside the image, to 3 sigma)."""
    truth = hr_p - hr_a
    near = np.stack([[maximum_filter((c != 0).astype(float), size=2 * margin + 1, mode="constant") for c in item]
                     for item in truth])
    error = (sr_p - sr_a) - truth
    if blur:
        error = np.stack([[gaussian_filter(c, blur, mode="constant", truncate=3.0) for c in item] for item in error])
    return float((np.abs(error) * near).sum() / near.sum())


def test_the_loss_matches_a_scipy_reference_and_is_zero_when_signals_pass_through():
    rng = np.random.default_rng(0)
    hr_a = rng.random((2, 1, 32, 32))
    hr_p = hr_a.copy()
    hr_p[0, 0, 5:9, 5:9] += 0.02
    hr_p[1, 0, 20:23, 10:14] -= 0.01
    sr_a = hr_a + rng.normal(0, 0.01, hr_a.shape)
    sr_p = sr_a + 0.5 * (hr_p - hr_a) + rng.normal(0, 0.001, hr_a.shape)
    tensors = [torch.from_numpy(a) for a in (sr_p, sr_a, hr_p, hr_a)]
    for margin in (0, 4):
        assert signal_preservation_loss(*tensors, margin=margin).item() == pytest.approx(
            _reference(sr_p, sr_a, hr_p, hr_a, margin), rel=1e-9)
    passed = torch.from_numpy(sr_a + (hr_p - hr_a))  # the network adds exactly the discs: nothing to pay
    assert signal_preservation_loss(passed, tensors[1], tensors[2], tensors[3]).item() == pytest.approx(0, abs=1e-12)
    erased = signal_preservation_loss(tensors[1], tensors[1], tensors[2], tensors[3], margin=0).item()
    assert erased == pytest.approx((0.02 * 16 + 0.01 * 12) / 28)  # erasing costs the discs' mean amplitude


def test_the_blurred_loss_matches_scipy_and_sees_a_shrunk_disc_more_than_a_blurred_one():
    rng = np.random.default_rng(1)
    hr_a = rng.random((2, 1, 40, 40))
    disc = np.zeros((40, 40))
    yy, xx = np.mgrid[0:40, 0:40]
    disc[np.hypot(yy - 20, xx - 20) <= 4] = 0.03
    hr_p = hr_a + disc
    sr_a = hr_a + rng.normal(0, 0.01, hr_a.shape)
    sr_p = sr_a + 0.7 * disc + rng.normal(0, 0.001, hr_a.shape)
    tensors = [torch.from_numpy(a) for a in (sr_p, sr_a, hr_p, hr_a)]
    for blur in (1.0, 2.0):
        assert signal_preservation_loss(*tensors, blur=blur).item() == pytest.approx(
            _reference(sr_p, sr_a, hr_p, hr_a, 4, blur), rel=1e-6)
    # a response with the disc's mass but soft edges costs less once blurred; one that lost 30 % of it does not
    soft = torch.from_numpy(sr_a + gaussian_filter(disc, 1.0)[None, None])
    shrunk = torch.from_numpy(sr_p)
    for response in (soft, shrunk):
        assert signal_preservation_loss(response, *tensors[1:], blur=2.0).item() > 0
    raw = [signal_preservation_loss(r, *tensors[1:]).item() for r in (soft, shrunk)]
    blurred = [signal_preservation_loss(r, *tensors[1:], blur=2.0).item() for r in (soft, shrunk)]
    assert blurred[0] / raw[0] < 0.5 * blurred[1] / raw[1]


def test_pairs_differ_only_by_the_discs_flipped_alike_with_the_same_noise(tmp_path):
    path = tmp_path / "ramp.png"
    Image.fromarray(np.tile(np.linspace(60, 200, 128), (128, 1)).astype(np.uint8)).save(path)
    data = PatchDataset([path], scale=4, patch_size=64, patches_per_image=8, degradation="box-noise",
                        signal_prob=1.0, signal_pairs=True)
    for i in range(len(data)):
        lr, hr, lr_absent, hr_absent = (t.numpy() for t in data[i])
        discs = hr - hr_absent
        assert np.abs(discs).max() > 0
        # the absent twin is the patch itself, flipped the same way: a horizontal ramp, maybe transposed/flipped
        assert np.allclose(np.diff(hr_absent[0], axis=0), 0, atol=1e-6) or np.allclose(
            np.diff(hr_absent[0], axis=1), 0, atol=1e-6)
        # the same noise: the LRs differ only where a disc's 4x4 blocks are
        blocks = np.abs(discs[0]).reshape(16, 4, 16, 4).max(axis=(1, 3)) > 0
        assert (np.abs(lr - lr_absent)[0][~blocks] == 0).all()
    with pytest.raises(ValueError, match="signal_pairs needs signal_prob"):
        PatchDataset([path], signal_pairs=True)
    plain = PatchDataset([path], scale=4, patch_size=64, patches_per_image=2, signal_prob=1.0)
    assert len(plain[0]) == 2


def test_a_run_with_the_signal_loss_logs_it_and_the_config_refuses_what_it_cannot_do(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        Image.fromarray(rng.integers(40, 200, (48, 48)).astype(np.uint8)).save(tmp_path / f"i{i}.png")
        rows.append([f"i{i}.png", f"p{i}", "train" if i < 2 else "val", "OT", 48, 48, 1, 8])
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as handle:
        csv.writer(handle).writerows([("path", "patient_id", "split", "modality", "width", "height", "channels",
                                       "bit_depth"), *rows])
    config = TrainConfig(manifest=str(manifest), model="plainrep", model_args={"num_channels": 8, "num_convs": 2},
                         scale=4, patch_size=32, batch_size=2, patches_per_image=2, epochs=1, num_workers=0,
                         degradation="box-noise", signal_prob=1.0, signal_weight=1.0, pixel_loss="l1",
                         out=str(tmp_path / "run"), threads=1, tensorboard=False, log_every_steps=1)
    run_dir = train(config)
    logged = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert float(logged[-1]["loss_g"]) > float(logged[-1]["loss_pixel"]) > 0  # the signal term adds to it
    blurred = train(TrainConfig(**{**config.to_dict(), "betas": tuple(config.betas), "signal_blur": 2.0,
                                   "out": str(tmp_path / "blurred")}))
    again = list(csv.DictReader((blurred / "metrics.csv").open()))
    # the same batches: the blur reaches the loss, and leaves less of the response's error than pixel by pixel
    term = [float(rows[-1]["loss_g"]) - float(rows[-1]["loss_pixel"]) for rows in (logged, again)]
    assert 0 < term[1] < 0.5 * term[0]
    for bad, message in (({"signal_prob": 0.0}, "signal_weight"), ({"signal_weight": -1.0}, "signal_weight"),
                         ({"signal_blur": -1.0}, "signal_blur"),
                         ({"signal_weight": 0.0, "signal_blur": 2.0}, "signal_blur")):
        with pytest.raises(ConfigError, match=message):
            TrainConfig(**{**config.to_dict(), "betas": tuple(config.betas), **bad}).validate()


def test_the_gan_step_adds_the_signal_term_over_both_halves():
    """Given signal-absent twins, the generator's loss is every GAN term over both halves plus the weight times
    the signal term of its response, computed independently here (frozen optimisers: nothing moves)."""
    torch.manual_seed(0)
    generator = nn.Conv2d(1, 1, 3, padding=1)
    discriminator = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1))
    lr_absent, hr_absent = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    disc = torch.zeros(2, 1, 16, 16)
    disc[..., 5:9, 6:10] = 0.05
    lr_img, hr_img = lr_absent + disc, hr_absent + disc
    gen_loss = GeneratorLoss("l1", weights={"pixel": 1.0, "adversarial": 0.01})

    def step(weight: float) -> dict[str, float]:
        opts = [torch.optim.SGD(net.parameters(), lr=0.0) for net in (generator, discriminator)]
        scheds = [torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0) for opt in opts]
        return gan_step(generator, discriminator, lr_img, hr_img, lr_absent, hr_absent, gen_loss=gen_loss,
                        opt_g=opts[0], sched_g=scheds[0], opt_d=opts[1], sched_d=scheds[1],
                        settings=StepSettings(pixel_loss="l1", signal_weight=weight, signal_blur=1.0))

    with torch.no_grad():
        sr = generator(torch.cat([lr_img, lr_absent]))
        expected = signal_preservation_loss(*sr.chunk(2), hr_img, hr_absent, blur=1.0).item()
        pixel = torch.nn.functional.l1_loss(sr, torch.cat([hr_img, hr_absent])).item()
    plain, held = step(0.0), step(5.0)
    assert held["loss_signal"] == pytest.approx(expected, rel=1e-5) and expected > 0
    assert held["loss_pixel"] == pytest.approx(pixel, rel=1e-5)  # the pixel term covers both halves
    assert held["loss_g"] - plain["loss_g"] == pytest.approx(5.0 * expected, rel=1e-4)
