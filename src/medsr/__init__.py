"""medsr: medical image super-resolution (SRResNet, SRGAN, Swift-SRGAN) for X-ray, CT, ultrasound and endoscopy.

The public Python API is re-exported here and imported lazily, so ``import medsr`` stays fast and a
heavy optional dependency is only loaded when the function that needs it is called.
"""

from __future__ import annotations

from typing import Any

from medsr.lazy import load

__version__ = "0.1.0"

_API = {
    "MedicalImage": "medsr.io.image",
    "read_image": "medsr.io",
    "write_image": "medsr.io",
    "MedsrError": "medsr.errors",
    "psnr": "medsr.metrics",
    "ssim": "medsr.metrics",
    "consistency_map": "medsr.consistency",
    "build_generator": "medsr.models",
    "load_model": "medsr.models",
    "DEFAULT_MODEL": "medsr.models",
    "InferenceSettings": "medsr.infer",
    "Protocol": "medsr.protocol",
    "upscale": "medsr.infer",
    "train": "medsr.train",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return load(f"{_API[name]}:{name}")
    raise AttributeError(f"module 'medsr' has no attribute {name!r}")
