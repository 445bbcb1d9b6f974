"""Swift-SRGAN (Krishnan & Krishnan, "SwiftSRGAN - Rethinking Super-Resolution for Efficient and Real-time
Inference", arXiv 2111.14320): the SRResNet/SRGAN layout with every convolution depthwise-separable.

About 0.2 M generator parameters at x4 (SRResNet: 1.5 M). Module names match the reference code
(``initial.cnn.depthwise``, ``residual.N.block1.bn``, ``upsampler.N.conv.pointwise``, ``final_conv``...), so
its checkpoints load key for key (see ``registry.convert_swift_srgan_state``).
"""

from __future__ import annotations

from collections.abc import Sequence

from medsr.models.blocks import separable_conv
from medsr.models.srresnet import DISCRIMINATOR_FEATURES, SRGANDiscriminator, SRResNet


def build_generator(
    *,
    in_channels: int = 1,
    scale: int | Sequence[int] = 4,
    global_skip: bool = False,
    num_channels: int = 64,
    num_blocks: int = 16,
) -> SRResNet:
    """Swift-SRGAN generator: (N, C, h, w) in [0, 1] -> (N, C, h*sy, w*sx), output ``(tanh + 1) / 2``."""
    return SRResNet(
        separable_conv,
        in_channels=in_channels,
        scale=scale,
        num_channels=num_channels,
        num_blocks=num_blocks,
        global_skip=global_skip,
    )


def build_discriminator(
    *, in_channels: int = 1, features: Sequence[int] = DISCRIMINATOR_FEATURES
) -> SRGANDiscriminator:
    """Swift-SRGAN discriminator: 8 separable conv blocks, 6x6 avg pooling, dense 1024, dense 1 (logits)."""
    return SRGANDiscriminator(separable_conv, in_channels=in_channels, features=features)
