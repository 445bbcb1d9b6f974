"""The one training loop for every generator and stage, in the manner of torchvision's reference scripts.

``pretrain`` trains the generator with the pixel loss alone (SRResNet / Swift-SRResNet); ``discriminator``
trains a discriminator against a frozen pretrained generator; ``gan`` adds the content, adversarial and
total-variation terms and trains a discriminator alongside (:mod:`medsr.train.steps` holds one step of each).
:meth:`Trainer.train_one_epoch` runs an epoch's steps; every epoch ends with :meth:`Trainer.validate` (the
protocol and means of ``medsr evaluate``, beside bicubic), a row in ``metrics.csv`` (and one per source in
``val_sources.csv``), TensorBoard scalars and images (:meth:`Trainer.log`), and an atomic checkpoint. The run's
:class:`~medsr.train.state.TrainState` is also written to ``last.pt`` every ``save_every_steps`` steps, so a run
killed mid-epoch resumes at the step it last saved, with the same data it would have seen (sampling depends
only on seed, epoch and index).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import fnmatch
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler

from medsr.atomic import atomic_path
from medsr.data.datasets import PatchDataset, source_repeats, split_rows
from medsr.data.manifest import ManifestRow, items_from_manifest
from medsr.degrade import lr_scale
from medsr.devices import cpu_has_native_bf16, resolve_device
from medsr.errors import ConfigError, MedsrError
from medsr.extras import require
from medsr.infer import upscale_array
from medsr.losses import CONTENT_NETWORK_FOR_ARCH, LOSS_WEIGHTS_FOR_ARCH, GeneratorLoss, build_content_network
from medsr.models import build_discriminator, build_generator, load_model, save_model
from medsr.protocol import Pair, Protocol, read_images
from medsr.scores import MEAN_OF_SOURCES, ScoreRow, headline, summarize_sources
from medsr.train import distributed as dist_utils
from medsr.train.config import RESUMABLE, TrainConfig
from medsr.train.state import TrainState
from medsr.train.steps import NonFiniteLoss, StepSettings, discriminator_step, gan_step, pretrain_step

METRIC_COLUMNS = [
    "epoch", "stage", "step", "loss_g", "loss_pixel", "loss_content", "loss_adversarial", "loss_tv",
    "loss_d", "d_real", "d_fake", "val_psnr", "val_ssim", "bicubic_psnr", "bicubic_ssim", "lr", "seconds",
    "minutes_total",
]
# val_sources.csv: the validation figures of each source, a row per source and epoch
SOURCE_METRIC_COLUMNS = ["epoch", "step", "source", "val_psnr", "val_ssim", "bicubic_psnr", "bicubic_ssim"]


def generator_for(config: TrainConfig) -> nn.Module:
    """The untrained generator a config describes (architecture, channels, model_args, global skip).

    Its (sy, sx) follows the degradation: (1, s) for ultrasound, (1, 1) for sparse-view CT.
    """
    return build_generator(config.model, in_channels=config.in_channels,
                           scale=lr_scale(config.degradation, config.scale), global_skip=config.global_skip,
                           **config.model_args)


class TrainingError(MedsrError):
    """Training cannot go on (for example a loss became NaN); the last good checkpoint is kept."""


def _save_state(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` a :meth:`TrainState.state_dict`, atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


class _ResumeSampler(torch.utils.data.Sampler):
    """This rank's indices for one epoch, minus the batches already trained before a resume."""

    def __init__(self, indices: list[int]) -> None:
        self.indices = indices

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class Trainer:
    """Runs the stages of a :class:`TrainConfig`, writing everything into ``config.out``."""

    def __init__(self, config: TrainConfig, resume: bool = False) -> None:
        self.config = config.validate()
        self.device = resolve_device(config.device)
        self.dist = dist_utils.init_distributed(self.device.type)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        self.run_dir = Path(config.out)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.resume = resume
        self.console = _console(self.dist.is_main)
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.amp and self.device.type == "cpu" and not cpu_has_native_bf16():
            self.console.print("--amp: this CPU has no AVX512-BF16 or AMX, so bfloat16 is emulated and training "
                               "will be several times slower than fp32; drop --amp here", highlight=False)
        # NHWC makes depthwise convolutions several times faster on CPUs (and is what tensor cores want)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        generator = generator_for(config).to(self.device, memory_format=self.memory_format)
        if config.sync_bn and self.dist.enabled:
            generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)
        self.state = TrainState(generator=generator)
        if config.init_from:
            self._load_init_weights(config.init_from)
        self.state.ema = self._new_ema()
        self.steps = StepSettings(config.pixel_loss, config.grad_clip, config.amp, self.device.type,
                                  config.signal_weight, config.signal_blur)
        self.gen_loss: nn.Module | None = None
        self.content_net: nn.Module | None = None  # built once, before any stage runs (see _build_content_net)

        train_rows = split_rows(config.manifest, config.train_split, min_size=config.patch_size)
        train_paths = [Path(row.path) for row in train_rows]
        if not train_paths:
            raise ConfigError(
                f"manifest {config.manifest} has no {config.train_split!r} images of at least "
                f"{config.patch_size} pixels"
            )
        channels = config.in_channels
        self.train_set = PatchDataset(
            train_paths, scale=config.scale, patch_size=config.patch_size, degradation=config.degradation,
            degradation_params=config.degradation_params, patches_per_image=config.patches_per_image,
            patch_candidates=config.patch_candidates, hard_edge_fraction=config.hard_edge_fraction,
            hard_edge_step=config.hard_edge_step, overlay_prob=config.overlay_prob,
            signal_prob=config.signal_prob, signals=config.faint_signals(), signal_pairs=config.signal_weight > 0,
            repeats=_draw_counts(train_rows, config),
            channels=channels, cache_bytes=config.cache_bytes,
            seed=config.seed, value_range=config.value_range, raster_offset=config.raster_offset,
        )
        # decode once here, before DataLoader workers fork and share the cache
        self.train_set.preload()
        # validation is medsr evaluate's protocol on the same images and keys: the numbers a run logs are the
        # ones `medsr evaluate --split val` (with the same --max-size) prints for the saved checkpoint
        self.val_items = items_from_manifest(config.manifest, config.val_split) if self.dist.is_main else []
        self.val_protocol = Protocol.from_config(config, max_size=config.val_max_size)  # as evaluate --split val
        self._val_pairs: list[tuple[Pair, str]] | None = None
        self._bicubic_rows: list[ScoreRow] | None = None
        self.writer = None

    @property
    def generator(self) -> nn.Module:
        return self.state.generator

    @property
    def ema(self) -> nn.Module | None:
        return self.state.ema

    @property
    def discriminator(self) -> nn.Module | None:
        return self.state.discriminator

    # --- set-up per stage -------------------------------------------------------------------------------

    def _load_init_weights(self, path: str) -> None:
        """Start from a checkpoint of this architecture; a smaller plainrep is grown into this one (same function)."""
        source = load_model(path, cache=False)
        target = self.generator.state_dict()
        same_shapes = source.state_dict().keys() == target.keys() and all(
            value.shape == target[key].shape for key, value in source.state_dict().items())
        if not same_shapes and hasattr(self.generator, "grow_from"):
            try:
                self.generator.grow_from(source)
            except ValueError as e:
                raise ConfigError(f"cannot start from {path}: {e}") from e
            return
        self.generator.load_state_dict(source.state_dict(), strict=True)

    def _new_ema(self) -> nn.Module | None:
        if self.config.ema_decay is None:
            return None
        ema = copy.deepcopy(self.generator).eval()
        for param in ema.parameters():
            param.requires_grad_(False)
        return ema

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        decay = self.config.ema_decay
        # warm-up (as in BasicSR/timm): early steps follow the weights closely
        decay = min(decay, (1 + self.state.step) / (10 + self.state.step))
        for ema_param, param in zip(self.ema.parameters(), self.generator.parameters(), strict=True):
            ema_param.lerp_(param.detach(), 1 - decay)
        for ema_buf, buf in zip(self.ema.buffers(), self.generator.buffers(), strict=True):
            ema_buf.copy_(buf)

    def _steps_per_epoch(self) -> int:
        per_rank = math.ceil(len(self.train_set) / self.dist.world_size)
        return max(1, per_rank // self.config.batch_size)

    def _make_optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        cfg = self.config
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return cls(params, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)

    def _make_scheduler(self, optimizer: torch.optim.Optimizer, epochs: int):
        cfg = self.config
        total = epochs * self._steps_per_epoch()
        if cfg.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total),
                                                              eta_min=optimizer.defaults["lr"] * 0.01)
        if cfg.scheduler == "step":
            return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, total // 2), gamma=cfg.step_gamma)
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)

    def _fit_schedules(self, epochs: int) -> None:
        """Make restored schedules end at this stage's last step, also when a resume changed its epochs.

        Cosine annealing updates the rate recursively, so a new length takes over smoothly from the current
        rate and still reaches the floor exactly at the new end (an old length would climb back up after it).
        """
        total = max(1, epochs * self._steps_per_epoch())
        for scheduler in (self.state.sched_g, self.state.sched_d):
            if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
                scheduler.T_max = total
            elif isinstance(scheduler, torch.optim.lr_scheduler.StepLR):
                scheduler.step_size = max(1, total // 2)

    def _content_network_name(self) -> str:
        return self.config.content_network or CONTENT_NETWORK_FOR_ARCH[self.config.model]

    def _loss_weights(self) -> dict[str, float]:
        return dict(self.config.loss_weights or LOSS_WEIGHTS_FOR_ARCH[self.config.model])

    def _setup_stage(self, stage: str, epochs: int) -> None:
        """Fresh optimisers and schedules for ``stage``; the discriminator is built when a stage first needs it."""
        cfg = self.config
        state = self.state
        state.opt_g = state.sched_g = state.opt_d = state.sched_d = None
        if stage != "discriminator":  # the discriminator stage keeps the generator frozen
            state.opt_g = self._make_optimizer(self.generator.parameters(), cfg.lr)
            state.sched_g = self._make_scheduler(state.opt_g, epochs)
        if stage in ("gan", "discriminator"):
            if state.discriminator is None:
                state.discriminator = self._new_discriminator()
            if stage == "gan":
                self.gen_loss = GeneratorLoss(pixel=cfg.pixel_loss, content_net=self._build_content_net(),
                                              weights=self._loss_weights())
            state.opt_d = self._make_optimizer(state.discriminator.parameters(), cfg.lr_d)
            state.sched_d = self._make_scheduler(state.opt_d, epochs)

    def _new_discriminator(self) -> nn.Module:
        """The architecture's discriminator: fresh, or the weights of ``init_discriminator_from``."""
        cfg = self.config
        discriminator = build_discriminator(cfg.model, in_channels=cfg.in_channels).to(
            self.device, memory_format=self.memory_format)
        if cfg.init_discriminator_from:
            path = Path(cfg.init_discriminator_from)
            try:
                saved = torch.load(path, map_location=self.device, weights_only=True)
                discriminator.load_state_dict(saved.get("discriminator", saved) if isinstance(saved, dict) else saved)
            except (OSError, RuntimeError, KeyError, AttributeError) as exc:
                reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                raise ConfigError(f"cannot start the discriminator from {path}: {reason}") from exc
        if cfg.sync_bn and self.dist.enabled:
            discriminator = nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
        return discriminator

    def _build_content_net(self) -> nn.Module:
        """The gan stage's frozen feature network, loaded once per run."""
        if self.content_net is None:
            self.content_net = build_content_network(
                self._content_network_name(), weights=self.config.content_weights,
                allow_download=self.config.allow_download,
            ).to(self.device)
        return self.content_net

    def _check_content_weights(self) -> None:
        """Fail before hours of pretraining, not after, when the gan stage cannot get its feature network."""
        if any(stage == "gan" for stage, _ in self.config.stages):
            self._build_content_net()

    # --- checkpoints ------------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        """The run's :class:`TrainState` as saved: with the config and the seconds trained up to now."""
        return self.state.state_dict(config=self.config.to_dict(),
                                     elapsed=self.state.elapsed + self._since_start(),
                                     epoch_elapsed=self.state.epoch_elapsed + self._since_epoch())

    def _restore(self, saved: dict[str, Any]) -> None:
        """Continue from a saved :class:`TrainState`: its stage set up, then every weight and counter restored."""
        self.state.load_progress(saved)
        stage, epochs = self.config.stages[self.state.stage_index]
        self._setup_stage(stage, epochs)
        self.state.load_state_dict(saved)
        self._fit_schedules(epochs)

    def _save_generator(self, path: Path, metrics: dict[str, Any]) -> None:
        model = self.ema if self.ema is not None else self.generator
        meta = {
            "training": {"config": self.config.to_dict(), "epoch": self.state.epoch + 1, "step": self.state.step,
                         "stage": self.config.stages[self.state.stage_index][0], "manifest": self.config.manifest},
            "metrics": metrics,
        }
        if self.config.value_range is not None:
            meta["value_range"] = [float(v) for v in self.config.value_range]
            meta["raster_offset"] = float(self.config.raster_offset)
        if self.config.modality:
            meta["modality"] = self.config.modality
        save_model(model, path, meta)

    def _save_step_state(self) -> None:
        if self.dist.is_main:
            _save_state(self._state(), self.ckpt_dir / "last.pt")

    # --- the loop ---------------------------------------------------------------------------------------

    def run(self) -> Path:
        """Train every stage to the end (or ``max_steps``); return the run folder."""
        cfg = self.config
        if not self.resume and (self.run_dir / "metrics.csv").exists():
            raise ConfigError(f"{self.run_dir} already holds a run: continue it with --resume {self.run_dir}, "
                              "or choose another --out")
        if self.dist.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / "config.yaml")
        last = self.ckpt_dir / "last.pt"
        self._check_content_weights()
        if self.resume and last.exists():
            self._restore(torch.load(last, map_location=self.device, weights_only=True))
            self.console.print(f"resumed {self.run_dir} at epoch {self.state.epoch + 1}, step {self.state.step}")
        else:
            self._setup_stage(*cfg.stages[0])
        if self.dist.is_main and cfg.tensorboard:
            require("tensorboard", "tensorboard", "TensorBoard logging (off with tensorboard: false)")
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        self._start = time.perf_counter()
        try:
            while self.state.stage_index < len(cfg.stages):
                stage, epochs = cfg.stages[self.state.stage_index]
                while self.state.epoch_in_stage < epochs:
                    finished = self.train_one_epoch(stage)
                    if not finished:
                        return self.run_dir
                    self._end_epoch(stage)
                    if cfg.max_steps is not None and self.state.step >= cfg.max_steps:
                        return self.run_dir
                self.state.stage_index += 1
                self.state.epoch_in_stage = 0
                if self.state.stage_index < len(cfg.stages):
                    self._setup_stage(*cfg.stages[self.state.stage_index])
            return self.run_dir
        finally:
            self._finish()

    def _finish(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.dist.enabled:
            # every rank reports a digest of its weights: DDP keeps them identical, and this proves it
            networks = {"generator": self.generator, "discriminator": self.discriminator}
            digests = {f"{name}_digest": dist_utils.all_gather_floats(self.dist, float(sum(
                p.double().sum().item() * (i + 1) for i, p in enumerate(net.parameters()))))
                for name, net in networks.items() if net is not None}
            if self.dist.is_main:
                (self.run_dir / "ranks.json").write_text(json.dumps(digests))
        dist_utils.cleanup(self.dist)

    def _since_start(self) -> float:
        return time.perf_counter() - getattr(self, "_start", time.perf_counter())

    def _since_epoch(self) -> float:
        return time.perf_counter() - getattr(self, "_epoch_start", time.perf_counter())

    def _loader(self) -> DataLoader:
        cfg = self.config
        self.train_set.set_epoch(self.state.epoch)
        sampler = DistributedSampler(self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                     shuffle=True, seed=cfg.seed, drop_last=True)
        sampler.set_epoch(self.state.epoch)
        indices = list(sampler)
        usable = (len(indices) // cfg.batch_size) * cfg.batch_size
        indices = indices[self.state.batches_done * cfg.batch_size:usable]
        return DataLoader(self.train_set, batch_size=cfg.batch_size, sampler=_ResumeSampler(indices),
                          num_workers=cfg.num_workers, drop_last=True,
                          pin_memory=self.device.type == "cuda", persistent_workers=False)

    def train_one_epoch(self, stage: str) -> bool:
        """Train the rest of the current epoch of ``stage``; False if ``max_steps`` stopped it early."""
        cfg = self.config
        state = self.state
        steps_per_epoch = self._steps_per_epoch()
        step = self._stage_step(stage)
        self._epoch_start = time.perf_counter()
        progress = _progress(self.dist.is_main)
        task = progress.add_task(f"epoch {state.epoch + 1} {stage}", total=steps_per_epoch,
                                 completed=state.batches_done)
        seen, tick = 0, time.perf_counter()
        with progress:
            for batch in self._loader():
                # (lr, hr), or (lr, hr, lr_absent, hr_absent) when the signal-preservation loss is on
                lr_img, hr_img, *absent = (t.to(self.device, non_blocking=True, memory_format=self.memory_format)
                                           for t in batch)
                try:
                    terms = step(lr_img, hr_img, *absent)
                except NonFiniteLoss as exc:
                    raise TrainingError(f"{exc} at step {state.step + 1}; stopped, the last good checkpoint in "
                                        f"{self.ckpt_dir} is kept") from None
                if stage != "discriminator":  # a frozen generator leaves its average where it is
                    self._update_ema()
                state.step += 1
                state.batches_done += 1
                state.add_terms(terms)
                seen += lr_img.shape[0] * self.dist.world_size
                rate = seen / max(1e-9, time.perf_counter() - tick)
                headline = terms.get("loss_g", terms.get("loss_d", math.nan))
                progress.update(task, advance=1, description=(
                    f"epoch {state.epoch + 1} {stage} loss {headline:.4g} {rate:.1f} img/s"))
                if state.step % cfg.log_every_steps == 0:
                    self.log("train", terms, line=f"step {state.step} epoch {state.epoch + 1} "
                             + " ".join(f"{k}={v:.5g}" for k, v in terms.items())
                             + f" {rate:.1f} img/s lr={self._rate():.3g}")
                if state.step % cfg.save_every_steps == 0:
                    self._save_step_state()
                if cfg.max_steps is not None and state.step >= cfg.max_steps:
                    self._save_step_state()
                    return state.batches_done >= steps_per_epoch
        return True

    def _stage_step(self, stage: str) -> Callable[..., dict[str, float]]:
        """One step of ``stage`` (:mod:`medsr.train.steps`) on this run's networks, wrapped in DDP under torchrun."""
        state = self.state
        generator, discriminator = state.generator, state.discriminator
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            if stage != "discriminator":  # a frozen generator has no gradients to share
                generator = DDP(state.generator, device_ids=ids)
            if discriminator is not None:
                discriminator = DDP(discriminator, device_ids=ids)
        if stage == "discriminator":
            state.generator.eval()  # frozen: its normalisation statistics stay as they are
            discriminator.train()
            # a frozen generator: signal-absent twins, when the batches carry them, teach it nothing
            return lambda lr, hr, *_absent: discriminator_step(generator, discriminator, lr, hr, opt_d=state.opt_d,
                                                               sched_d=state.sched_d, settings=self.steps)
        state.generator.train()
        if stage == "pretrain":
            return lambda lr, hr, *absent: pretrain_step(generator, lr, hr, *absent, opt_g=state.opt_g,
                                                         sched_g=state.sched_g, settings=self.steps)
        discriminator.train()
        return lambda lr, hr, *absent: gan_step(generator, discriminator, lr, hr, *absent, gen_loss=self.gen_loss,
                                                opt_g=state.opt_g, sched_g=state.sched_g, opt_d=state.opt_d,
                                                sched_d=state.sched_d, settings=self.steps)

    def _rate(self) -> float:
        """The learning rate of the network this stage trains (the generator's, or the discriminator's)."""
        return (self.state.opt_g or self.state.opt_d).param_groups[0]["lr"]

    def log(self, group: str, scalars: dict[str, Any], *, line: str | None = None) -> None:
        """The one logging helper: ``line`` to the console, numeric ``scalars`` to TensorBoard as ``group/key``
        at the current step (main process only)."""
        if not self.dist.is_main:
            return
        if line is not None:
            self.console.print(line, highlight=False)
        if self.writer is not None:
            for key, value in scalars.items():
                if isinstance(value, float | int) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{group}/{key}", value, self.state.step)

    # --- end of epoch -----------------------------------------------------------------------------------

    def _end_epoch(self, stage: str) -> None:
        """Validate, write the epoch's metrics row and checkpoints, then move the state to the next epoch."""
        cfg = self.config
        state = self.state
        seconds = state.epoch_elapsed + self._since_epoch()
        if self.dist.is_main:
            val = self.validate()
            row = {"epoch": state.epoch + 1, "stage": stage, "step": state.step, **state.means(), **val,
                   "lr": self._rate(), "seconds": round(seconds, 2),
                   "minutes_total": round((state.elapsed + self._since_start()) / 60, 3)}
            self._append_metrics(row)
            self._append_source_metrics(row)
            name = f"netG_{cfg.scale}x_epoch{state.epoch + 1}.safetensors"
            self._save_generator(self.ckpt_dir / name, val)
            # without a validation split, "best" is simply the latest epoch
            if not val or val["val_psnr"] > state.best_psnr:
                state.best_psnr = val.get("val_psnr", -math.inf)
                self._save_generator(self.ckpt_dir / "best.safetensors", val)
            if state.discriminator is not None:  # what a later gan run starts from (init_discriminator_from)
                _save_state({"discriminator": state.discriminator.state_dict()}, self.ckpt_dir / "discriminator.pt")
            nan = float("nan")
            self.log("epoch", {k: v for k, v in row.items() if k not in ("epoch", "step")}, line=(
                f"epoch {state.epoch + 1} ({stage}) step {state.step}: val PSNR {val.get('val_psnr', nan):.3f} "
                f"SSIM {val.get('val_ssim', nan):.4f} | bicubic {val.get('bicubic_psnr', nan):.3f} "
                f"/ {val.get('bicubic_ssim', nan):.4f} | {seconds:.0f} s"
                + (f" | D(HR) {row['d_real']:.3f} D(SR) {row['d_fake']:.3f}" if stage == "discriminator" else "")
                + "".join(f" | {source} {val[f'val_psnr/{source}']:.3f}" for source in _sources(val))))
        state.next_epoch()
        self._epoch_start = time.perf_counter()
        if self.dist.is_main:
            saved = self._state()
            _save_state(saved, self.ckpt_dir / f"state_epoch{state.epoch}.pt")
            _save_state(saved, self.ckpt_dir / "last.pt")
        dist_utils.barrier(self.dist)

    def _validation_pairs(self) -> list[tuple[Pair, str]]:
        """The validation (HR, LR) pairs with their sources, made once: the protocol's LR is fixed per image."""
        if self._val_pairs is None:
            failures: list[tuple[str, str]] = []
            pairs = []
            for item in self.val_items:
                for image in read_images([item.path], failures):
                    pairs.append((self.val_protocol.pair(image, item.key), item.source))
            for path, reason in failures:
                self.console.print(f"validation skips {path}: {reason}", highlight=False)
            self._val_pairs = pairs
        return self._val_pairs

    def validate(self) -> dict[str, float]:
        """PSNR/SSIM of the (EMA) generator and of bicubic on the validation images (:class:`Protocol`).

        Means over sources when the manifest names them (every hospital weighs alike, as in the mean row of
        ``medsr evaluate``), over images otherwise; with sources, each one's figures too (``val_psnr/SOURCE``...),
        so that a run shows which hospital a change helps or hurts.
        """
        pairs = self._validation_pairs()
        if not pairs:
            return {}
        model = self.ema if self.ema is not None else self.generator
        methods = {"model": lambda lr, size: upscale_array(model, lr)}
        if self._bicubic_rows is None:
            self._bicubic_rows = [
                dataclasses.replace(self.val_protocol.run(pair, self.val_protocol.baselines(["bicubic"], pair))[0],
                                    source=source) for pair, source in pairs]
        bicubic_psnr, bicubic_ssim = headline(self._bicubic_rows, "bicubic")
        rows, samples = [], []
        for index, (pair, source) in enumerate(pairs):
            outputs: dict[str, np.ndarray] = {}
            keep = index < self.config.sample_images
            methods_here = {**methods, **self.val_protocol.baselines(["bicubic"], pair)} if keep else methods
            found = self.val_protocol.run(pair, methods_here, outputs.__setitem__ if keep else None)
            rows.append(dataclasses.replace(found[0], source=source))
            if keep:
                panels = [outputs["bicubic"], outputs["model"], pair.hr]
                samples.append(torch.from_numpy(np.concatenate(panels, axis=1).transpose(2, 0, 1)))
        psnr, ssim = headline(rows, "model")
        result = {"val_psnr": psnr, "val_ssim": ssim, "bicubic_psnr": bicubic_psnr, "bicubic_ssim": bicubic_ssim,
                  **per_source_scores(rows, self._bicubic_rows)}
        if self.writer is not None:
            for i, image in enumerate(samples):
                self.writer.add_image(f"val/bicubic_sr_hr_{i}", image.clamp(0, 1), self.state.step)
        return result

    def _append_source_metrics(self, row: dict[str, Any]) -> None:
        """A row per source and epoch in ``val_sources.csv`` (nothing when the validation images carry no source)."""
        rows = [{"epoch": row["epoch"], "step": row["step"], "source": source,
                 **{key: row[f"{key}/{source}"] for key in SOURCE_METRIC_COLUMNS[3:]}} for source in _sources(row)]
        if rows:
            _append_csv(self.run_dir / "val_sources.csv", SOURCE_METRIC_COLUMNS, rows)

    def _append_metrics(self, row: dict[str, Any]) -> None:
        _append_csv(self.run_dir / "metrics.csv", METRIC_COLUMNS, [row])


def _append_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` (only ``columns``, floats to 6 significant digits) to a CSV, with a header if it is new."""
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows({key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()}
                         for row in rows)


def _sources(val: dict[str, Any]) -> list[str]:
    """The sources whose figures :func:`per_source_scores` put in ``val`` (its ``val_psnr/SOURCE`` keys)."""
    return [key.split("/", 1)[1] for key in val if key.startswith("val_psnr/")]


def per_source_scores(model_rows: list[ScoreRow], bicubic_rows: list[ScoreRow]) -> dict[str, float]:
    """``val_psnr/S``, ``val_ssim/S``, ``bicubic_psnr/S``, ``bicubic_ssim/S`` per source S; empty without sources."""
    out: dict[str, float] = {}
    for source, summary in summarize_sources([*model_rows, *bicubic_rows]).items():
        if source == MEAN_OF_SOURCES:
            continue
        for found in summary:
            prefix = "val" if found.method == "model" else found.method
            out[f"{prefix}_psnr/{source}"] = found.psnr
            out[f"{prefix}_ssim/{source}"] = found.ssim
    return out


def _draw_counts(rows: list[ManifestRow], config: TrainConfig) -> list[int] | None:
    """How often each training image is drawn per epoch: balanced by source, times any ``oversample`` factor."""
    factors = config.oversample_factors()
    if not config.balance_sources and not factors:
        return None
    counts = source_repeats([row.source for row in rows]) if config.balance_sources else [1] * len(rows)
    for pattern, factor in factors.items():
        matched = [index for index, row in enumerate(rows) if fnmatch.fnmatch(str(row.path), pattern)]
        if not matched:  # a typo would otherwise train as if the setting were not there
            raise ConfigError(f"oversample: {pattern!r} matches none of the {len(rows)} training images' paths")
        for index in matched:
            counts[index] *= factor
    return counts


def _console(enabled: bool):
    return Console(quiet=not enabled)


def _progress(enabled: bool):
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=True)


def train(config: TrainConfig | None = None, *, resume: str | Path | None = None, **overrides: Any) -> Path:
    """Train a generator; the Python face of ``medsr train``.

    ``train(TrainConfig(...))`` starts a run; ``train(resume="runs/x")`` continues one from its
    ``checkpoints/last.pt`` with the config saved in the run folder (``overrides`` may extend epochs).
    """
    if resume is not None:
        run_dir = Path(resume)
        saved = run_dir / "config.yaml"
        if not saved.exists():
            raise ConfigError(f"cannot resume {run_dir}: no config.yaml there (is it a medsr run folder?)")
        fixed = sorted(key for key, value in overrides.items() if value is not None and key not in RESUMABLE)
        if fixed:
            raise ConfigError(f"a resumed run keeps its settings; only {', '.join(RESUMABLE)} may change "
                              f"(got {', '.join(fixed)})")
        config = TrainConfig.load(saved, **overrides)
        config.out = str(run_dir)
        return Trainer(config, resume=True).run()
    if config is None:
        config = TrainConfig.load(None, **overrides)
    elif overrides:
        config = TrainConfig.from_dict({**config.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})
    return Trainer(config).run()
