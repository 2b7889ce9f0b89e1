"""Strength control: ``alpha`` from the input photograph (0) to the full stylisation (1).

``y = x + alpha * (G(x) - x)``, blended in image space. Both ends are exact: ``alpha=0``
gives back the input, bit for bit, and ``alpha=1`` is ``G(x)``; in between, every pixel lies
between the two. It works the same for every run, whatever its content net: turning the
style down should give back the photograph, not the content net's reconstruction (which is
blurred by its own bottleneck) or a decoder's guess at unstylised features. For a residual
generator (``model.generator.residual: true``) it scales the learned change of the input.

gancr 0.1 blended with the content net's reconstruction instead (``alpha_plan``,
``InputImage``, ``load_alpha_reference``); those names are gone, with an error that says so.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from gancr.errors import GancrError

__all__ = ["Alpha", "StrengthBlend", "check_alpha"]


class Alpha(float):
    """A strength that :func:`check_alpha` accepted: a float in [0, 1].

    ``stylize`` checks its ``alpha`` once; handing the :class:`Alpha` on to ``stylize_tensor``
    and :class:`StrengthBlend`, which accept plain numbers too, does not check it again.
    """

    __slots__ = ()


def check_alpha(alpha: float) -> Alpha:
    """``alpha`` as a float in [0, 1] (an :class:`Alpha`), or a :class:`GancrError` that says what it means."""
    if type(alpha) is Alpha:  # checked before
        return alpha
    return Alpha(_validate_alpha(alpha))


def _validate_alpha(alpha: object) -> float:
    try:
        value = float(alpha)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise GancrError(f"alpha must be a number between 0 and 1, got {alpha!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise GancrError(f"alpha must be between 0 and 1 (0 = the input photograph, 1 = full style), got {alpha!r}")
    return value


class StrengthBlend(nn.Module):
    """``x + alpha * (generator(x) - x)`` for ``(B, 3, H, W)`` in [0, 1].

    A module, so that tiling (:func:`gancr.inference.tiling.tiled_forward`) can run it tile by
    tile with the generator's normalisation statistics frozen.

    Example:
        >>> blend = StrengthBlend(nn.Identity(), 0.0)
        >>> x = torch.rand(1, 3, 8, 8)
        >>> torch.equal(blend(x), x)
        True
    """

    def __init__(self, generator: nn.Module, alpha: float):
        super().__init__()
        self.generator = generator
        self.alpha = check_alpha(alpha)
        self.reduction = max(1, int(getattr(generator, "reduction", 1)))

    def forward(self, x: Tensor) -> Tensor:
        if self.alpha == 0.0:
            return x
        y = self.generator(x)
        if self.alpha == 1.0:
            return y
        h, w = x.shape[-2:]
        return torch.lerp(x, y[..., :h, :w].to(x.dtype), self.alpha)


_REMOVED = ("alpha_plan", "AlphaPlan", "AlphaMode", "InputImage", "load_alpha_reference")


def __getattr__(name: str) -> Any:
    if name in _REMOVED:
        raise AttributeError(
            f"gancr.inference.strength.{name} was removed in gancr 0.2: alpha now blends the input "
            "photograph with G(x) for every run (StrengthBlend(generator, alpha)), and needs no content net"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
