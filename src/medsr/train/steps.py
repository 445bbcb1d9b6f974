"""One optimisation step of each training stage, as plain functions of the networks, optimisers and a batch.

``medsr train`` runs these, and so does ``bench/train_throughput.py``: a speed measured there is the speed of
the trainer's own step. Each returns its loss terms as floats; a loss that is not finite raises
:class:`NonFiniteLoss` before any weight is updated with it.

- :func:`pretrain_step`: the generator with the pixel loss alone (SRResNet / Swift-SRResNet);
- :func:`discriminator_step`: the discriminator alone, real HR against the output of a frozen generator (the
  stage that ``jason-zl190/sisr_medical`` runs before adversarial fine-tuning, so that the GAN stage starts
  from a discriminator that already tells SR from HR);
- :func:`gan_step`: a discriminator step on real and generated patches, then a generator step with the
  content, adversarial and total-variation terms (Swift-SRGAN / SRGAN).

Given the signal-absent twins of a batch with faint discs inserted (:mod:`medsr.data.signals`), the generator
steps add ``settings.signal_weight`` x :func:`~medsr.losses.signal_preservation_loss`: its response to the
discs held to the discs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from medsr.losses import discriminator_loss, pixel_loss, signal_preservation_loss


class NonFiniteLoss(Exception):
    """A loss term became NaN or infinite: ``term`` names it, ``value`` is what it became."""

    def __init__(self, term: str, value: float) -> None:
        super().__init__(f"loss term '{term}' became {value}")
        self.term, self.value = term, value


@dataclass(frozen=True)
class StepSettings:
    """How every step runs: the pixel loss, gradient clipping, bfloat16 autocast on ``device_type``, and the
    weight of the signal-preservation term (for batches that carry signal-absent twins) and its blur."""

    pixel_loss: str = "mse"
    grad_clip: float | None = None
    amp: bool = False
    device_type: str = "cpu"
    signal_weight: float = 0.0
    signal_blur: float = 0.0

    def autocast(self) -> Any:
        """``amp``: bfloat16 autocast on CUDA or the CPU (fp32's range, so no loss scaling is needed).

        Weights, optimiser state, losses and the bicubic skip stay fp32; convolutions run in bf16.
        """
        enabled = self.amp and self.device_type in ("cuda", "cpu")
        return torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=enabled)


def check_finite(terms: dict[str, torch.Tensor]) -> None:
    """Raise :class:`NonFiniteLoss` naming the first term that is not finite."""
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise NonFiniteLoss(name, value.item())


def update(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler: Any, params: Iterable[nn.Parameter],
           settings: StepSettings) -> None:
    """Backward, clip (when set), optimiser step, scheduler step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if settings.grad_clip:
        torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
    optimizer.step()
    scheduler.step()


def pretrain_step(generator: nn.Module, lr_img: torch.Tensor, hr_img: torch.Tensor, *absent: torch.Tensor,
                  opt_g: torch.optim.Optimizer, sched_g: Any, settings: StepSettings) -> dict[str, float]:
    """The generator trained with the pixel loss alone; or, given the signal-absent twins ``absent`` =
    ``(lr_absent, hr_absent)`` of a batch with faint signals inserted (:mod:`medsr.data.signals`), with the
    pixel loss on both halves plus ``settings.signal_weight`` x :func:`~medsr.losses.signal_preservation_loss`."""
    if not absent:
        with settings.autocast():
            sr = generator(lr_img)
        loss = pixel_loss(sr.float(), hr_img, settings.pixel_loss)
        check_finite({"pixel": loss})
        update(loss, opt_g, sched_g, generator.parameters(), settings)
        value = loss.item()
        return {"loss_g": value, "loss_pixel": value}
    lr_absent, hr_absent = absent
    with settings.autocast():
        sr_present, sr_absent = generator(torch.cat([lr_img, lr_absent])).float().chunk(2)
    pixel = pixel_loss(torch.cat([sr_present, sr_absent]), torch.cat([hr_img, hr_absent]), settings.pixel_loss)
    signal = signal_preservation_loss(sr_present, sr_absent, hr_img, hr_absent, blur=settings.signal_blur)
    loss = pixel + settings.signal_weight * signal
    check_finite({"pixel": pixel, "signal": signal})
    update(loss, opt_g, sched_g, generator.parameters(), settings)
    return {"loss_g": loss.item(), "loss_pixel": pixel.item(), "loss_signal": signal.item()}


def discriminator_step(generator: nn.Module, discriminator: nn.Module, lr_img: torch.Tensor, hr_img: torch.Tensor,
                       *, opt_d: torch.optim.Optimizer, sched_d: Any, settings: StepSettings) -> dict[str, float]:
    """The discriminator trained against a frozen generator (called in eval mode; no gradient reaches it)."""
    with torch.no_grad(), settings.autocast():
        sr = generator(lr_img).float()
    with settings.autocast():
        real_logits = discriminator(hr_img).float()
        fake_logits = discriminator(sr).float()
    loss_d = discriminator_loss(real_logits, fake_logits)
    check_finite({"discriminator": loss_d})
    update(loss_d, opt_d, sched_d, discriminator.parameters(), settings)
    return {"loss_d": loss_d.item(), "d_real": torch.sigmoid(real_logits).mean().item(),
            "d_fake": torch.sigmoid(fake_logits).mean().item()}


def gan_step(generator: nn.Module, discriminator: nn.Module, lr_img: torch.Tensor, hr_img: torch.Tensor,
             *absent: torch.Tensor, gen_loss: nn.Module, opt_g: torch.optim.Optimizer, sched_g: Any,
             opt_d: torch.optim.Optimizer, sched_d: Any, settings: StepSettings) -> dict[str, float]:
    """A discriminator step on real HR and generated patches, then a generator step with every loss term.

    With the signal-absent twins ``absent`` = ``(lr_absent, hr_absent)``, both halves are real and generated
    patches alike, and the generator's loss adds the signal-preservation term (as :func:`pretrain_step`)."""
    if absent:
        lr_img, hr_present = torch.cat([lr_img, absent[0]]), hr_img
        hr_img = torch.cat([hr_img, absent[1]])
    with settings.autocast():
        sr = generator(lr_img).float()
        # discriminator: real HR vs the generator's output, which it must not push gradients into
        real_logits = discriminator(hr_img).float()
        fake_logits = discriminator(sr.detach()).float()
    loss_d = discriminator_loss(real_logits, fake_logits)
    check_finite({"discriminator": loss_d})
    update(loss_d, opt_d, sched_d, discriminator.parameters(), settings)
    # generator: every term keeps its graph back to the generator
    with settings.autocast():
        gen_logits = discriminator(sr).float()
    total, terms = gen_loss(sr, hr_img, gen_logits)
    if absent:
        sr_present, sr_absent = sr.chunk(2)
        terms["signal"] = signal_preservation_loss(sr_present, sr_absent, hr_present, absent[1],
                                                   blur=settings.signal_blur)
        total = total + settings.signal_weight * terms["signal"]
    check_finite({"total": total, **terms})
    update(total, opt_g, sched_g, generator.parameters(), settings)
    out = {"loss_g": total.item(), "loss_d": loss_d.item(),
           "d_real": torch.sigmoid(real_logits).mean().item(),
           "d_fake": torch.sigmoid(fake_logits).mean().item()}
    out.update({f"loss_{name}": value.item() for name, value in terms.items()})
    return out
