"""Training: one loop for every model and stage (``medsr.train.train``), its config, and torchrun set-up."""

from __future__ import annotations

from typing import Any


def train(*args: Any, **kwargs: Any):
    """Train a generator; see :func:`medsr.train.trainer.train`."""
    from medsr.train.trainer import train as _train

    return _train(*args, **kwargs)


__all__ = ["train"]
