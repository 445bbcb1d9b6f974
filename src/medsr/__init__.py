"""medsr: medical image super-resolution (SRResNet, SRGAN, Swift-SRGAN) for X-ray, CT, ultrasound and endoscopy.

The public Python API is re-exported here and imported lazily, so ``import medsr`` stays fast and a
heavy optional dependency is only loaded when the function that needs it is called.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "MedicalImage": "medsr.io.image",
    "read_image": "medsr.io",
    "write_image": "medsr.io",
    "MedsrError": "medsr.errors",
    "psnr": "medsr.metrics",
    "ssim": "medsr.metrics",
    "build_generator": "medsr.models",
    "load_model": "medsr.models",
    "upscale": "medsr.infer",
    "train": "medsr.train",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'medsr' has no attribute {name!r}")
