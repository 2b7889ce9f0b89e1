"""Strength control: ``alpha`` from the content net's reconstruction (0) to the full style (1).

A trio has two image-to-image networks: the generator ``G(x) = D_g(N(E_g(x)))`` and the
content-retention net ``C(x) = D_c(E_c(x))``, a reconstruction of ``x``. ``alpha`` moves
between them, and its two ends are exact: ``alpha=0`` is ``C(x)`` and ``alpha=1`` is ``G(x)``.

Where can the blend happen? Blending two networks' features and decoding the mixture gives
both ends exactly only at a point after which the two networks share everything, and where
their features mean the same thing channel for channel. In a gancr trio the content net
never shares the generator's decoder -- even with ``share_encoder: true`` only the encoder
is shared, which is *upstream* -- and the hidden channels of two separately trained decoders
do not correspond. Decoding ``lerp(E(x), N(E(x)))`` with the generator's decoder (AdaIN's
trade-off) would make ``alpha=0`` the generator's decoder applied to unstylised features,
which it never learned to reconstruct, not ``C(x)``. What both decoders do share is their
last feature map, the three RGB channels before the output activation, and the activation
itself, which has no parameters. So:

* ``feature`` mode -- both decoders end in the same squashing activation (``tanh`` or
  ``sigmoid``, gancr's built-in decoders with ``output: tanh|sigmoid``): blend their
  pre-activation maps and apply the activation, ``act((1-alpha) z_c + alpha z_g)``.
* ``image`` mode -- otherwise (different activations, ``output: none``, a plugin decoder
  without a ``head``): blend the images, ``(1-alpha) C(x) + alpha G(x)``.
* A run without a trained content net (``model.content_net.train: false``, or a generator
  file without content-net weights) has no reconstruction; the input image, a perfect one,
  stands in for it, in image mode, and the command line says so.

In both modes every output pixel lies between ``C(x)`` and ``G(x)`` (the activation is
monotonic), and ``alpha`` of exactly 0 or 1 runs one network only.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from gancr.components.base import Tanh01
from gancr.errors import GancrError
from gancr.inference.load import Run, open_run

__all__ = [
    "Alpha",
    "AlphaMode",
    "AlphaPlan",
    "InputImage",
    "StrengthBlend",
    "alpha_plan",
    "check_alpha",
    "load_alpha_reference",
]

AlphaMode = Literal["feature", "image"]

_ACTIVATIONS: dict[type, str] = {Tanh01: "tanh", nn.Sigmoid: "sigmoid"}


class InputImage(nn.Identity):
    """The input itself as the ``alpha=0`` end, for runs without a trained content net."""

    reduction = 1

    def __init__(self, note: str = "blending with the input image"):
        super().__init__()
        self.note = note


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
        raise GancrError(
            f"alpha must be between 0 and 1 (0 = the content net's reconstruction, 1 = full style), got {alpha!r}"
        )
    return value


def _head_activation(net: nn.Module) -> nn.Module | None:
    """The decoder's parameter-free squashing output activation, when it has a known one."""
    head = getattr(getattr(net, "decoder", None), "head", None)
    if isinstance(head, nn.Sequential) and len(head) and type(head[-1]) in _ACTIVATIONS:
        return head[-1]
    return None


@dataclass(frozen=True)
class AlphaPlan:
    """How ``alpha`` is applied for a generator and a reference: the mode and why."""

    mode: AlphaMode
    reason: str

    def describe(self, alpha: float) -> str:
        what = "feature-space" if self.mode == "feature" else "image-space"
        return f"alpha {alpha:g}: {what} blend ({self.reason})"


def alpha_plan(generator: nn.Module, reference: nn.Module) -> AlphaPlan:
    """Which mode blends ``generator`` with ``reference`` (a content net or :class:`InputImage`).

    Example:
        >>> import gancr
        >>> trio = gancr.build({"model": {"generator": {"encoder": {"name": "conv", "widths": [8, 16]}},
        ...                               "content_net": {"share_encoder": True}}})
        >>> alpha_plan(trio.generator, trio.content_net).mode
        'feature'
    """
    if isinstance(reference, InputImage):
        return AlphaPlan("image", reference.note)
    g_act, c_act = _head_activation(generator), _head_activation(reference)
    if g_act is not None and c_act is not None and type(g_act) is type(c_act):
        name = _ACTIVATIONS[type(g_act)]
        return AlphaPlan(
            "feature",
            f"both decoders end in {name}: their last feature maps, before the {name}, are mixed",
        )
    def name(act: nn.Module | None) -> str:
        return _ACTIVATIONS[type(act)] if act is not None else "no tanh/sigmoid head"
    return AlphaPlan(
        "image",
        f"the generator's decoder ends in {name(g_act)}, the content net's in {name(c_act)}: "
        "no shared feature space, so the images are mixed",
    )


def _pre_activation(net: nn.Module, act: nn.Module, x: Tensor) -> Tensor:
    """``net(x)``'s map just before its output activation ``act`` (uncropped)."""
    seen: list[Tensor] = []
    handle = act.register_forward_hook(lambda m, inputs, output: seen.append(inputs[0]))
    try:
        net(x)
    finally:
        handle.remove()
    if len(seen) != 1:
        raise GancrError(f"alpha: expected the output activation to run once, it ran {len(seen)} times")
    return seen[0]


class StrengthBlend(nn.Module):
    """``alpha`` between ``reference(x)`` (0) and ``generator(x)`` (1), as :func:`alpha_plan` says.

    A module, so that tiling (:func:`gancr.inference.tiling.tiled_forward`) can run it tile by tile with
    the normalisation statistics of both networks frozen.
    """

    def __init__(self, generator: nn.Module, reference: nn.Module, alpha: float):
        super().__init__()
        self.generator = generator
        self.reference = reference
        self.alpha = check_alpha(alpha)
        self.plan = alpha_plan(generator, reference)
        rg = max(1, int(getattr(generator, "reduction", 1)))
        rc = max(1, int(getattr(reference, "reduction", 1)))
        self.reduction = rg * rc // math.gcd(rg, rc)

    def forward(self, x: Tensor) -> Tensor:
        if self.alpha == 1.0:
            return self.generator(x)
        if self.alpha == 0.0:
            return self.reference(x)
        h, w = x.shape[-2:]
        if self.plan.mode == "feature":
            g_act = _head_activation(self.generator)
            c_act = _head_activation(self.reference)
            assert g_act is not None and c_act is not None
            z_g = _pre_activation(self.generator, g_act, x)[..., :h, :w]
            z_c = _pre_activation(self.reference, c_act, x)[..., :h, :w]
            return g_act(torch.lerp(z_c, z_g, self.alpha))
        return torch.lerp(self.reference(x)[..., :h, :w], self.generator(x)[..., :h, :w], self.alpha)


def load_alpha_reference(path: str | os.PathLike[str] | Run, *, device: str | torch.device = "cpu") -> nn.Module:
    """The ``alpha=0`` end of a run: its trained content net, or :class:`InputImage` with a note.

    Args:
        path: a run directory, ``generator.safetensors`` or checkpoint, or a run already read
            (:func:`gancr.inference.open_run`).
    """
    run = open_run(path)
    if not run.has_content_net:
        return InputImage(f"{run.path.name} holds no content-net weights, so alpha blends with the input image")
    if not run.spec.model.content_net.train:
        return InputImage(
            "the run trained no content net (model.content_net.train: false), so alpha blends with the input image"
        )
    return run.content_net(device=device)
