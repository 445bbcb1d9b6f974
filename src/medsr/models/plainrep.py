"""A plain stack of dense 3x3 convolutions, trained re-parameterised and run collapsed: the CPU-native generator.

Follows ECBSR (Zhang, Zeng & Zhang, "Edge-oriented Convolution Block for Real-time Super Resolution on Mobile
Devices", ACM MM 2021) and RepVGG (Ding et al., CVPR 2021): during training each layer is a 3x3 conv plus a
1x1 conv plus the identity (when the widths match), which trains better than a bare 3x3 stack; for inference
the three branches are summed into one 3x3 conv (:meth:`PlainRep.collapse`), so the deployed network is
``num_convs`` dense 3x3 convolutions with PReLU, one pixel shuffle and the bicubic skip. No BatchNorm
anywhere: dense convolutions run on oneDNN's AVX-512/AMX kernels, where Swift-SRGAN's depthwise convolutions
and BatchNorm are memory-bound (``bench/train_throughput.py``).

Shapes: (N, C, h, w) in [0, 1] -> (N, C, h*sy, w*sx), C = 1 or 3, scale s or (sy, sx) with s in 1, 2, 3, 4, 8.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medsr.models.blocks import interpolate_input, normalize_scale


def pixel_shuffle(x: torch.Tensor, scale: tuple[int, int]) -> torch.Tensor:
    """(N, C*sy*sx, h, w) -> (N, C, h*sy, w*sx); ``nn.PixelShuffle``'s channel order, also for sy != sx."""
    sy, sx = scale
    if sy == sx:
        return F.pixel_shuffle(x, sy) if sy > 1 else x
    n, c, h, w = x.shape
    out = c // (sy * sx)
    x = x.reshape(n, out, sy, sx, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(n, out, h * sy, w * sx)


class RepConv(nn.Module):
    """Training form of one layer: 3x3 conv + 1x1 conv (+ identity when in == out), summed. Collapses to a 3x3."""

    def __init__(self, in_channels: int, out_channels: int, identity: bool = True) -> None:
        super().__init__()
        self.conv3 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1)
        self.identity = identity and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(x) + self.conv1(x)
        return y + x if self.identity else y

    @torch.no_grad()
    def collapse(self) -> nn.Conv2d:
        """One 3x3 conv computing exactly this layer's function (up to float rounding)."""
        weight = self.conv3.weight.detach().clone()
        conv = nn.Conv2d(self.conv3.in_channels, self.conv3.out_channels, 3, padding=1, dtype=weight.dtype,
                         device=weight.device)
        weight[:, :, 1, 1] += self.conv1.weight[:, :, 0, 0]
        if self.identity:
            weight[:, :, 1, 1] += torch.eye(weight.shape[0], dtype=weight.dtype, device=weight.device)
        conv.weight.copy_(weight)
        conv.bias.copy_(self.conv3.bias + self.conv1.bias)
        return conv


class PlainRep(nn.Module):
    """``num_convs`` layers of width ``num_channels``: conv + PReLU, ..., conv to C*sy*sx, pixel shuffle, + bicubic.

    ``collapsed=True`` builds the inference form (plain 3x3 convs) directly; :meth:`collapse` turns a trained
    model into it. With ``global_skip`` (the default) the last conv starts at zero, so training starts from
    bicubic, and the output is clamped to [0, 1] in eval mode only.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        scale: int | Sequence[int] = 4,
        num_channels: int = 48,
        num_convs: int = 12,
        global_skip: bool = True,
        collapsed: bool = False,
    ) -> None:
        super().__init__()
        if num_convs < 2:
            raise ValueError(f"num_convs must be at least 2, got {num_convs}")
        self.in_channels = in_channels
        self.scale = normalize_scale(scale)
        self.global_skip = global_skip
        self.collapsed = collapsed
        widths = [in_channels] + [num_channels] * (num_convs - 1) + [in_channels * self.scale[0] * self.scale[1]]
        pairs = list(zip(widths[:-1], widths[1:], strict=True))
        if collapsed:
            self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1) for i, o in pairs)
        else:  # the last layer maps features to pixels: no identity branch even when the widths match
            self.convs = nn.ModuleList(RepConv(i, o, identity=k < len(pairs) - 1) for k, (i, o) in enumerate(pairs))
        self.acts = nn.ModuleList(nn.PReLU(num_parameters=num_channels) for _ in range(num_convs - 1))
        if global_skip and not collapsed:
            for conv in (self.convs[-1].conv3, self.convs[-1].conv1):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv, act in zip(self.convs[:-1], self.acts, strict=True):
            y = act(conv(y))
        y = pixel_shuffle(self.convs[-1](y), self.scale)
        if not self.global_skip:
            return y if self.training else y.clamp(0.0, 1.0)
        out = interpolate_input(x, self.scale) + y
        return out if self.training else out.clamp(0.0, 1.0)

    @torch.no_grad()
    def grow_from(self, source: PlainRep, new_scale: float = 0.1) -> None:
        """Take a trained, narrower and/or shallower PlainRep's function as this one's starting point (Net2Net).

        Follows Net2Net (Chen, Goodfellow & Shlens, ICLR 2016): the grown network computes exactly the
        source's function, so training continues from its quality instead of from bicubic. The source's
        channels are the first ``C`` of each layer; new channels take inputs from all channels (small random
        weights, ``new_scale`` times the default initialisation) but feed nothing yet (zero weights into the
        old channels and into the output layer). Extra layers go in before the output layer as exact
        identities: both branches zero, so only the identity branch passes, and a PReLU slope of 1.
        """
        if self.collapsed:
            raise ValueError("grow the training form (collapsed=False), not the inference form")
        if not isinstance(source, PlainRep):
            raise ValueError(f"a plainrep grows only from a plainrep, not from {type(source).__name__}")
        if (source.in_channels, source.scale, source.global_skip) != (self.in_channels, self.scale, self.global_skip):
            raise ValueError("source and target differ in channels, scale or global skip")
        src_hidden, width = len(source.convs) - 1, _width(source)  # the source's last index is its hidden count
        if src_hidden > len(self.convs) - 1 or width > _width(self):
            raise ValueError(f"cannot shrink: source has {src_hidden + 1} layers of {width} channels, "
                             f"this network {len(self.convs)} of {_width(self)}")
        reference = next(self.parameters())
        layers = [_branches(conv, reference, identity=0 < k < src_hidden) for k, conv in enumerate(source.convs)]
        for k, (w3, b3, w1, b1) in enumerate(layers[:-1]):
            conv = self.convs[k]
            for branch, weight in ((conv.conv3, w3), (conv.conv1, w1)):
                branch.weight.mul_(new_scale)
                branch.bias.mul_(new_scale)
                branch.weight[:width, width:].zero_()  # new channels feed no old one (none exist in layer 0)
                branch.weight[:width, : weight.shape[1]].copy_(weight)
            conv.conv3.bias[:width].copy_(b3)
            conv.conv1.bias[:width].copy_(b1)
            self.acts[k].weight.fill_(0.25)
            self.acts[k].weight[:width].copy_(source.acts[k].weight)
        for k in range(src_hidden, len(self.convs) - 1):  # inserted layers: the identity branch alone, PReLU = x
            for branch in (self.convs[k].conv3, self.convs[k].conv1):
                branch.weight.zero_()
                branch.bias.zero_()
            self.acts[k].weight.fill_(1.0)
        w3, b3, w1, b1 = layers[-1]
        last = self.convs[-1]
        for branch, weight, bias in ((last.conv3, w3, b3), (last.conv1, w1, b1)):
            branch.weight.zero_()
            branch.weight[:, :width].copy_(weight)
            branch.bias.copy_(bias)

    @torch.no_grad()
    def collapse(self) -> PlainRep:
        """The inference form: each layer's branches summed into one 3x3 conv; same function, in eval mode."""
        if self.collapsed:
            return self
        plain = PlainRep(in_channels=self.in_channels, scale=self.scale, num_channels=self.convs[0].conv3.out_channels,
                         num_convs=len(self.convs), global_skip=self.global_skip, collapsed=True)
        plain.convs = nn.ModuleList(conv.collapse() for conv in self.convs)
        reference = next(self.parameters())
        plain = plain.to(device=reference.device, dtype=reference.dtype)
        plain.acts.load_state_dict(self.acts.state_dict())
        return plain.eval()


def _width(model: PlainRep) -> int:
    first = model.convs[0]
    return (first.conv3 if isinstance(first, RepConv) else first).out_channels


def _branches(layer: nn.Module, like: torch.Tensor, identity: bool) -> tuple[torch.Tensor, ...]:
    """(3x3 weight, bias, 1x1 weight, bias) of a layer; a collapsed conv is all 3x3, its 1x1 branch zero.

    A collapsed hidden layer (``identity``) holds its identity branch in the centre tap; it is taken out,
    because the grown layer keeps its own identity branch.
    """
    if isinstance(layer, RepConv):
        tensors = (layer.conv3.weight, layer.conv3.bias, layer.conv1.weight, layer.conv1.bias)
    else:
        weight = layer.weight.detach().clone()
        if identity:
            weight[:, :, 1, 1] -= torch.eye(weight.shape[0], dtype=weight.dtype, device=weight.device)
        tensors = (weight, layer.bias, torch.zeros_like(weight[:, :, 1:2, 1:2]), torch.zeros_like(layer.bias))
    return tuple(t.detach().to(like) for t in tensors)


def build_generator(
    *,
    in_channels: int = 1,
    scale: int | Sequence[int] = 4,
    global_skip: bool = True,
    num_channels: int = 32,
    num_convs: int = 16,
) -> PlainRep:
    """The training form: 16 re-parameterisable layers of 32 channels by default (135k parameters collapsed, x4).

    32 channels because dense 3x3 convolutions of that width ran fastest per FLOP on the AVX2 CPU it was chosen
    on; depth cost little there, so 16 layers for a 33-pixel receptive field (``bench/train_throughput.py``).
    """
    return PlainRep(in_channels=in_channels, scale=scale, num_channels=num_channels, num_convs=num_convs,
                    global_skip=global_skip)
