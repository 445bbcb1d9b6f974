"""One training configuration: every setting of a run, loaded from YAML, overridden by CLI flags, saved beside it.

It is validated once here (:meth:`TrainConfig.validate`); the trainer trusts it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medsr.data.signals import FaintSignals
from medsr.degrade import degradation_spec
from medsr.errors import ConfigError

STAGES = ("pretrain", "discriminator", "gan", "both")
#: What a resumed run may change: how long it runs and on what hardware, never what it learns from.
RESUMABLE = ("epochs", "gan_epochs", "max_steps", "threads", "num_workers", "device")


def flag(default: Any, help: str) -> Any:
    """A setting that is also a ``medsr train --flag`` (the CLI builds its options from these; one declaration)."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Settings of one training run (defaults follow the Swift-SRGAN / SRGAN papers where they say).

    Settings made with :func:`flag` are also ``medsr train`` options; the others are set in the YAML file.
    """

    # data
    manifest: str = flag("", "Manifest from `medsr prepare`.")
    train_split: str = "train"
    val_split: str = "val"
    degradation: str = flag("bicubic", "How LR inputs are made (a medsr.degrade name).")
    degradation_params: dict[str, Any] = field(default_factory=dict)
    patch_size: int = flag(96, "HR patch side in pixels.")
    patches_per_image: int = flag(16, "Patches drawn from each image per epoch.")
    # >1: each patch is the most detailed (largest mean gradient) of this many random positions, so that steps
    # go to edges, bones and labels rather than flat background (as in SamplingAug, Wang et al. 2021)
    patch_candidates: int = flag(1, "Keep the most detailed of this many random patch positions.")
    # >0: this share of patches is placed over a hard step (markers, padding bars: neighbour differences above
    # hard_edge_step of the full range), where bicubic rings most and random patches rarely look
    hard_edge_fraction: float = flag(0.0, "Share of patches placed over hard steps (markers, padding bars).")
    hard_edge_step: float = 40 / 255
    # >0: this share of HR patches gets a synthetic burned-in annotation (text, side marker, line; see
    # medsr.data.overlays): sharp graphics that real radiographs carry and a few hundred images hold few of
    overlay_prob: float = flag(0.0, "Share of patches given a synthetic burned-in annotation (text, marker).")
    # >0: this share of HR patches gets a few faint round discs (medsr.data.signals) before it is degraded, so
    # that a denoising network keeps small, faint findings (issue: `medsr detectability`); signal_params sets
    # their ranges (FaintSignals: diameter, contrast, count, bright, absolute, within), empty = its defaults
    signal_prob: float = flag(0.0, "Share of patches given faint round discs (keeps small findings).")
    signal_params: dict[str, Any] = field(default_factory=dict)
    # >0: each patch is also run without its discs (same kernel and noise), and the network's response to them
    # (output with minus output without) is held to the discs themselves with this weight (pretrain stage only;
    # a second forward pass per patch)
    signal_weight: float = flag(0.0, "Weight of the loss holding the response to inserted faint discs to the "
                                     "discs (needs --signal-prob).")
    # >0: the response and the discs are compared after a Gaussian blur of this sigma (HR px): their mass and
    # coarse profile, what a model observer sees, instead of edges the LR cannot hold
    signal_blur: float = flag(0.0, "Sigma (HR px) of a Gaussian blur before the response is held to the discs "
                                   "(0: pixel by pixel; needs --signal-weight).")
    # draw the images of small sources (hospitals) more often, so that each gives about as many patches
    balance_sources: bool = flag(False, "Draw images of small sources more often (each source weighs alike).")
    # a subset that validation shows the model serves worst (e.g. one hospital's downsized PNGs) drawn N times as
    # often, on top of balance_sources: 'GLOB=N[,GLOB=N]', GLOB matched against each training image's path
    oversample: str | None = flag(None, "Draw training images whose path matches GLOB N times as often: "
                                        "'GLOB=N[,GLOB=N]' (e.g. '*/hannover-640/*=3').")
    batch_size: int = flag(16, "Patches per step (per process).")
    num_workers: int = flag(2, "DataLoader workers.")
    cache_bytes: int = 4 * 1024**3
    # validation scores whole images by default, as `medsr evaluate` does; a size centre-crops them for speed
    # (then `medsr evaluate --max-size` with the same size reproduces the logged numbers)
    val_max_size: int | None = flag(None, "Centre-crop validation images to this many pixels a side (speed).")
    # models that work in physical units (CT): the modality values (e.g. HU) at the network's 0 and 1, and the
    # offset of PNG/TIFF inputs (value = stored - offset; 1024 for "HU + 1024" PNGs); both go into the header
    value_range: list[float] | None = None
    raster_offset: float = 0.0
    modality: str | None = None  # DICOM Modality the model is for (CT, US, ...), recorded in its header
    # model
    model: str = flag("swift-srgan", "Architecture: plainrep | srresnet | srgan | swift-srgan | unet.")
    scale: int = flag(4, "Upscaling factor (2, 3, 4, 8).")
    in_channels: int = flag(1, "1 (grayscale) or 3.")
    # the architecture's own size settings (plainrep: num_channels, num_convs; unet: num_channels, num_levels);
    # empty = its defaults
    model_args: dict[str, Any] = field(default_factory=dict)
    global_skip: bool | None = flag(None, "Learn a residual over bicubic (default: the architecture's choice).")
    init_from: str | None = flag(None, "Generator checkpoint to start from (a pretrain checkpoint for gan).")
    # a discriminator that already tells SR from HR (checkpoints/discriminator.pt of a discriminator or gan run)
    init_discriminator_from: str | None = flag(None, "Discriminator weights to start from (a run's "
                                                     "checkpoints/discriminator.pt).")
    # stages and optimisation
    # discriminator: the discriminator alone, against the frozen --init-from generator (before a gan stage)
    stage: str = flag("pretrain", "pretrain | discriminator | gan | both.")
    epochs: int = flag(10, "Epochs of the pretrain stage (or of the only stage run).")
    gan_epochs: int = flag(5, "Epochs of the gan stage with --stage both.")
    discriminator_epochs: int = flag(0, "Epochs of a discriminator stage between pretrain and gan with --stage both.")
    optimizer: str = "adam"  # adam | adamw
    lr: float = flag(1e-4, "Generator learning rate.")
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    scheduler: str = "cosine"  # cosine | step | constant
    step_gamma: float = 0.5
    grad_clip: float | None = None
    ema_decay: float | None = 0.999
    pixel_loss: str = flag("mse", "mse | l1.")
    loss_weights: dict[str, float] | None = None  # None: the paper's weights for the model (medsr.losses)
    content_network: str | None = None  # None: mobilenet_v2 for swift-srgan, vgg19 for srgan
    content_weights: str | None = flag(None, "Local state dict of the content loss's feature network.")
    allow_download: bool = True  # fetch torchvision ImageNet weights when online
    # run
    out: str = flag("runs/run", "Run folder.")
    seed: int = flag(0, "Random seed.")
    device: str = flag("auto", "auto | cpu | cuda | cuda:N.")
    amp: bool = flag(False, "bfloat16 autocast, on CUDA or the CPU (fast on CPUs with AVX512-BF16 or AMX; "
                                 "elsewhere emulated, several times slower, and the run says so).")
    channels_last: bool = True
    threads: int | None = flag(None, "PyTorch CPU threads (default: all cores).")
    sync_bn: bool = flag(False, "SyncBatchNorm under torchrun.")
    save_every_steps: int = 200
    log_every_steps: int = 50
    tensorboard: bool = True
    sample_images: int = 2
    max_steps: int | None = flag(None, "Stop after this many optimizer steps in all (benchmarks, smoke tests).")

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
        low_high = self.value_range
        if low_high is not None and (len(low_high) != 2 or not low_high[1] > low_high[0]):
            raise ConfigError(f"value_range must be [low, high] with low < high, not {self.value_range}")
        spec = degradation_spec(self.degradation)
        if any(self.patch_size % multiple for multiple in spec.hr_multiple(self.scale)):
            raise ConfigError(f"patch_size {self.patch_size} must be a multiple of scale {self.scale}")
        if self.stage == "discriminator" and not self.init_from:
            raise ConfigError("stage discriminator trains against a frozen, pretrained generator: pass --init-from")
        if self.discriminator_epochs < 0:
            raise ConfigError("discriminator_epochs must be 0 or more")
        if not self.manifest:
            raise ConfigError("no manifest given: pass --manifest (made by `medsr prepare`)")
        if not Path(self.manifest).is_file():
            raise ConfigError(f"manifest {self.manifest} does not exist")
        if not 0.0 <= self.hard_edge_fraction <= 1.0:
            raise ConfigError(f"hard_edge_fraction must lie in [0, 1], not {self.hard_edge_fraction}")
        if not 0.0 < self.hard_edge_step < 1.0:
            raise ConfigError(f"hard_edge_step must lie in (0, 1), not {self.hard_edge_step}")
        if not 0.0 <= self.overlay_prob <= 1.0:
            raise ConfigError(f"overlay_prob must lie in [0, 1], not {self.overlay_prob}")
        if self.overlay_prob and spec.whole_image:
            raise ConfigError(f"overlay_prob needs a per-patch degradation; {self.degradation} degrades whole slices")
        if not 0.0 <= self.signal_prob <= 1.0:
            raise ConfigError(f"signal_prob must lie in [0, 1], not {self.signal_prob}")
        if self.signal_prob and spec.whole_image and spec.affine_parts is None:
            raise ConfigError(f"signal_prob needs a per-patch degradation; {self.degradation} degrades whole slices")
        if self.signal_weight < 0 or (self.signal_weight and not self.signal_prob):
            raise ConfigError(f"signal_weight must be 0, or positive with signal_prob > 0, not {self.signal_weight}")
        if self.signal_blur < 0 or (self.signal_blur and not self.signal_weight):
            raise ConfigError(f"signal_blur must be 0, or positive with signal_weight > 0, not {self.signal_blur}")
        self.faint_signals()  # raises on a malformed setting
        self.oversample_factors()  # raises on a malformed setting
        for name in ("batch_size", "epochs", "patches_per_image", "patch_candidates", "save_every_steps",
                     "log_every_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        return self

    def oversample_factors(self) -> dict[str, int]:
        """``oversample`` as {glob: factor}; ConfigError naming the setting when it is malformed."""
        factors: dict[str, int] = {}
        for part in filter(None, (self.oversample or "").split(",")):
            pattern, _, count = part.rpartition("=")
            try:
                factor = int(count)
            except ValueError:
                factor = 0
            if not pattern or factor < 1:
                raise ConfigError(f"oversample must be GLOB=N[,GLOB=N] with N a whole number >= 1, not {part!r}")
            factors[pattern] = factor
        return factors

    def faint_signals(self) -> FaintSignals:
        """``signal_params`` as a :class:`FaintSignals`; ConfigError naming the setting when it is malformed."""
        params = {key: tuple(value) if isinstance(value, list) else value
                  for key, value in self.signal_params.items()}
        try:
            return FaintSignals(**params)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"signal_params: {e}") from e

    @classmethod
    def cli_fields(cls) -> list[dataclasses.Field]:
        """The settings that are ``medsr train`` options, in declaration order."""
        return [f for f in dataclasses.fields(cls) if "help" in f.metadata]

    @property
    def stages(self) -> list[tuple[str, int]]:
        """(stage, epochs) in the order they run."""
        if self.stage == "both":
            between = [("discriminator", self.discriminator_epochs)] if self.discriminator_epochs else []
            return [("pretrain", self.epochs), *between, ("gan", self.gan_epochs)]
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
