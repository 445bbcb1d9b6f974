"""Losses: values against independent formulas, pretrained-weight handling, and gradient to the generator."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.transforms.functional import normalize

from medsr import losses
from medsr.errors import CheckpointError, ConfigError
from medsr.losses import (
    GeneratorLoss,
    adversarial_loss,
    build_content_network,
    discriminator_loss,
    pixel_loss,
    tv_loss,
)
from medsr.models import build_discriminator, build_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory):
    """A randomly initialised torchvision MobileNetV2 state dict in a file (stand-in for ImageNet weights)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2-random.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def content_net(mobilenet_file):
    return build_content_network("mobilenet_v2", mobilenet_file)


def test_pixel_losses_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 1, 5, 6)), rng.random((2, 1, 5, 6))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    assert pixel_loss(ta, tb, "mse").item() == pytest.approx(np.mean((a - b) ** 2))
    assert pixel_loss(ta, tb, "l1").item() == pytest.approx(np.mean(np.abs(a - b)))
    with pytest.raises(ConfigError, match="mse"):
        pixel_loss(ta, tb, "huber")


def test_tv_loss_matches_numpy():
    x = np.random.default_rng(1).random((2, 3, 7, 5))
    expected = 2 * (np.mean(np.diff(x, axis=2) ** 2) + np.mean(np.diff(x, axis=3) ** 2))
    assert tv_loss(torch.from_numpy(x)).item() == pytest.approx(expected)
    assert tv_loss(torch.ones(1, 1, 4, 4)).item() == 0


def test_adversarial_losses_match_log_sigmoid():
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    sig = torch.sigmoid
    assert adversarial_loss(fake).item() == pytest.approx(-torch.log(sig(fake)).mean().item(), rel=1e-6)
    expected_d = -torch.log(sig(real)).mean() - torch.log(1 - sig(fake)).mean()
    assert discriminator_loss(real, fake).item() == pytest.approx(expected_d.item(), rel=1e-6)


def test_content_network_loads_local_weights_frozen_in_eval(mobilenet_file, content_net):
    saved = torch.load(mobilenet_file, weights_only=True)
    assert torch.equal(content_net[0][0].weight, saved["features.0.0.weight"])
    assert not content_net.training
    assert not any(p.requires_grad for p in content_net.parameters())
    assert len(content_net) == len(torchvision.models.mobilenet_v2(weights=None).features)


def test_content_network_accepts_a_features_only_file(tmp_path, content_net):
    path = tmp_path / "features.pth"
    torch.save(content_net.state_dict(), path)
    again = build_content_network("mobilenet_v2", path)
    assert torch.equal(again[18][0].weight, content_net[18][0].weight)


def test_content_network_refuses_random_features_and_bad_files(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="--content-weights"):
        build_content_network("mobilenet_v2")
    with pytest.raises(ConfigError, match="choose one of"):
        build_content_network("resnet50")
    with pytest.raises(CheckpointError, match="no such file"):
        build_content_network("mobilenet_v2", tmp_path / "absent.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"0.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(CheckpointError, match="not mobilenet_v2 weights"):
        build_content_network("mobilenet_v2", wrong)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    # the download path is torchvision's own; offline it must become a ConfigError naming the way out
    import torchvision.models._api as tv_api

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    with pytest.raises(ConfigError, match="could not download.*no network.*--content-weights"):
        build_content_network("mobilenet_v2", allow_download=True)


def test_vgg19_content_layers_end_at_relu5_4():
    with torch.device("meta"):
        features = losses._feature_layers("vgg19", torchvision.models.vgg19(weights=None))
    convs = [m for m in features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 16  # VGG19 has 16 conv layers; relu5_4 follows the last
    assert isinstance(features[-1], torch.nn.ReLU)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in features) == 4  # before the 5th max-pool


def test_content_loss_matches_manual_feature_mse(content_net):
    torch.manual_seed(0)
    sr, hr = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    loss = losses.ContentLoss(content_net)

    def feats(x):
        return content_net(normalize(x.repeat(1, 3, 1, 1), losses.IMAGENET_MEAN, losses.IMAGENET_STD))

    assert loss(sr, hr).item() == pytest.approx(F.mse_loss(feats(sr), feats(hr)).item(), rel=1e-5)
    assert loss(hr, hr).item() == 0


def test_feature_network_stays_in_eval_mode(content_net):
    crit = GeneratorLoss(content_net=content_net).train()
    assert crit.training and not crit.content.network.training


def test_generator_loss_weights_and_total(content_net):
    torch.manual_seed(0)
    sr, hr, logits = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32), torch.randn(2, 1)
    crit = GeneratorLoss("mse", content_net=content_net)
    assert crit.weights == {"pixel": 1.0, "content": 0.006, "adversarial": 0.001, "tv": 2e-8}
    total, terms = crit(sr, hr, logits)
    assert set(terms) == {"pixel", "content", "adversarial", "tv"}
    expected = sum(crit.weights[k] * v for k, v in terms.items())
    assert total.item() == pytest.approx(expected.item())
    pretrain = GeneratorLoss("l1", weights={"pixel": 1})
    _, only = pretrain(sr, hr)
    assert set(only) == {"pixel"}
    with pytest.raises(ConfigError, match="content network"):
        GeneratorLoss(weights={"content": 1.0})
    with pytest.raises(ConfigError, match="unknown loss term"):
        GeneratorLoss(weights={"perceptual": 1.0})
    with pytest.raises(ValueError, match="fake_logits"):
        GeneratorLoss(weights={"adversarial": 1.0})(sr, hr)
    assert losses.LOSS_WEIGHTS_FOR_ARCH["srgan"]["adversarial"] == 1e-3
    assert losses.CONTENT_NETWORK_FOR_ARCH == {
        "swift-srgan": "mobilenet_v2",
        "srgan": "vgg19",
        "srresnet": "vgg19",
        "plainrep": "vgg19",
    }


@pytest.mark.parametrize("term", ["pixel", "content", "adversarial", "tv"])
def test_every_term_carries_gradient_to_the_generator(term, content_net):
    """The bug this guards against: terms computed under no_grad or on detached outputs train nothing."""
    torch.manual_seed(0)
    g = build_generator("swift-srgan", in_channels=1, scale=2, num_blocks=2, num_channels=8).train()
    d = build_discriminator("swift-srgan", in_channels=1, features=(8, 8, 16, 16)).train()
    lr, hr = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 32, 32)
    crit = GeneratorLoss("mse", content_net=content_net, weights={term: 1.0})
    sr = g(lr)
    total, terms = crit(sr, hr, d(sr))
    assert set(terms) == {term} and total.requires_grad
    total.backward()
    for name, p in g.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{term}: no gradient reaches {name}"
    assert all(p.grad is None for p in content_net.parameters())


def test_discriminator_loss_trains_the_discriminator_only():
    torch.manual_seed(0)
    g = build_generator("swift-srgan", in_channels=1, scale=2, num_blocks=1, num_channels=8)
    d = build_discriminator("swift-srgan", in_channels=1, features=(8, 8, 16, 16))
    lr, hr = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 32, 32)
    discriminator_loss(d(hr), d(g(lr).detach())).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())
    assert all(p.grad is None for p in g.parameters())
