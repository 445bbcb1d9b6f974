"""Super-resolution networks (plainrep, SRResNet/SRGAN, Swift-SRGAN, a residual U-Net) by name, and their checkpoints.

``build_generator("plainrep", in_channels=1, scale=4)`` builds a network; ``save_model`` / ``load_model``
write and read medsr's ``.safetensors`` checkpoints (``load_model`` is the one model getter: bundled names,
the default model, the reference Swift-SRGAN ``.pth.tar`` format, cached per process); ``adapt_channels``
runs a model on images with another channel count. Architecture modules are imported only when first built.
"""

from medsr.models.registry import (
    DEFAULT_MODEL,
    DISCRIMINATORS,
    GENERATORS,
    ModelLike,
    adapt_channels,
    build_discriminator,
    build_generator,
    list_bundled_models,
    load_model,
    model_header,
    model_name,
    read_header,
    save_model,
)

#: Alias of :func:`adapt_channels` (grayscale into a 3-channel model and back).
forward_gray_compatible = adapt_channels

__all__ = [
    "DEFAULT_MODEL",
    "DISCRIMINATORS",
    "GENERATORS",
    "ModelLike",
    "adapt_channels",
    "build_discriminator",
    "build_generator",
    "forward_gray_compatible",
    "list_bundled_models",
    "load_model",
    "model_header",
    "model_name",
    "read_header",
    "save_model",
]
