"""A residual U-Net: a receptive field of about 90 pixels, for artefacts larger than a small network sees.

Follows FBPConvNet (Jin, McCann, Froustey & Unser, "Deep Convolutional Neural Network for Inverse Problems in
Imaging", IEEE TIP 2017), the U-Net (Ronneberger, Fischer & Brox, MICCAI 2015) that learns the residual from a
sparse-view filtered back-projection to the full-view slice: its streaks run across the whole image, and a
faint small disc differs from a piece of streak only in context a few centimetres wide. Four resolutions (by
default) give a receptive field of 85 to 93 pixels (by the position on the pooling grid) where ``plainrep``'s
16 layers see 33. Unlike FBPConvNet there is no BatchNorm (outputs do not depend on the batch or tile they came
in) and the channels start at 32, not 64 (one CPU thread trains an epoch of 288 patches of 128 px in a minute).

Upscaling models (scale > 1) run the U-Net on the bicubic-upsampled input, as SRCNN does. With ``global_skip``
(the default) the last 1x1 conv starts at zero, so training starts from the input (or its bicubic), and the
output is clamped to [0, 1] in eval mode only.

Shapes: (N, C, h, w) in [0, 1] -> (N, C, h*sy, w*sx), C = 1 or 3, any h, w (padded inside to a multiple of
``2 ** (num_levels - 1)`` by repeating the last row and column, and cropped back).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medsr.models.blocks import interpolate_input, normalize_scale


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convolutions with ReLU: one U-Net level's work at its resolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
    )


class ResUNet(nn.Module):
    """U-Net of ``num_levels`` resolutions, ``num_channels`` at the finest, doubling at each coarser one.

    Down: max-pooling by 2; up: a 2x2 transposed convolution, concatenated with the same level's features.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        scale: int | Sequence[int] = 1,
        num_channels: int = 32,
        num_levels: int = 4,
        global_skip: bool = True,
    ) -> None:
        super().__init__()
        if num_levels < 2:
            raise ValueError(f"num_levels must be at least 2, got {num_levels}")
        self.in_channels = in_channels
        self.scale = normalize_scale(scale)
        self.global_skip = global_skip
        self.multiple = 2 ** (num_levels - 1)
        widths = [num_channels * 2**k for k in range(num_levels)]
        self.down = nn.ModuleList(
            _double_conv(in_channels if k == 0 else widths[k - 1], widths[k]) for k in range(num_levels))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[k + 1], widths[k], 2, stride=2) for k in range(num_levels - 1))
        self.merge = nn.ModuleList(_double_conv(2 * widths[k], widths[k]) for k in range(num_levels - 1))
        self.head = nn.Conv2d(widths[0], in_channels, 1)
        if global_skip:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = interpolate_input(x, self.scale)
        h, w = x.shape[-2:]
        # no branch on the size, so the graph traces (ONNX, dynamic height and width); edge pixels repeated
        y = F.pad(x, (0, -w % self.multiple, 0, -h % self.multiple), mode="replicate")
        skips = []
        for k, level in enumerate(self.down):
            y = level(y if k == 0 else F.max_pool2d(y, 2))
            skips.append(y)
        for k in reversed(range(len(self.up))):
            y = self.merge[k](torch.cat([skips[k], self.up[k](y)], dim=1))
        y = self.head(y)[..., :h, :w]
        out = x + y if self.global_skip else y
        return out if self.training else out.clamp(0.0, 1.0)


def build_generator(
    *,
    in_channels: int = 1,
    scale: int | Sequence[int] = 1,
    global_skip: bool = True,
    num_channels: int = 32,
    num_levels: int = 4,
) -> ResUNet:
    """A residual U-Net: 4 levels of 32 to 256 channels by default (1.9 M parameters, 85-93 px receptive field)."""
    return ResUNet(in_channels=in_channels, scale=scale, global_skip=global_skip, num_channels=num_channels,
                   num_levels=num_levels)
