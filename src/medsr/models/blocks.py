"""Building blocks shared by the SRResNet/SRGAN and Swift-SRGAN networks.

Every block is a tiny ``nn.Module`` whose child names (``cnn``, ``bn``, ``act``, ``conv``, ``ps``,
``depthwise``, ``pointwise``) follow the Swift-SRGAN reference code, so its checkpoints map onto these
modules key for key. A block takes a *conv factory* (:data:`ConvFactory`) so the same layout serves plain
convolutions (SRResNet) and depthwise-separable ones (Swift-SRGAN).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medsr.errors import ConfigError

#: ``conv(in_channels, out_channels, kernel_size, stride, bias) -> module`` with "same" padding (k // 2).
ConvFactory = Callable[[int, int, int, int, bool], nn.Module]


def plain_conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True
) -> nn.Conv2d:
    """An ordinary k x k convolution with "same" padding (SRResNet / SRGAN)."""
    return nn.Conv2d(
        in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias
    )


class SeparableConv2d(nn.Module):
    """Depthwise k x k convolution (one filter per channel) followed by a pointwise 1 x 1 convolution.

    Swift-SRGAN's replacement for every convolution (Krishnan & Krishnan, arXiv 2111.14320): roughly
    ``k*k + C_out`` instead of ``k*k*C_out`` weights per input channel.
    (N, C_in, H, W) -> (N, C_out, H/s, W/s).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True
    ) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels,
            in_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=in_channels,
            bias=bias,
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def separable_conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True
) -> SeparableConv2d:
    """Conv factory for Swift-SRGAN."""
    return SeparableConv2d(in_channels, out_channels, kernel_size, stride=stride, bias=bias)


class ConvBlock(nn.Module):
    """Convolution, optional BatchNorm, optional activation: ``act(bn(cnn(x)))``.

    ``act`` is ``"prelu"`` (generator, one slope per channel), ``"leaky"`` (discriminator, slope 0.2) or
    ``None``. The convolution has a bias only when no BatchNorm follows it (a bias before BN is redundant).
    """

    def __init__(
        self,
        conv: ConvFactory,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        use_bn: bool = True,
        act: str | None = "prelu",
    ) -> None:
        super().__init__()
        self.cnn = conv(in_channels, out_channels, kernel_size, stride, not use_bn)
        self.bn = nn.BatchNorm2d(out_channels) if use_bn else nn.Identity()
        if act == "prelu":
            self.act: nn.Module = nn.PReLU(num_parameters=out_channels)
        elif act == "leaky":
            self.act = nn.LeakyReLU(0.2, inplace=True)
        else:
            self.act = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.cnn(x)))


class ResidualBlock(nn.Module):
    """SRResNet residual block: conv-BN-PReLU, conv-BN, plus the input. Shape preserved."""

    def __init__(self, conv: ConvFactory, channels: int) -> None:
        super().__init__()
        self.block1 = ConvBlock(conv, channels, channels, 3)
        self.block2 = ConvBlock(conv, channels, channels, 3, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block2(self.block1(x))


class PixelShuffle1d(nn.Module):
    """Sub-pixel shuffle along one axis: (N, C*r, H, W) -> (N, C, H*r, W) (dim=2) or (N, C, H, W*r) (dim=3).

    The 1-D analogue of ``nn.PixelShuffle`` for anisotropic upscaling (ultrasound lines, sinogram views):
    channel ``c*r + i`` becomes sub-position ``i`` of output channel ``c``.
    """

    def __init__(self, factor: int, dim: int) -> None:
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"PixelShuffle1d dim must be 2 (height) or 3 (width), got {dim}")
        self.factor = factor
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, cr, h, w = x.shape
        r = self.factor
        x = x.reshape(n, cr // r, r, h, w)
        if self.dim == 2:
            return x.permute(0, 1, 3, 2, 4).reshape(n, cr // r, h * r, w)
        return x.permute(0, 1, 3, 4, 2).reshape(n, cr // r, h, w * r)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, dim={self.dim}"


class UpsampleBlock(nn.Module):
    """Sub-pixel upsampler: conv to C*fy*fx channels, pixel shuffle, PReLU. (N,C,H,W) -> (N,C,H*fy,W*fx).

    Isotropic stages use ``nn.PixelShuffle`` (as in Shi et al. 2016 and both papers); a stage along one
    axis only uses :class:`PixelShuffle1d`.
    """

    def __init__(self, conv: ConvFactory, channels: int, factor: tuple[int, int]) -> None:
        super().__init__()
        fy, fx = factor
        self.conv = conv(channels, channels * fy * fx, 3, 1, True)
        if fy == fx:
            self.ps: nn.Module = nn.PixelShuffle(fy)
        elif fx == 1:
            self.ps = PixelShuffle1d(fy, dim=2)
        elif fy == 1:
            self.ps = PixelShuffle1d(fx, dim=3)
        else:
            raise ConfigError(f"upsampling stage {fy}x{fx} is not supported (one axis or both equally)")
        self.act = nn.PReLU(num_parameters=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.ps(self.conv(x)))


def normalize_scale(scale: int | Sequence[int]) -> tuple[int, int]:
    """``4`` -> ``(4, 4)``; ``(1, 4)`` stays; each factor a positive int made of 2s and 3s (or 1)."""
    if isinstance(scale, int):
        pair = (scale, scale)
    else:
        pair = tuple(int(s) for s in scale)
        if len(pair) != 2:
            raise ConfigError(f"scale must be an int or (sy, sx), got {scale!r}")
    for s in pair:
        if s < 1 or _factor_stages(s) is None:
            raise ConfigError(
                f"scale {scale!r} is not supported: each factor must be 1, 2, 3, 4, 8 (2s and 3s)"
            )
    return pair  # type: ignore[return-value]


def _factor_stages(s: int) -> list[int] | None:
    """Split a factor into x2 stages then x3 stages (8 -> [2, 2, 2], 3 -> [3]); None if impossible."""
    stages = []
    while s % 2 == 0:
        stages.append(2)
        s //= 2
    while s % 3 == 0:
        stages.append(3)
        s //= 3
    return stages if s == 1 else None


def upsample_stages(scale: tuple[int, int]) -> list[tuple[int, int]]:
    """Per-stage (fy, fx) factors: (4, 4) -> [(2, 2), (2, 2)]; (1, 4) -> [(1, 2), (1, 2)]; (1, 1) -> []."""
    ys, xs = _factor_stages(scale[0]) or [], _factor_stages(scale[1]) or []
    n = max(len(ys), len(xs))
    ys += [1] * (n - len(ys))
    xs += [1] * (n - len(xs))
    return list(zip(ys, xs, strict=True))


def interpolate_input(x: torch.Tensor, scale: tuple[int, int]) -> torch.Tensor:
    """Torch bicubic (align_corners=False) of (N,C,h,w) to (N,C,h*sy,w*sx); identity at scale 1."""
    if scale == (1, 1):
        return x
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h * scale[0], w * scale[1]), mode="bicubic", align_corners=False)
