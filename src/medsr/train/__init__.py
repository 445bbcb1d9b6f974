"""Training: one loop for every model and stage (``medsr.train.train``), its config, and torchrun set-up."""

from __future__ import annotations

from medsr.train.config import TrainConfig
from medsr.train.trainer import train

__all__ = ["TrainConfig", "train"]
