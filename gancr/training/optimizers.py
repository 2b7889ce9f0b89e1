"""The optimisers of a run and their learning rates: Adam or AdamW per network, the schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from gancr.trio import Losses, Trio

__all__ = ["make_optimizer", "make_optimizers", "lr_factor", "LearningRates"]


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
