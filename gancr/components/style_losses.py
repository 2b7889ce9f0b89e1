"""Style losses: adversarial losses (both sides) and statistics of style features.

Adversarial losses read the discriminator's logits from a
:class:`~gancr.components.base.StyleBatch` (computed once per batch and shared); with a
multi-scale discriminator every loss is averaged over scales.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from gancr.components.base import StyleBatch, StyleLoss, as_list, frozen_encoder
from gancr.metrics.style import gram_matrix
from gancr.registry import ComponentParams, Registry
from gancr.spec import Slot

__all__ = ["VanillaGAN", "LSGAN", "HingeGAN", "WGANGP", "R1Penalty", "GramLoss", "gram_matrix", "register"]


def _mean(values: list[Tensor]) -> Tensor:
    """The mean over a discriminator's scales in fp32; one scale's value as it is (the same number)."""
    if len(values) == 1:
        return values[0].float()
    return torch.stack([v.float() for v in values]).mean()


class VanillaGAN(StyleLoss):
    """Non-saturating GAN loss (Goodfellow et al. 2014).

    D: ``softplus(-D(s)) + softplus(D(y))``; G: ``softplus(-D(y))``.
    """

    def generator_loss(self, batch: StyleBatch) -> Tensor:
        return _mean([F.softplus(-f).mean() for f in batch.d_fake()])

    def discriminator_loss(self, batch: StyleBatch) -> Tensor:
        return _mean(
            [F.softplus(-r).mean() + F.softplus(f).mean() for r, f in zip(batch.d_real(), batch.d_fake())]
        )


class LSGAN(StyleLoss):
    """Least-squares GAN (Mao et al. 2017), as in CycleGAN.

    D: ``((D(s) - 1)^2 + D(y)^2) / 2``; G: ``(D(y) - 1)^2``.
    """

    def generator_loss(self, batch: StyleBatch) -> Tensor:
        return _mean([(f - 1).square().mean() for f in batch.d_fake()])

    def discriminator_loss(self, batch: StyleBatch) -> Tensor:
        return _mean(
            [0.5 * ((r - 1).square().mean() + f.square().mean()) for r, f in zip(batch.d_real(), batch.d_fake())]
        )


class HingeGAN(StyleLoss):
    """Hinge loss (Lim & Ye 2017). D: ``relu(1 - D(s)) + relu(1 + D(y))``; G: ``-D(y)``."""

    def generator_loss(self, batch: StyleBatch) -> Tensor:
        return _mean([-f.mean() for f in batch.d_fake()])

    def discriminator_loss(self, batch: StyleBatch) -> Tensor:
        return _mean([F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(batch.d_real(), batch.d_fake())])


def _gradient_penalty_inputs(batch: StyleBatch) -> Tensor:
    real, fake = batch.real.detach(), batch.fake.detach()
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    return (alpha * real + (1 - alpha) * fake).requires_grad_(True)


def _grad_norm_sq(outputs: list[Tensor], inputs: Tensor) -> Tensor:
    grads = torch.autograd.grad([o.float().sum() for o in outputs], inputs, create_graph=True)[0]
    return grads.float().flatten(1).square().sum(1)


class WGANGPParams(ComponentParams):
    gp_weight: float = Field(10.0, ge=0, description="weight of the gradient penalty (lambda)")


class WGANGP(StyleLoss):
    """Wasserstein loss with gradient penalty (Gulrajani et al. 2017): the paper's gradient loss.

    D: ``D(y) - D(s) + lambda * (||grad D(x_hat)|| - 1)^2`` at random interpolates ``x_hat``;
    G: ``-D(y)``.
    """

    def __init__(self, gp_weight: float = 10.0):
        super().__init__()
        self.gp_weight = gp_weight

    def generator_loss(self, batch: StyleBatch) -> Tensor:
        return _mean([-f.mean() for f in batch.d_fake()])

    def discriminator_loss(self, batch: StyleBatch) -> Tensor:
        critic = _mean([f.mean() - r.mean() for r, f in zip(batch.d_real(), batch.d_fake())])
        x_hat = _gradient_penalty_inputs(batch)
        norm = _grad_norm_sq(as_list(batch.discriminator(x_hat)), x_hat).add(1e-12).sqrt()
        return critic + self.gp_weight * (norm - 1).square().mean()


class R1Params(ComponentParams):
    gamma: float = Field(10.0, ge=0, description="penalty weight")


class R1Penalty(StyleLoss):
    """R1 penalty (Mescheder et al. 2018): ``gamma / 2 * ||grad D(s)||^2`` on real images.

    Discriminator side only; add it next to an adversarial loss.
    """

    needs_real_grad = True

    def __init__(self, gamma: float = 10.0):
        super().__init__()
        self.gamma = gamma

    def discriminator_loss(self, batch: StyleBatch) -> Tensor:
        if not batch.real.requires_grad:
            raise RuntimeError("r1 needs real images that require grad (StyleBatch.real.requires_grad_())")
        return 0.5 * self.gamma * _grad_norm_sq(batch.d_real(), batch.real).mean()


class GramParams(ComponentParams):
    encoder: Slot["encoder"] = Field(
        {"name": "vgg19", "layer": "relu4_1"}, validate_default=True,
        description="any registered encoder (frozen); its pretrained weights matter",
    )
    layers: list[str] | None = Field(None, description="feature names to compare (default: all)")


class GramLoss(StyleLoss):
    """Gram-matrix style loss (Gatys et al. 2016) against the batch of style images.

    G: ``mean_l ||mean_b Gram(E_l(y)) - mean_b Gram(E_l(s))||^2``; no discriminator side.
    """

    adversarial = False

    def __init__(self, encoder: object = None, layers: list[str] | None = None):
        super().__init__()
        from gancr.builder import build_component

        built = build_component("encoder", encoder or {"name": "vgg19", "layer": "relu4_1"})
        self.encoder, self.indices = frozen_encoder(built, layers, "style loss 'gram'")

    def generator_loss(self, batch: StyleBatch) -> Tensor:
        with torch.no_grad():
            fs = self.encoder(batch.real.detach())
        fy = self.encoder(batch.fake)
        terms = [
            (gram_matrix(fy[i].float()).mean(0) - gram_matrix(fs[i].float()).mean(0)).square().sum()
            for i in self.indices
        ]
        return torch.stack(terms).mean()


def register(registry: Registry) -> None:
    registry.register("style_loss", "vanilla", VanillaGAN, aliases=("nonsaturating",))
    registry.register("style_loss", "lsgan", LSGAN)
    registry.register("style_loss", "hinge", HingeGAN)
    registry.register("style_loss", "wgan_gp", WGANGP, params=WGANGPParams)
    registry.register("style_loss", "r1", R1Penalty, params=R1Params)
    registry.register("style_loss", "gram", GramLoss, params=GramParams)
