"""SRResNet generator and SRGAN discriminator (Ledig et al., "Photo-Realistic Single Image Super-Resolution
Using a Generative Adversarial Network", CVPR 2017).

The same two classes, given a separable conv factory, are Swift-SRGAN's networks (see ``swift_srgan.py``).
Images are (N, C, H, W) floats in [0, 1], C = 1 (grayscale) or 3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medsr.models.blocks import (
    ConvBlock,
    ConvFactory,
    ResidualBlock,
    UpsampleBlock,
    interpolate_input,
    normalize_scale,
    plain_conv,
    upsample_stages,
)

DISCRIMINATOR_FEATURES = (64, 64, 128, 128, 256, 256, 512, 512)


class SRResNet(nn.Module):
    """SRResNet-layout generator: (N, C, h, w) in [0, 1] -> (N, C, h*sy, w*sx).

    9x9 conv + PReLU; ``num_blocks`` residual blocks; conv + BN plus the long skip from the first layer;
    sub-pixel upsamplers (x2 stages, one x3 stage, or 1-D stages for an anisotropic scale; none at scale 1);
    9x9 output conv.

    Output head:
    - ``global_skip=False`` (the published networks): ``(tanh(y) + 1) / 2``, the [0, 1] form of Ledig's tanh
      output for [-1, 1] images; published checkpoints load into this exactly.
    - ``global_skip=True``: ``bicubic(x) + y``; the network learns only the residual over torch bicubic
      interpolation. The head is linear (a tanh would squash the residual and saturate where bicubic is
      already near 0 or 1), its last conv starts at zero so training starts from bicubic, and the output is
      clamped to [0, 1] in eval mode only, so training gradients are never cut off by the clamp.
    """

    def __init__(
        self,
        conv: ConvFactory = plain_conv,
        *,
        in_channels: int = 1,
        scale: int | Sequence[int] = 4,
        num_channels: int = 64,
        num_blocks: int = 16,
        global_skip: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.scale = normalize_scale(scale)
        self.global_skip = global_skip
        self.initial = ConvBlock(conv, in_channels, num_channels, 9, use_bn=False)
        self.residual = nn.Sequential(*[ResidualBlock(conv, num_channels) for _ in range(num_blocks)])
        self.convblock = ConvBlock(conv, num_channels, num_channels, 3, act=None)
        self.upsampler = nn.Sequential(
            *[UpsampleBlock(conv, num_channels, f) for f in upsample_stages(self.scale)]
        )
        self.final_conv = conv(num_channels, in_channels, 9, 1, True)
        if global_skip:
            last = [m for m in self.final_conv.modules() if isinstance(m, nn.Conv2d)][-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        initial = self.initial(x)
        y = self.convblock(self.residual(initial)) + initial
        y = self.final_conv(self.upsampler(y))
        if not self.global_skip:
            return (torch.tanh(y) + 1) / 2
        out = interpolate_input(x, self.scale) + y
        return out if self.training else out.clamp(0.0, 1.0)


class SRGANDiscriminator(nn.Module):
    """SRGAN-layout discriminator: (N, C, H, W) in [0, 1] -> (N, 1) logits (no sigmoid; use BCE with logits).

    8 conv blocks of widths 64-64-128-128-256-256-512-512, strides 1, 2, 1, 2, ..., LeakyReLU 0.2 and
    BatchNorm after every block but the first; adaptive average pooling to 6x6 (the paper's size for a 96x96
    input, here any input size works), dense 1024, LeakyReLU 0.2, dense 1.
    """

    def __init__(
        self,
        conv: ConvFactory = plain_conv,
        *,
        in_channels: int = 1,
        features: Sequence[int] = DISCRIMINATOR_FEATURES,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        blocks = []
        c = in_channels
        for i, f in enumerate(features):
            blocks.append(ConvBlock(conv, c, f, 3, stride=1 + i % 2, use_bn=i > 0, act="leaky"))
            c = f
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d((6, 6)),
            nn.Flatten(),
            nn.Linear(c * 6 * 6, 1024),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(1024, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(x))


def build_generator(
    *,
    in_channels: int = 1,
    scale: int | Sequence[int] = 4,
    global_skip: bool = False,
    num_channels: int = 64,
    num_blocks: int = 16,
) -> SRResNet:
    """SRResNet / SRGAN generator with plain convolutions (about 1.5 M parameters at x4, 3 channels)."""
    return SRResNet(
        plain_conv,
        in_channels=in_channels,
        scale=scale,
        num_channels=num_channels,
        num_blocks=num_blocks,
        global_skip=global_skip,
    )


def build_discriminator(
    *, in_channels: int = 1, features: Sequence[int] = DISCRIMINATOR_FEATURES
) -> SRGANDiscriminator:
    """SRGAN discriminator with plain convolutions."""
    return SRGANDiscriminator(plain_conv, in_channels=in_channels, features=features)
