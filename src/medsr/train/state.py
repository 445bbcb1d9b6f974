"""Everything a training run needs to continue exactly where it stopped, as one object.

:class:`TrainState` holds the networks, optimisers and schedulers of the stage in progress and the run's
counters; ``checkpoints/last.pt`` (and ``state_epochN.pt``) is its :meth:`TrainState.state_dict`, and a resume is
its :meth:`TrainState.load_state_dict`, together with the random generators' states, so that a resumed run
trains on the same data with the same numbers as an unbroken one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

MODULES = ("generator", "ema", "discriminator", "opt_g", "opt_d", "sched_g", "sched_d")
"""Fields saved through their own ``state_dict()`` (None where the stage has none)."""

COUNTERS = ("stage_index", "epoch", "epoch_in_stage", "batches_done", "step", "best_psnr", "sums", "count",
            "elapsed", "epoch_elapsed")
"""Fields saved as they are."""


@dataclass
class TrainState:
    """The networks and optimisers of a run, and how far it got.

    ``epoch`` counts across stages (0-based, the epoch in progress); ``batches_done`` are the batches of it
    already trained; ``sums``/``count`` accumulate the epoch's loss terms; ``elapsed``/``epoch_elapsed`` are
    training seconds before this process started.
    """

    generator: nn.Module
    ema: nn.Module | None = None
    discriminator: nn.Module | None = None
    opt_g: torch.optim.Optimizer | None = None
    opt_d: torch.optim.Optimizer | None = None
    sched_g: Any = None
    sched_d: Any = None
    stage_index: int = 0
    epoch: int = 0
    epoch_in_stage: int = 0
    batches_done: int = 0
    step: int = 0
    best_psnr: float = -math.inf
    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    elapsed: float = 0.0
    epoch_elapsed: float = 0.0

    def add_terms(self, terms: dict[str, float]) -> None:
        """Count one step's loss terms into the epoch's sums."""
        for key, value in terms.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def means(self) -> dict[str, float]:
        """The epoch's mean of each loss term."""
        return {key: value / max(1, self.count) for key, value in self.sums.items()}

    def next_epoch(self) -> None:
        """Move on to the next epoch of the stage: nothing of it trained, no terms summed yet."""
        self.epoch += 1
        self.epoch_in_stage += 1
        self.batches_done = 0
        self.sums, self.count = {}, 0
        self.epoch_elapsed = 0.0

    def state_dict(self, **extra: Any) -> dict[str, Any]:
        """Counters, each network's and optimiser's state dict, the random generators' states, and ``extra``
        (the config, the seconds counted up to now), as one dict for ``torch.save``."""
        state = {name: getattr(self, name) for name in COUNTERS}
        state["sums"] = dict(self.sums)
        state.update({name: None if (obj := getattr(self, name)) is None else obj.state_dict() for name in MODULES})
        state.update(rng_torch=torch.get_rng_state(), rng_python=list(random.getstate()[1]))
        state.update(extra)
        return state

    def load_progress(self, state: dict[str, Any]) -> None:
        """Take the counters of a saved state (before the stage they name is set up)."""
        for name in COUNTERS:
            setattr(self, name, state[name])
        self.sums = dict(state["sums"])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved state into the networks and optimisers present now, and the random generators."""
        self.load_progress(state)
        for name in MODULES:
            obj = getattr(self, name)
            if obj is not None and state.get(name) is not None:
                obj.load_state_dict(state[name])
        torch.set_rng_state(state["rng_torch"])
        random.setstate((3, tuple(state["rng_python"]), None))
