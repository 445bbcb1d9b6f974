"""A residual U-Net: a receptive field of 92-100 pixels, for artefacts larger than a small network sees.

Follows FBPConvNet (Jin, McCann, Froustey & Unser, "Deep Convolutional Neural Network for Inverse Problems in
Imaging", IEEE TIP 2017), the U-Net (Ronneberger, Fischer & Brox, MICCAI 2015) that learns the residual from a
sparse-view filtered back-projection to the full-view slice: its streaks run across the whole image, and a
faint small disc differs from a piece of streak only in context a few centimetres wide. Four resolutions (by
default) give a receptive field of 92 to 100 pixels (by the position on the pooling grid; 85 to 93 through the
first pixel of each max-pooling cell) where ``plainrep``'s 16 layers see 33. Unlike FBPConvNet there is no
BatchNorm (outputs do not depend on the batch or tile they came in) and the channels start at 32, not 64 (one
CPU thread trains an epoch of 288 patches of 128 px in a minute).

Upscaling models (scale > 1) run the U-Net on the bicubic-upsampled input, as SRCNN does. With ``global_skip``
(the default) the last 1x1 conv starts at zero, so training starts from the input (or its bicubic), and the
output is clamped to [0, 1] in eval mode only.

Shapes: (N, C, h, w) in [0, 1] -> (N, C, h*sy, w*sx), C = 1 or 3, any h, w (padded inside to a multiple of
``2 ** (num_levels - 1)`` by repeating the last row and column, and cropped back).

Its function depends on where the pooling grid falls, so a crop computes what the whole image does only when
it starts on that grid and only at pixels far enough from its edges. The network says so to tiled inference
(:mod:`medsr.infer.tiling`) through ``tile_multiple`` and ``tile_context``, in input pixels: see
:func:`unet_context`.
"""

from __future__ import annotations

import math
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


def unet_context(num_levels: int) -> int:
    """The U-Net's reach at its own resolution: no pixel farther than ``7 * 2 ** (num_levels - 1) - 5`` (51 for 4
    levels) on either side changes an output pixel, wherever the pixel falls on the pooling grid.

    Derived, not measured: per level ``k`` (pixel size ``2 ** k``) each 3x3 convolution reaches one coarse pixel
    further, each of the ``num_levels`` down and ``num_levels - 1`` merge double convolutions two, and each 2x2
    max-pooling and 2x2 transposed convolution up to one more by the pixel's position in its pooling cell; the
    worst position sums to the formula (receptive fields of 92 to 100 pixels for 4 levels). Checked against the
    gradient of a network with average pooling in tests/models/test_unet.py.
    """
    return 7 * 2 ** (num_levels - 1) - 5


class ResUNet(nn.Module):
    """U-Net of ``num_levels`` resolutions, ``num_channels`` at the finest, doubling at each coarser one.

    Down: max-pooling by 2; up: a 2x2 transposed convolution, concatenated with the same level's features.

    ``tile_multiple``: input pixels a tile's start must be a multiple of so that the pooling grid of the
    (bicubic-upsampled) tile falls where the whole image's does: ``2 ** (num_levels - 1)`` at scale 1, divided by
    what the scale already contributes. ``tile_context``: input pixels of context beyond which nothing changes an
    output pixel: :func:`unet_context` at scale 1, ``ceil(that / scale) + 2`` above it (the bicubic's 4 taps).
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
        self.tile_multiple = math.lcm(*(self.multiple // math.gcd(self.multiple, s) for s in self.scale))
        reach = unet_context(num_levels)
        self.tile_context = reach if self.scale == (1, 1) else -(-reach // min(self.scale)) + 2
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
    """A residual U-Net: 4 levels of 32 to 256 channels by default (1.9 M parameters, 92-100 px receptive field)."""
    return ResUNet(in_channels=in_channels, scale=scale, global_skip=global_skip, num_channels=num_channels,
                   num_levels=num_levels)
