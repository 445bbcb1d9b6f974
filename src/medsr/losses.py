"""Training losses for SRResNet / SRGAN / Swift-SRGAN: pixel, content (feature network), adversarial, TV.

Images are (N, C, H, W) tensors in [0, 1], C = 1 or 3. Every term is computed on the generator's output with
its graph intact (the chest X-ray project this replaces computed its perceptual and adversarial terms on
detached outputs, so they never trained anything). Only the *target's* features are computed without grad.

Published weights:
- Swift-SRGAN (Krishnan & Krishnan 2021, reference code): 1 x MSE + 0.006 x MobileNetV2-feature MSE
  + 0.001 x adversarial + 2e-8 x TV.
- SRGAN (Ledig et al. 2017, "SRGAN-VGG54"): VGG19 relu5_4 feature MSE with features rescaled by 1/12.75
  (a weight of 1/12.75^2 on the MSE) + 0.001 x adversarial; no pixel or TV term.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from torchvision import models

from medsr.errors import CheckpointError, ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

SWIFT_SRGAN_WEIGHTS: dict[str, float] = {"pixel": 1.0, "content": 0.006, "adversarial": 0.001, "tv": 2e-8}
SRGAN_WEIGHTS: dict[str, float] = {"pixel": 0.0, "content": 1 / 12.75**2, "adversarial": 0.001, "tv": 0.0}

#: Feature network of each architecture's content loss, and its published loss weights.
CONTENT_NETWORK_FOR_ARCH = {"swift-srgan": "mobilenet_v2", "srgan": "vgg19", "srresnet": "vgg19", "plainrep": "vgg19"}
LOSS_WEIGHTS_FOR_ARCH = {
    "swift-srgan": SWIFT_SRGAN_WEIGHTS,
    "srgan": SRGAN_WEIGHTS,
    "srresnet": SRGAN_WEIGHTS,
    "plainrep": SWIFT_SRGAN_WEIGHTS,
}

#: torchvision's file names for the ImageNet weights (what ``--content-weights`` expects).
_TORCHVISION_FILES = {"mobilenet_v2": "mobilenet_v2-b0353104.pth", "vgg19": "vgg19-dcbb9e9d.pth"}


# --- pixel, adversarial, total variation ------------------------------------------------------------------


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Mean squared (``"mse"``) or absolute (``"l1"``) difference, averaged over all elements."""
    if kind == "mse":
        return F.mse_loss(sr, hr)
    if kind == "l1":
        return F.l1_loss(sr, hr)
    raise ConfigError(f"pixel loss must be 'mse' or 'l1', got {kind!r}")


def signal_preservation_loss(sr_present: torch.Tensor, sr_absent: torch.Tensor, hr_present: torch.Tensor,
                             hr_absent: torch.Tensor, margin: int = 4, blur: float = 0.0) -> torch.Tensor:
    """How far the network's response to inserted signals is from the signals themselves.

    The inputs of ``sr_present`` and ``sr_absent`` differ by the signals (same patch, same kernel and noise
    draws), so ``sr_present - sr_absent`` is what the network made of them and ``hr_present - hr_absent`` is
    what they are. The mean absolute error of the one against the other is taken over the signals' support
    grown by ``margin`` pixels (a response that spreads or rings around a disc counts; far away, where signal-
    dependent noise such as Poisson's can draw differently for the two, nothing is compared), so a few small
    discs weigh as much as a whole patch's pixel loss. 0 when the network passes every signal through
    unchanged; 0 for a pair without signals.

    ``blur`` > 0 compares the two after a Gaussian blur of that sigma (HR pixels): the error left is then in
    each disc's mass and coarse profile, what a model observer's wide channels see, rather than in edges
    that the LR cannot hold (L1 on raw pixels lets a response shrink a little to spare its halo).
    """
    response, truth = sr_present - sr_absent, hr_present - hr_absent
    near = F.max_pool2d((truth != 0).float(), 2 * margin + 1, stride=1, padding=margin)
    error = response - truth
    if blur > 0:
        error = separable_gaussian(error, blur)
    return (error.abs() * near).sum() / near.sum().clamp(min=1)


def separable_gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(N, C, H, W)`` blurred by a normalised Gaussian of ``sigma`` pixels (to 3 sigma), zero-padded, as two
    1-D convolutions: 2 x 13 taps a pixel at sigma 2 where torchvision's ``gaussian_blur`` convolves all
    13 x 13 (this runs in every training step)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)
    return F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)


def adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: ``-log sigmoid(D(G(x)))``, BCE of the fake logits against "real"."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator BCE: real patches labelled 1, generated ones 0 (pass ``D(G(x).detach())`` as fake)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    """Total variation as in the SRGAN/Swift-SRGAN reference code: 2 x (mean squared vertical difference
    + mean squared horizontal difference), for (N, C, H, W)."""
    dh = x[:, :, 1:, :] - x[:, :, :-1, :]
    dw = x[:, :, :, 1:] - x[:, :, :, :-1]
    return 2 * (dh.pow(2).mean() + dw.pow(2).mean())


# --- content loss -----------------------------------------------------------------------------------------


def _feature_layers(name: str, model: nn.Module) -> nn.Sequential:
    """The part of a torchvision classifier used for content features."""
    if name == "mobilenet_v2":
        return model.features  # all of it, as the Swift-SRGAN reference code (features[:31] of 19 modules)
    return model.features[:36]  # vgg19: up to and including relu5_4 (Ledig's VGG54)


def _torchvision_model(name: str, pretrained: bool) -> nn.Module:
    if name == "mobilenet_v2":
        return models.mobilenet_v2(weights=models.MobileNet_V2_Weights.IMAGENET1K_V1 if pretrained else None)
    return models.vgg19(weights=models.VGG19_Weights.IMAGENET1K_V1 if pretrained else None)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(path, f"not a loadable state dict ({str(e).strip().splitlines()[0]})") from e
    if not isinstance(state, Mapping):
        raise CheckpointError(path, f"expected a state dict, found {type(state).__name__}")
    return dict(state)


def _layer_index(key: str) -> int:
    """``"3.1.weight"`` -> 3 (the layer of a ``features`` state-dict key); -1 when the key names no layer."""
    head = key.split(".")[0]
    return int(head) if head.isdigit() else -1


def build_content_network(
    name: str, weights: str | Path | None = None, allow_download: bool = False
) -> nn.Sequential:
    """Pretrained feature extractor for the content loss, frozen and in eval mode.

    ``weights``: a local state dict (``.pth`` via ``torch.load(weights_only=True)`` or ``.safetensors``) of
    the whole torchvision classifier (``features.*`` keys) or of its ``features`` part alone; loaded strictly.
    Without it, ``allow_download=True`` fetches torchvision's ImageNet weights (cached in the torch hub dir).
    With neither, ConfigError: random features would make the content loss meaningless, silently.
    """
    if name not in _TORCHVISION_FILES:
        raise ConfigError(f"unknown content network {name!r}; choose one of: {', '.join(_TORCHVISION_FILES)}")
    hint = (
        f"pass --content-weights FILE (torchvision's ImageNet state dict for {name}, "
        f"e.g. {_TORCHVISION_FILES[name]})"
    )
    if weights is not None:
        path = Path(weights)
        state = _read_state_dict(path)
        if any(k.startswith("features.") for k in state):  # whole classifier: keep its feature part
            state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        model = _torchvision_model(name, pretrained=False)
        features = _feature_layers(name, model)
        state = {
            k: v for k, v in state.items() if _layer_index(k) < len(features)
        }  # vgg19 layers past relu5_4
        try:
            features.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(path, f"not {name} weights ({str(e).splitlines()[0]})") from e
    elif allow_download:
        try:
            model = _torchvision_model(name, pretrained=True)
        except Exception as e:
            raise ConfigError(f"could not download ImageNet weights for {name} ({e}); {hint}") from e
    else:
        raise ConfigError(
            f"the content loss and the adversarial stage need pretrained {name} weights: {hint}, "
            "or allow the download; refusing to train on random features"
        )
    features = _feature_layers(name, model)
    features.requires_grad_(False)
    return features.eval()


class ContentLoss(nn.Module):
    """MSE between feature maps of a frozen network for ``sr`` and ``hr`` (N, C, H, W) in [0, 1].

    Grayscale is replicated to 3 channels and both images get ImageNet normalisation. The network stays in
    eval mode even when the surrounding module is put in train mode (its BatchNorm statistics never move).
    Gradient flows through the features of ``sr``; the target's features are computed without grad.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> ContentLoss:
        super().train(mode)
        self.network.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.network((x - self.mean) / self.std)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.features(hr)
        return F.mse_loss(self.features(sr), target)


# --- the combination ---------------------------------------------------------------------------------------


class GeneratorLoss(nn.Module):
    """Weighted sum of pixel, content, adversarial and TV terms for the generator.

    ``weights`` maps term -> weight; a term left out weighs 0 and is not computed (so pretraining is
    ``GeneratorLoss("l1", weights={"pixel": 1})``). Default: Swift-SRGAN's published weights.
    ``forward(sr, hr, fake_logits=None)`` returns ``(total, terms)``, where ``terms`` holds each computed term
    *unweighted* and still attached to the graph (call ``.item()`` to log them).
    """

    TERMS = ("pixel", "content", "adversarial", "tv")

    def __init__(
        self,
        pixel: str = "mse",
        content_net: nn.Module | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        weights = dict(SWIFT_SRGAN_WEIGHTS if weights is None else weights)
        unknown = sorted(set(weights) - set(self.TERMS))
        if unknown:
            raise ConfigError(f"unknown loss term(s) {unknown}; terms are: {', '.join(self.TERMS)}")
        self.weights = {t: float(weights.get(t, 0.0)) for t in self.TERMS}
        pixel_loss(torch.zeros(1), torch.zeros(1), pixel)  # validates the name now, not at step 1
        self.pixel = pixel
        if self.weights["content"] and content_net is None:
            raise ConfigError("content loss weight is non-zero but no content network was given")
        self.content = ContentLoss(content_net) if content_net is not None else None

    def forward(
        self, sr: torch.Tensor, hr: torch.Tensor, fake_logits: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms: dict[str, torch.Tensor] = {}
        w = self.weights
        if w["pixel"]:
            terms["pixel"] = pixel_loss(sr, hr, self.pixel)
        if w["content"]:
            terms["content"] = self.content(sr, hr)  # type: ignore[misc]
        if w["adversarial"]:
            if fake_logits is None:
                raise ValueError("the adversarial term needs fake_logits = discriminator(sr)")
            terms["adversarial"] = adversarial_loss(fake_logits)
        if w["tv"]:
            terms["tv"] = tv_loss(sr)
        if not terms:
            raise ConfigError("every loss weight is 0: nothing to train")
        total = sum(w[name] * value for name, value in terms.items())
        return total, terms  # type: ignore[return-value]
