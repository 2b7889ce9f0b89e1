"""Small training parts: optimisers, learning-rate schedules, EMA, the image pool."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from gancr._torch_compat import foreach_add_, foreach_lerp_, foreach_mul_, foreach_sub

if TYPE_CHECKING:  # pragma: no cover
    from gancr.trio import Losses, Trio

__all__ = ["make_optimizer", "make_optimizers", "lr_factor", "LearningRates", "EMA", "ImagePool"]


def make_optimizer(spec: Any, params: Iterable[Tensor], lr: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam or AdamW from ``training.optimizer``; fused on CUDA and the CPU by default."""
    params = [p for p in params if p.requires_grad]
    cls = torch.optim.AdamW if spec.name == "adamw" else torch.optim.Adam
    impl = spec.implementation
    if impl == "auto":  # fused kernels exist for CUDA and (since torch 2.4) the CPU
        impl = "fused" if device.type in ("cuda", "cpu") else "foreach"
    kwargs: dict[str, Any] = {"lr": lr, "betas": tuple(spec.betas), "weight_decay": spec.weight_decay}
    if impl == "fused":
        kwargs["fused"] = True
    elif impl == "foreach":
        kwargs["foreach"] = True
    else:
        kwargs["foreach"] = False
    if not params:  # an optimiser needs a parameter; a placeholder keeps the code uniform
        params = [nn.Parameter(torch.zeros((), device=device), requires_grad=True)]
    return cls(params, **kwargs)


def make_optimizers(trio: Trio, losses: Losses, spec: Any, device: torch.device) -> dict[str, torch.optim.Optimizer]:
    """One optimiser per network, as ``training.optimizer`` says: ``generator`` (with the
    trainable parameters of the losses and the balancer), ``content_net`` (without an encoder
    it shares with the generator: that one is the generator's), ``discriminator``."""
    g_params = list(trio.generator.parameters())
    seen = {id(p) for p in g_params}
    loss_params = [p for p in losses.modules().parameters() if id(p) not in seen]
    c_params = [p for p in trio.content_net.parameters() if id(p) not in seen]
    lr = spec.lr
    return {
        "generator": make_optimizer(spec, g_params + loss_params, lr.generator, device),
        "content_net": make_optimizer(spec, c_params, lr.content_net, device),
        "discriminator": make_optimizer(spec, trio.discriminator.parameters(), lr.discriminator, device),
    }


@dataclass(frozen=True)
class LearningRates:
    """Each optimiser's learning rate at a step: its base rate times the schedule's factor."""

    base: dict[str, float]
    schedule: Any  # the spec's training.schedule
    total_steps: int

    @classmethod
    def from_spec(cls, training: Any) -> LearningRates:
        """The rates of a spec's ``training`` section."""
        lr = training.optimizer.lr
        base = {"generator": lr.generator, "content_net": lr.content_net, "discriminator": lr.discriminator}
        return cls(base, training.schedule, training.total_steps)

    def at(self, step: int) -> dict[str, float]:
        """The rates at ``step`` (0-based), by optimiser name."""
        factor = lr_factor(self.schedule, step, self.total_steps)
        return {name: lr * factor for name, lr in self.base.items()}


def lr_factor(schedule: Any, step: int, total: int) -> float:
    """The learning-rate multiplier at ``step`` (0-based) of a ``total``-step run."""
    if schedule.warmup_steps and step < schedule.warmup_steps:
        return (step + 1) / schedule.warmup_steps
    final = schedule.final_factor
    if schedule.name == "constant" or total <= 1:
        return 1.0
    if schedule.name == "linear":
        start = int(schedule.decay_start * total)
        if step < start:
            return 1.0
        frac = (step - start) / max(1, total - start)
        return 1.0 - (1.0 - final) * frac
    # cosine from 1 to final over the steps after warm-up
    begin = schedule.warmup_steps
    frac = (step - begin) / max(1, total - begin)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))


class EMA(nn.Module):
    """An exponential moving average of a module's parameters (buffers are copied).

    ``ema = decay * ema + (1 - decay) * current`` after each update.
    """

    def __init__(self, module: nn.Module, decay: float):
        super().__init__()
        self.module = copy.deepcopy(module).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, module: nn.Module, decay: float | None = None, skip: Tensor | None = None) -> None:
        """Move the average towards ``module``; ``skip`` (a 0-dim bool tensor) leaves it as is."""
        d = self.decay if decay is None else decay
        ema_params = list(self.module.parameters())
        params = list(module.parameters())  # no detach needed: no autograd in here
        if skip is None:
            foreach_lerp_(ema_params, params, 1.0 - d)
            for eb, b in zip(self.module.buffers(), module.buffers()):
                eb.copy_(b)
            return
        if ema_params:
            weight = torch.where(skip, 0.0, 1.0 - d).to(ema_params[0].dtype)  # (1 - d), or 0 to skip
            steps = foreach_sub(params, ema_params)
            foreach_mul_(steps, weight)
            foreach_add_(ema_params, steps)
        for eb, b in zip(self.module.buffers(), module.buffers()):
            torch.where(skip, eb, b, out=eb)

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)


class ImagePool:
    """A pool of past fakes (Shrivastava et al. 2017; CycleGAN), shown to the discriminator.

    For each new fake: while the pool fills, store and return it; afterwards, with
    probability 1/2 return a stored fake (replacing it with the new one), else the new one.
    Draws use torch's random generator, so resuming restores the same choices.
    """

    def __init__(self, size: int):
        self.size = size
        self.images: list[Tensor] = []

    def query(self, fakes: Tensor) -> Tensor:
        if self.size == 0:
            return fakes
        out = []
        for image in fakes.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) < 0.5:  # draws on the host: no device sync
                i = int(torch.randint(0, self.size, ()))
                out.append(self.images[i])  # torch.cat copies it; the slot gets a new tensor
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        return {"images": torch.cat(self.images, 0).cpu() if self.images else torch.zeros(0)}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        images = state.get("images")
        self.images = [] if images is None or images.numel() == 0 else [i.unsqueeze(0).to(device) for i in images]

