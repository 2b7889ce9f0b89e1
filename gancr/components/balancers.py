"""Loss balancers: how a joint stage weighs content against style.

The paper's named weakness is that the two tasks' updates can be unbalanced and style can
overrun content; each balancer is one answer, chosen in the spec. Every balancer returns
the weights it used, which the trainer logs at every step.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from gancr.components.base import Balancer, weighted
from gancr.registry import ComponentParams, Registry

__all__ = ["FixedBalancer", "UncertaintyBalancer", "GradNormBalancer", "ConstraintBalancer", "register"]


class FixedParams(ComponentParams):
    w_c: float | None = Field(None, ge=0, description="content weight (default: the stage's w_c)")
    w_g: float | None = Field(None, ge=0, description="style weight (default: the stage's w_g)")


class FixedBalancer(Balancer):
    """``L = w_c * L_content + w_g * L_style`` with fixed weights (the stage's, unless set here)."""

    def __init__(self, w_c: float | None = None, w_g: float | None = None):
        super().__init__()
        self.w_c, self.w_g = w_c, w_g

    def combine(self, content: Tensor, style: Tensor, *, w_c: float, w_g: float,
                last_layer: Tensor | None = None, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        wc = w_c if self.w_c is None else self.w_c
        wg = w_g if self.w_g is None else self.w_g
        return weighted(wc, content) + weighted(wg, style), {"w_c": float(wc), "w_g": float(wg)}


class UncertaintyParams(ComponentParams):
    init_log_var: float = Field(0.0, description="initial log-variance s of both tasks")


class UncertaintyBalancer(Balancer):
    """Learned task uncertainty (Kendall et al. 2018).

    ``L = exp(-s_c) w_c L_c + exp(-s_g) w_g L_g + s_c + s_g`` with learned log-variances
    ``s_c, s_g`` (optimised with the generator): a noisier task gets a smaller weight.
    Logged weights are the effective ones, ``w * exp(-s)``.
    """

    def __init__(self, init_log_var: float = 0.0):
        super().__init__()
        self.log_var = nn.Parameter(torch.full((2,), float(init_log_var)))

    def combine(self, content: Tensor, style: Tensor, *, w_c: float, w_g: float,
                last_layer: Tensor | None = None, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        s_c, s_g = self.log_var[0], self.log_var[1]
        total = torch.exp(-s_c) * w_c * content + torch.exp(-s_g) * w_g * style + s_c + s_g
        weights = (torch.exp(-self.log_var.detach()) * torch.tensor([w_c, w_g], device=self.log_var.device)).tolist()
        return total, {"w_c": weights[0], "w_g": weights[1], "log_var_c": float(s_c.detach()), "log_var_g": float(s_g.detach())}


class GradNormParams(ComponentParams):
    momentum: float = Field(0.9, ge=0, lt=1, description="smoothing of the measured gradient norms")
    every: int = Field(1, ge=1, description="measure the gradient norms every N steps")


class GradNormBalancer(Balancer):
    """Equalise the gradient norms of the content and style losses at the generator's last layer.

    With ``g_c = ||d(w_c L_c)/dW||`` and ``g_g = ||d(w_g L_g)/dW||`` (smoothed), the weights
    become ``w_c' = w_c * m / g_c`` and ``w_g' = w_g * m / g_g``, where ``m`` is their mean
    norm, so both tasks push the last layer equally hard (in the spirit of GradNorm,
    Chen et al. 2018).
    """

    def __init__(self, momentum: float = 0.9, every: int = 1):
        super().__init__()
        self.momentum, self.every = momentum, every
        self.register_buffer("norms", torch.zeros(2))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def combine(self, content: Tensor, style: Tensor, *, w_c: float, w_g: float,
                last_layer: Tensor | None = None, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        if last_layer is None:
            raise ValueError("balancer 'gradnorm' needs the generator's last layer (its decoder's last_layer)")
        if step % self.every == 0 or not bool(self.initialised):
            measured = []
            for loss, w in ((content, w_c), (style, w_g)):
                if not loss.requires_grad or w == 0:
                    measured.append(torch.zeros((), device=self.norms.device))
                    continue
                (g,) = torch.autograd.grad(w * loss, last_layer, retain_graph=True, allow_unused=True)
                measured.append(torch.zeros((), device=self.norms.device) if g is None else g.detach().float().norm())
            new = torch.stack(measured).to(self.norms)
            if bool(self.initialised):
                self.norms.mul_(self.momentum).add_((1 - self.momentum) * new)
            else:
                self.norms.copy_(new)
                self.initialised.fill_(True)
        g_c, g_g = self.norms.clamp_min(1e-12).tolist()
        mean = (g_c + g_g) / 2
        wc, wg = w_c * mean / g_c, w_g * mean / g_g
        return wc * content + wg * style, {"w_c": wc, "w_g": wg, "grad_norm_c": g_c, "grad_norm_g": g_g}


class ConstraintParams(ComponentParams):
    target: float = Field(0.1, gt=0, description="the content loss to stay under")
    step_size: float = Field(0.05, gt=0, description="dual ascent rate of the extra content weight")
    max_weight: float = Field(100.0, gt=0, description="cap on the extra content weight")


class ConstraintBalancer(Balancer):
    """Keep ``L_content`` under ``target`` by dual ascent on an extra content weight ``lam``.

    ``L = (w_c + lam) L_c + w_g L_g`` and after each step
    ``lam <- clip(lam + step_size * (L_c - target), 0, max_weight)``: the content weight rises
    while content is lost beyond the target and falls back once it is kept.
    """

    def __init__(self, target: float = 0.1, step_size: float = 0.05, max_weight: float = 100.0):
        super().__init__()
        self.target, self.step_size, self.max_weight = target, step_size, max_weight
        self.register_buffer("lam", torch.zeros(()))

    def combine(self, content: Tensor, style: Tensor, *, w_c: float, w_g: float,
                last_layer: Tensor | None = None, step: int = 0) -> tuple[Tensor, dict[str, float]]:
        lam = float(self.lam)
        total = (w_c + lam) * content + w_g * style
        if self.training:
            violation = float(content.detach()) - self.target
            self.lam.fill_(min(max(lam + self.step_size * violation, 0.0), self.max_weight))
        return total, {"w_c": w_c + lam, "w_g": w_g, "lambda": lam}


def register(registry: Registry) -> None:
    registry.register("balancer", "fixed", FixedBalancer, params=FixedParams)
    registry.register("balancer", "uncertainty", UncertaintyBalancer, params=UncertaintyParams)
    registry.register("balancer", "gradnorm", GradNormBalancer, params=GradNormParams)
    registry.register("balancer", "constraint", ConstraintBalancer, params=ConstraintParams)
