"""Training images per second of the generators, per stage, with and without channels-last memory layout.

Usage: ``python bench/train_throughput.py [--threads 1] [--warmup 2] [--steps 5] [--archs srgan,swift-srgan]
[--precisions fp32,bf16]``

Each configuration runs ``medsr train``'s own step (:mod:`medsr.train.steps`) on random batches (batch 16, 96x96 HR,
x4, one channel by default): ``pretrain`` = generator forward + pixel MSE + Adam step; ``gan`` = discriminator step
on real and generated patches, then generator step with the arch's published loss terms and weights
(swift-srgan: pixel + content + adversarial + TV; srgan: content + adversarial). The content network
(MobileNetV2 features for swift-srgan, VGG19 to relu5_4 for srgan) gets random weights written to a temporary
file and loaded through ``medsr.losses.build_content_network``, as a local ``--content-weights`` file would
be: its speed does not depend on the weights' values. ``swift-srgan+skip`` is swift-srgan with the bicubic
global skip; ``plainrep`` is medsr's CPU-native network (it always has the skip) in its training form.
``bf16`` runs the forward passes under CPU bfloat16 autocast, as ``medsr train --amp`` does. A few warm-up
steps run before the timed ones.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import _bench
import torch
from torch import nn

from medsr.losses import CONTENT_NETWORK_FOR_ARCH, LOSS_WEIGHTS_FOR_ARCH, GeneratorLoss, build_content_network
from medsr.models import build_discriminator, build_generator
from medsr.train.steps import StepSettings, gan_step, pretrain_step


def random_content_weights(name: str, folder: Path) -> Path:
    """A randomly initialised torchvision ``name`` feature extractor's state dict, saved in ``folder``."""
    from torchvision import models

    torch.manual_seed(0)
    network = models.mobilenet_v2(weights=None) if name == "mobilenet_v2" else models.vgg19(weights=None)
    path = folder / f"{name}-random.pth"
    torch.save(network.features.state_dict(), path)
    return path


def _constant(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


class Step:
    """The trainer's step of a stage (:mod:`medsr.train.steps`), with its models and optimisers built once."""

    def __init__(self, arch: str, stage: str, *, global_skip: bool, channels: int, scale: int,
                 memory_format: torch.memory_format, device: torch.device, content_file: Path | None,
                 bf16: bool = False) -> None:
        self.stage = stage
        self.settings = StepSettings("mse", None, bf16, device.type)
        self.generator = build_generator(arch, in_channels=channels, scale=scale, global_skip=global_skip)
        self.generator.to(device, memory_format=memory_format).train()
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=1e-4, betas=(0.9, 0.999))
        self.sched_g = _constant(self.opt_g)
        if stage == "gan":
            self.discriminator = build_discriminator(arch, in_channels=channels)
            self.discriminator.to(device, memory_format=memory_format).train()
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=1e-4, betas=(0.9, 0.999))
            self.sched_d = _constant(self.opt_d)
            content = build_content_network(CONTENT_NETWORK_FOR_ARCH[arch], weights=content_file).to(device)
            weights = {**LOSS_WEIGHTS_FOR_ARCH[arch]}
            self.loss = GeneratorLoss("mse", content_net=content, weights=weights).to(device)

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor) -> None:
        if self.stage == "pretrain":
            pretrain_step(self.generator, lr, hr, opt_g=self.opt_g, sched_g=self.sched_g, settings=self.settings)
            return
        gan_step(self.generator, self.discriminator, lr, hr, gen_loss=self.loss, opt_g=self.opt_g,
                 sched_g=self.sched_g, opt_d=self.opt_d, sched_d=self.sched_d, settings=self.settings)


def measure(step: nn.Module | Step, lr: torch.Tensor, hr: torch.Tensor, warmup: int, steps: int,
            device: torch.device) -> float:
    """Seconds per step over ``steps`` steps after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step(lr, hr)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(lr, hr)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("--archs", default="srgan,swift-srgan,swift-srgan+skip,plainrep",
                        help="Comma-separated; '+skip' adds the bicubic global skip.")
    parser.add_argument("--stages", default="pretrain,gan")
    parser.add_argument("--channels-last", default="off,on", help="Memory layouts to try: off, on or both.")
    parser.add_argument("--precisions", default="fp32", help="fp32, bf16 or both (CPU bf16 autocast).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=96, help="HR patch side.")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--channels", type=int, default=1, help="1 (grayscale X-ray) or 3.")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N.")
    args = _bench.parse(parser)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    hr = torch.rand(args.batch_size, args.channels, args.patch_size, args.patch_size, device=device)
    lr = nn.functional.avg_pool2d(hr, args.scale)
    print(f"batch {args.batch_size}, HR {args.patch_size}x{args.patch_size}, x{args.scale}, "
          f"{args.channels} channel(s), {args.device}, torch threads {torch.get_num_threads()}, "
          f"{args.warmup} warm-up + {args.steps} timed steps")
    print(f"{'arch':<18} {'stage':<9} {'channels_last':<13} {'precision':<9} {'s/step':>8} {'images/s':>9}")
    layouts = {"off": torch.contiguous_format, "on": torch.channels_last}
    with tempfile.TemporaryDirectory() as tmp:
        content_files: dict[str, Path] = {}
        for name in args.archs.split(","):
            arch, skip = name.removesuffix("+skip"), name.endswith("+skip") or name == "plainrep"
            for stage in args.stages.split(","):
                content_file = None
                if stage == "gan":
                    network = CONTENT_NETWORK_FOR_ARCH[arch]
                    if network not in content_files:
                        content_files[network] = random_content_weights(network, Path(tmp))
                    content_file = content_files[network]
                for layout in args.channels_last.split(","):
                    memory_format = layouts[layout]
                    for precision in args.precisions.split(","):
                        step = Step(arch, stage, global_skip=skip, channels=args.channels, scale=args.scale,
                                    memory_format=memory_format, device=device, content_file=content_file,
                                    bf16=precision == "bf16")
                        batch = (lr.contiguous(memory_format=memory_format),
                                 hr.contiguous(memory_format=memory_format))
                        seconds = measure(step, *batch, args.warmup, args.steps, device)
                        rate = args.batch_size / seconds
                        print(f"{name:<18} {stage:<9} {layout:<13} {precision:<9} {seconds:8.3f} {rate:9.1f}",
                              flush=True)


if __name__ == "__main__":
    main()
