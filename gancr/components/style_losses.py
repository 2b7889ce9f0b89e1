"""Style losses: adversarial losses (both sides) and statistics of style features.

Adversarial losses read the discriminator's logits from a
:class:`~gancr.components.base.StyleBatch` (computed once per batch and shared); with a
multi-scale discriminator every loss is averaged over scales.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from gancr.components.base import StyleBatch, StyleLoss, as_list, crop_margin, frozen_encoder, pad_margin
from gancr.metrics.content import gray
from gancr.metrics.style import gram_matrix
from gancr.errors import GancrError
from gancr.registry import ComponentParams, Registry
from gancr.spec import Slot

__all__ = ["VanillaGAN", "LSGAN", "HingeGAN", "WGANGP", "R1Penalty", "GramLoss", "ChromaNoiseLoss", "gram_matrix",
           "register"]


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
    normalize: bool = Field(
        False, description="divide each layer's squared distance by the style Gram's squared norm, so that "
        "every layer counts alike whatever its feature scale (the remaining style fraction's measure)",
    )
    per_image: bool = Field(
        False, description="compare each output's Gram matrix with the style's (else the batch means)",
    )
    target: Literal["batch", "images"] = Field(
        "batch", description="the style's Gram matrices: of the batch of style crops, or of the style images "
        "whole, as loaded (data.load_size), computed once before training (Johnson et al.'s target)",
    )
    gray: bool = Field(
        False, description="compare the luminance's texture alone: every image made gray (and repeated to "
        "three channels) before the encoder, so that the style's brightness patterns are taught without its palette",
    )
    squared: bool = Field(
        True, description="compare by the squared Frobenius distance (Gatys et al.); false: by the distance "
        "itself, so that a layer already close is pushed as hard as one far away (with normalize: the "
        "remaining style fraction's own terms)",
    )
    margin: int = Field(
        0, ge=0, le=64, description="reflect-pad every image by this many pixels before the encoder and leave "
        "the padded positions out of the Gram matrices: an image's edges are then no edges against the "
        "encoder's zero padding, which a generator otherwise uses as free texture (bright bars along the borders)",
    )


class GramLoss(StyleLoss):
    """Gram-matrix style loss (Gatys et al. 2016) against the style images.

    With ``G_l`` the Gram matrix :func:`~gancr.metrics.style.gram_matrix` of feature ``l`` of
    the frozen encoder and ``T_l`` the style's (the style batch's mean Gram matrix, or, with
    ``target: images``, the mean over the whole style images), the generator's loss is
    ``mean_l d_l`` with ``d_l = ||mean_b G_l(y_b) - T_l||_F^2`` (``per_image``:
    ``mean_b ||G_l(y_b) - T_l||_F^2``), divided by ``||T_l||_F^2`` when ``normalize``;
    without ``squared``, the same with ``||.||_F`` and ``||T_l||_F`` (the distance, not its square).
    With ``gray``, every image (output and style) is its luminance, repeated to three channels.
    With ``margin``, every image (output and style) is reflect-padded by ``margin`` pixels and
    each feature loses ``margin // r_l`` positions on each side (``r_l`` the layer's reduction)
    before its Gram matrix is taken.

    No discriminator side. ``target: images`` needs :meth:`use_style_images` before the first
    step (the trainer calls it); its targets are buffers, kept in checkpoints.
    """

    adversarial = False

    def __init__(self, encoder: object = None, layers: list[str] | None = None, normalize: bool = False,
                 per_image: bool = False, target: str = "batch", gray: bool = False, squared: bool = True,
                 margin: int = 0):
        super().__init__()
        from gancr.builder import build_component

        built = build_component("encoder", encoder or {"name": "vgg19", "layer": "relu4_1"})
        self.encoder, self.indices = frozen_encoder(built, layers, "style loss 'gram'")
        self.normalize, self.per_image, self.target, self.squared = normalize, per_image, target, squared
        self.gray = gray
        self.margin = margin
        # the padded positions of feature l, on each side: margin // reduction
        self.trims = [margin // self.encoder.feature_info[i].reduction for i in self.indices]
        self.needs_style_images = target == "images"
        if self.needs_style_images:
            for k, i in enumerate(self.indices):
                c = self.encoder.feature_info[i].channels
                self.register_buffer(f"target_{k}", torch.zeros(c, c))
            self.register_buffer("target_set", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def use_style_images(self, images: list[Tensor]) -> None:
        """Set the target (``target: images``) to the mean Gram matrices of ``images``, each
        ``(3, H, W)`` in [0, 1] at any size, one at a time on the encoder's device."""
        if not images:
            raise GancrError("style loss 'gram': no style images to take the target from")
        device = next(iter(self.buffers())).device
        sums = [torch.zeros_like(getattr(self, f"target_{k}")) for k in range(len(self.indices))]
        for image in images:
            grams = self._grams(image[None].to(device, torch.float32))
            for k, gram in enumerate(grams):
                sums[k] += gram[0]
        for k, total in enumerate(sums):
            getattr(self, f"target_{k}").copy_(total / len(images))
        self.target_set.fill_(True)

    def _targets(self, real: Tensor) -> list[Tensor]:
        """The style's Gram matrix per compared layer ``(C_l, C_l)``, float32."""
        if self.needs_style_images:
            if not bool(self.target_set):
                raise GancrError("style loss 'gram' with target: images has no target yet: call "
                                 "use_style_images(images) first (gancr's trainer does)")
            return [getattr(self, f"target_{k}") for k in range(len(self.indices))]
        with torch.no_grad():
            return [gram.mean(0) for gram in self._grams(real.detach())]

    def _prepare(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` as the encoder sees them: their luminance, repeated, with ``gray``;
        reflect-padded by ``margin``."""
        if self.gray:
            images = gray(images).expand(-1, 3, -1, -1)
        if self.margin:
            if self.margin >= min(images.shape[-2:]):
                raise GancrError(f"style loss 'gram': margin {self.margin} reflects more than the image has: "
                                 f"images of {images.shape[-2]}x{images.shape[-1]} px need a margin below "
                                 f"{min(images.shape[-2:])} (lower margin, or raise training.image_size)")
            images = pad_margin(images, self.margin)
        return images

    def _grams(self, images: Tensor) -> list[Tensor]:
        """The Gram matrix ``(B, C_l, C_l)`` float32 of each compared layer, the margin's positions left out."""
        feats = self.encoder(self._prepare(images))
        return [gram_matrix(crop_margin(feats[i], trim).float()) for i, trim in zip(self.indices, self.trims)]

    def generator_loss(self, batch: StyleBatch) -> Tensor:
        targets = self._targets(batch.real)
        terms = []
        for grams, target in zip(self._grams(batch.fake), targets):
            diff = grams - target if self.per_image else (grams.mean(0) - target)[None]
            d = diff.square().sum((1, 2))
            scale = target.square().sum().clamp_min(1e-12)
            if not self.squared:  # the gradient of a norm at zero is not finite: start it just above
                d, scale = (d + 1e-12).sqrt(), scale.sqrt()
            d = d.mean()
            terms.append(d / scale if self.normalize else d)
        return torch.stack(terms).mean()


class ChromaNoiseParams(ComponentParams):
    ratio: float = Field(
        1.0, gt=0, le=10, description="the share of the style's high-frequency colour that outputs may have "
        "before the loss starts (below 1 keeps them under it)",
    )


class ChromaNoiseLoss(StyleLoss):
    """No more high-frequency colour than the style has: ``mean_b relu(E(y_b) - r E_s) / (E_s + 0.001)``, with
    ``E`` the chroma energy (:func:`~gancr.metrics.style.chroma_energy`: the Laplacian of Lab's a, b),
    ``E_s`` the style batch's mean and ``r`` the ``ratio``.

    Zero while an output's colour is as smooth as the style's: it removes colour speckles,
    stripes and halos that the style does not have, not the style's own. No discriminator side.
    """

    adversarial = False

    def __init__(self, ratio: float = 1.0):
        super().__init__()
        self.ratio = ratio

    def generator_loss(self, batch: StyleBatch) -> Tensor:
        from gancr.metrics.style import chroma_energies

        with torch.no_grad():
            style = chroma_energies(batch.real.detach()).mean()
        return F.relu(chroma_energies(batch.fake) - self.ratio * style).mean() / (style + 1e-3)


def register(registry: Registry) -> None:
    registry.register("style_loss", "vanilla", VanillaGAN, aliases=("nonsaturating",))
    registry.register("style_loss", "lsgan", LSGAN)
    registry.register("style_loss", "hinge", HingeGAN)
    registry.register("style_loss", "wgan_gp", WGANGP, params=WGANGPParams)
    registry.register("style_loss", "r1", R1Penalty, params=R1Params)
    registry.register("style_loss", "gram", GramLoss, params=GramParams)
    registry.register("style_loss", "chroma_noise", ChromaNoiseLoss, params=ChromaNoiseParams)
