"""Super-resolution networks (SRResNet/SRGAN, Swift-SRGAN) by name, and their checkpoints.

``build_generator("swift-srgan", in_channels=1, scale=4)`` builds a network; ``save_model`` / ``load_model``
write and read medsr's ``.safetensors`` checkpoints (``load_model`` also reads bundled names and the reference
Swift-SRGAN ``.pth.tar`` format); ``adapt_channels`` runs a model on images with another channel count.
Architecture modules are imported only when first built.
"""

from medsr.models.registry import (
    DISCRIMINATORS,
    GENERATORS,
    adapt_channels,
    build_discriminator,
    build_generator,
    list_bundled_models,
    load_model,
    model_header,
    read_header,
    save_model,
)

#: Alias of :func:`adapt_channels` (grayscale into a 3-channel model and back).
forward_gray_compatible = adapt_channels

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "adapt_channels",
    "build_discriminator",
    "build_generator",
    "forward_gray_compatible",
    "list_bundled_models",
    "load_model",
    "model_header",
    "read_header",
    "save_model",
]
