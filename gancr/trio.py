"""The trio's modules: the generator, the content-retention net, the trio, and its losses.

:mod:`gancr.builder` makes them from a spec; the trainer trains them; inference loads the
generator (and the content net, for strength control) from a run's weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

from gancr.components.base import Balancer, ContentLoss, StyleLoss, crop_to, pad_margin, pad_to_multiple

if TYPE_CHECKING:  # pragma: no cover
    from gancr.spec import Spec

__all__ = ["apply_change", "Generator", "ContentNet", "Trio", "Losses", "LossTerm"]


def apply_change(x: Tensor, change: Tensor) -> Tensor:
    """A residual generator's output ``clamp(x + 2 d - 1, 0, 1)`` from its decoder's image ``d``
    in [0, 1] (``d = 0.5`` leaves ``x`` as it is); ``(B, 3, H, W)`` both."""
    return (x + 2.0 * change - 1.0).clamp(0.0, 1.0)


class Generator(nn.Module):
    """``G(x) = decoder(neck(encoder(x)))`` for any ``(B, 3, H, W)``; output the same size.

    The input is padded (reflection) to a multiple of the encoder's deepest reduction and
    the output cropped back. With ``residual=True`` the decoder's image ``d`` in [0, 1] is
    read as a change of the input: ``G(x) = clamp(x + 2d - 1, 0, 1)``, so a decoder whose
    last layer is zero (:meth:`start_at_identity`) gives back ``x``. With ``margin=m`` the
    input is first reflected by ``m`` pixels on every side and the output cropped back, so
    that the convolutions' zero padding does not draw a frame along the image's borders.
    """

    def __init__(self, encoder: nn.Module, neck: nn.Module, decoder: nn.Module, residual: bool = False,
                 margin: int = 0):
        super().__init__()
        self.encoder, self.neck, self.decoder = encoder, neck, decoder
        self.reduction = max(f.reduction for f in encoder.feature_info)
        self.residual = residual
        self.margin = margin

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        m = self.margin
        framed = pad_margin(x, m) if m else x
        features = self.encoder(pad_to_multiple(framed, self.reduction))
        features = [*features[:-1], self.neck(features[-1])]
        out = crop_to(self.decoder(features), h + 2 * m, w + 2 * m)[..., m:m + h, m:m + w]
        if self.residual:
            return apply_change(x, out)
        return out

    @torch.no_grad()
    def start_at_identity(self) -> bool:
        """Zero the decoder's last layer (weight and bias); False when it has none to zero."""
        weight = self.last_layer
        if weight is None:
            return False
        for module in self.decoder.modules():
            if getattr(module, "weight", None) is weight:
                weight.zero_()
                bias = getattr(module, "bias", None)
                if isinstance(bias, Tensor):
                    bias.zero_()
                return True
        return False

    @property
    def last_layer(self) -> Tensor | None:
        """The weight of the generator's last layer (for gradient-norm balancers)."""
        layer = getattr(self.decoder, "last_layer", None)
        if layer is not None:
            return layer
        weights = [p for p in self.decoder.parameters() if p.dim() > 1 and p.requires_grad]
        return weights[-1] if weights else None


class ContentNet(nn.Module):
    """The content-retention net: reconstructs its input; its encoder's features ``E_c``."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.reduction = max(f.reduction for f in encoder.feature_info)

    def features(self, x: Tensor) -> list[Tensor]:
        """``E_c(x)``: the encoder's feature list (deepest last)."""
        return self.encoder(pad_to_multiple(x, self.reduction))

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return crop_to(self.decoder(self.encoder(pad_to_multiple(x, self.reduction))), h, w)


class Trio(nn.Module):
    """The generator, the content-retention net and the discriminator, built from one spec."""

    def __init__(self, generator: Generator, content_net: ContentNet, discriminator: nn.Module,
                 spec: Spec | None = None):
        super().__init__()
        self.generator = generator
        self.content_net = content_net
        self.discriminator = discriminator
        self.spec = spec

    @property
    def shares_encoder(self) -> bool:
        return self.content_net.encoder is self.generator.encoder

    def forward(self, x: Tensor) -> Tensor:
        """Stylise: ``G(x)``."""
        return self.generator(x)


class LossTerm(NamedTuple):
    """One weighted loss of a spec, and the label its values are logged under.

    Labels are ``content/<name>``, ``reconstruction/<name>`` and ``style/<name>``, with ``.1``,
    ``.2`` ... after a name the same list repeats (``content/edge``, ``content/edge.1``).
    """

    weight: float
    loss: nn.Module
    label: str


@dataclass
class Losses:
    """The built losses of a spec: each list's terms (weight, loss, label), and the balancer.

    ``reconstruction`` is the content net's ``L_c(x, C(x))``: the content losses that work on
    pixels (the same modules as in ``content``, labelled ``reconstruction/...``), or L1.
    """

    content: list[LossTerm]
    reconstruction: list[LossTerm]
    style: list[LossTerm]
    balancer: Balancer

    def modules(self) -> nn.ModuleList:
        """Every loss module (and the balancer), e.g. to collect trainable parameters."""
        seen: list[nn.Module] = []
        for m in [*(t.loss for t in (*self.content, *self.reconstruction, *self.style)), self.balancer]:
            if all(m is not s for s in seen):
                seen.append(m)
        return nn.ModuleList(seen)

    @property
    def adversarial(self) -> bool:
        """Whether a style loss needs the discriminator trained (``adversarial``, true by default)."""
        return any(getattr(t.loss, "adversarial", True) for t in self.style)

    @property
    def needs_real_grad(self) -> bool:
        """Whether a style loss takes gradients on the real images (e.g. the R1 penalty)."""
        return any(getattr(t.loss, "needs_real_grad", False) for t in self.style)
