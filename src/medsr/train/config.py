"""One training configuration: every setting of a run, loaded from YAML, overridden by CLI flags, saved beside it.

It is validated once here (:meth:`TrainConfig.validate`); the trainer trusts it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medsr.errors import ConfigError

STAGES = ("pretrain", "gan", "both")


@dataclass
class TrainConfig:
    """Settings of one training run (defaults follow the Swift-SRGAN / SRGAN papers where they say)."""

    # data
    manifest: str = ""
    train_split: str = "train"
    val_split: str = "val"
    degradation: str = "bicubic"
    degradation_params: dict[str, Any] = field(default_factory=dict)
    patch_size: int = 96
    patches_per_image: int = 16
    # >1: each patch is the most detailed (largest mean gradient) of this many random positions, so that steps
    # go to edges, bones and labels rather than flat background (as in SamplingAug, Wang et al. 2021)
    patch_candidates: int = 1
    batch_size: int = 16
    num_workers: int = 2
    cache_bytes: int = 4 * 1024**3
    val_max_size: int | None = 512
    # model
    model: str = "swift-srgan"
    scale: int = 4
    in_channels: int = 1
    global_skip: bool = False
    init_from: str | None = None  # generator weights to start from (a pretrain checkpoint for the gan stage)
    # stages and optimisation
    stage: str = "pretrain"
    epochs: int = 10  # epochs of the pretrain stage (or of the only stage run)
    gan_epochs: int = 5  # epochs of the gan stage when stage == "both"
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    scheduler: str = "cosine"  # cosine | step | constant
    step_gamma: float = 0.5
    grad_clip: float | None = None
    ema_decay: float | None = 0.999
    pixel_loss: str = "mse"  # mse | l1
    loss_weights: dict[str, float] | None = None  # None: the paper's weights for the model (medsr.losses)
    content_network: str | None = None  # None: mobilenet_v2 for swift-srgan, vgg19 for srgan
    content_weights: str | None = None  # local file with the feature network's state dict
    allow_download: bool = True  # fetch torchvision ImageNet weights when online
    # run
    out: str = "runs/run"
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    channels_last: bool = True
    threads: int | None = None  # torch intra-op threads (None: PyTorch's default)
    sync_bn: bool = False
    save_every_steps: int = 200
    log_every_steps: int = 50
    tensorboard: bool = True
    sample_images: int = 2
    max_steps: int | None = None  # stop after this many optimizer steps in total (benchmarks, smoke tests)

    def validate(self) -> TrainConfig:
        """Check values once at the edge; raise ConfigError naming the setting."""
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {', '.join(STAGES)}, not {self.stage!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise ConfigError(f"optimizer must be adam or adamw, not {self.optimizer!r}")
        if self.scheduler not in ("cosine", "step", "constant"):
            raise ConfigError(f"scheduler must be cosine, step or constant, not {self.scheduler!r}")
        if self.pixel_loss not in ("mse", "l1"):
            raise ConfigError(f"pixel_loss must be mse or l1, not {self.pixel_loss!r}")
        if self.in_channels not in (1, 3):
            raise ConfigError(f"in_channels must be 1 or 3, not {self.in_channels}")
        if self.patch_size % self.scale:
            raise ConfigError(f"patch_size {self.patch_size} must be a multiple of scale {self.scale}")
        if not self.manifest:
            raise ConfigError("no manifest given: pass --manifest (made by `medsr prepare`)")
        if not Path(self.manifest).is_file():
            raise ConfigError(f"manifest {self.manifest} does not exist")
        for name in ("batch_size", "epochs", "patches_per_image", "patch_candidates", "save_every_steps",
                     "log_every_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        return self

    @property
    def stages(self) -> list[tuple[str, int]]:
        """(stage, epochs) in the order they run."""
        if self.stage == "both":
            return [("pretrain", self.epochs), ("gan", self.gan_epochs)]
        return [(self.stage, self.epochs)]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> TrainConfig:
        """Read a YAML config (optional) and apply non-None overrides (the CLI flags)."""
        data: dict[str, Any] = {}
        if path is not None:
            try:
                data = yaml.safe_load(Path(path).read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"cannot read config {path}: {exc}") from exc
        data.update({key: value for key, value in overrides.items() if value is not None})
        return cls.from_dict(data)
