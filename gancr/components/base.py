"""What the parts of a trio promise each other: feature info, loss inputs, shared helpers."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancr.errors import BuildError

__all__ = [
    "FeatureInfo",
    "check_feature_info",
    "Norm",
    "norm_layer",
    "OutputActivation",
    "output_activation",
    "Tanh01",
    "pad_to_multiple",
    "pad_margin",
    "crop_margin",
    "crop_to",
    "weighted",
    "LossContext",
    "ContentLoss",
    "StyleBatch",
    "StyleLoss",
    "Balancer",
    "as_list",
    "warn_untrained",
    "freeze",
    "set_requires_grad",
    "Freezable",
    "FeatureMemo",
    "frozen_encoder",
]


# ----------------------------------------------------------------------------------------
# Encoders state their features
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureInfo:
    """One feature map an encoder returns: channels, reduction (stride w.r.t. the input), name."""

    channels: int
    reduction: int
    name: str = ""


def check_feature_info(module: nn.Module, who: str) -> list[FeatureInfo]:
    """Validate ``module.feature_info``: non-empty, positive channels, non-decreasing reductions."""
    info = getattr(module, "feature_info", None)
    if not info:
        raise BuildError(f"{who} has no feature_info: an encoder must state its features")
    info = list(info)
    for i, f in enumerate(info):
        if not isinstance(f, FeatureInfo) or f.channels <= 0 or f.reduction <= 0:
            raise BuildError(f"{who}: feature_info[{i}] is not a valid FeatureInfo: {f!r}")
        if i and f.reduction < info[i - 1].reduction:
            raise BuildError(f"{who}: feature_info reductions must not decrease: {info!r}")
    return info


# ----------------------------------------------------------------------------------------
# Layers shared by several components
# ----------------------------------------------------------------------------------------

Norm = Literal["batch", "instance", "none"]
OutputActivation = Literal["tanh", "sigmoid", "none"]


def norm_layer(norm: str, channels: int) -> nn.Module:
    """A 2-d normalisation layer: ``batch``, ``instance`` (affine) or ``none``."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}: use batch, instance or none")


class Tanh01(nn.Module):
    """``(tanh(x) + 1) / 2``: a tanh output mapped to images in [0, 1]."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x) * 0.5 + 0.5


def output_activation(name: str) -> nn.Module:
    """The last activation of a decoder: ``tanh`` (rescaled to [0, 1]), ``sigmoid`` or ``none``."""
    if name == "tanh":
        return Tanh01()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown output activation {name!r}: use tanh, sigmoid or none")


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad ``(B, C, H, W)`` at the bottom and right so H and W are multiples of ``multiple``.

    Reflection where the image is large enough, replication otherwise.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def pad_margin(x: Tensor, margin: int) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, C, H + 2m, W + 2m)``: reflected by ``margin`` pixels on every side
    (repeatedly where the image is smaller than the margin, so any size works)."""
    while margin > 0:
        step = min(margin, x.shape[-2] - 1, x.shape[-1] - 1)
        if step <= 0:
            return F.pad(x, (margin,) * 4, mode="replicate")
        x = F.pad(x, (step,) * 4, mode="reflect")
        margin -= step
    return x


def crop_margin(x: Tensor, margin: int) -> Tensor:
    """``(B, C, H, W)`` without ``margin`` positions on each side (at least one left each way): what
    :func:`pad_margin` added, once ``x`` has been through a network (a feature of reduction ``r``
    loses ``margin // r``)."""
    if margin <= 0:
        return x
    h, w = x.shape[-2:]
    my, mx = min(margin, (h - 1) // 2), min(margin, (w - 1) // 2)
    return x[..., my : h - my, mx : w - mx]


def crop_to(x: Tensor, h: int, w: int) -> Tensor:
    """``x[..., :h, :w]``, the inverse of :func:`pad_to_multiple`; ``x`` itself when nothing was padded."""
    return x if x.shape[-2:] == (h, w) else x[..., :h, :w]


def weighted(weight: float, value: Tensor) -> Tensor:
    """``weight * value``, or ``value`` itself for a weight of 1 (the same numbers, one operator
    less in the step and one in its backward pass)."""
    return value if weight == 1 else weight * value


def as_list(x: Tensor | Sequence[Tensor]) -> list[Tensor]:
    """Discriminator outputs as a list (one tensor per scale)."""
    return [x] if isinstance(x, Tensor) else list(x)


class FeatureMemo:
    """The features a frozen encoder computed for its last few inputs, reused while an input is
    the same tensor, unchanged.

    A frozen encoder is a fixed function, and one training step asks it for the same features
    several times: ``E(x)`` for ``G(x)``, for the content net's ``C(x)`` and for a content loss;
    ``E(G(x))`` for a Gram loss and a perceptual loss. The memo hands back the first result when
    the input is the same tensor object with the same version counter (no in-place change), under
    the same autocast, and the result's tensors are unchanged too; a result computed without a
    graph is not reused where a graph is needed (and one with a graph is detached where none is).
    It holds weak references to the inputs and at most ``size`` results, and copies of it
    (``copy.deepcopy`` of a module, e.g. for an EMA) start empty.

    Example:
        >>> memo, calls = FeatureMemo(), []
        >>> def features(x):
        ...     calls.append(1)
        ...     return [x * 2]
        >>> x = torch.ones(1, 3, 4, 4)
        >>> memo(x, features) is memo(x, features), len(calls)
        (True, 1)
    """

    def __init__(self, size: int = 4):
        self.size = size
        self._entries: list[tuple[Any, ...]] = []

    def __call__(self, x: Tensor, compute: Callable[[Tensor], list[Tensor]]) -> list[Tensor]:
        from gancr._torch_compat import autocast_state, tensor_version

        if torch.compiler.is_compiling():
            return compute(x)
        state = autocast_state(x.device.type)
        needs_graph = torch.is_grad_enabled() and x.requires_grad
        for ref, version, entry_state, has_graph, out, versions in self._entries:
            if (ref() is x and version == tensor_version(x) and entry_state == state
                    and (has_graph or not needs_graph)
                    and versions == [tensor_version(o) for o in out]):
                return out if torch.is_grad_enabled() or not has_graph else [o.detach() for o in out]
        out = compute(x)
        live = [e for e in self._entries if e[0]() is not None][-(self.size - 1):] if self.size > 1 else []
        self._entries = [*live, (weakref.ref(x), tensor_version(x), state, needs_graph, out,
                                 [tensor_version(o) for o in out])]
        return out

    def clear(self) -> None:
        """Forget every result."""
        self._entries = []

    def __deepcopy__(self, memo: dict[int, Any]) -> FeatureMemo:
        return FeatureMemo(self.size)

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.size, self._entries = state["size"], []


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` (and return it): no gradients to its parameters, eval mode, and
    ``module.frozen = True``, so that it stays in eval mode when a :class:`Freezable` module or a
    loss holding it is put in training mode."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.frozen = True  # type: ignore[assignment]
    return module.eval()


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    """``module.requires_grad_(flag)``, except that the parameters of its :func:`freeze`-d
    submodules keep no gradients: a discriminator built on a frozen pretrained encoder trains its
    own layers only, whatever the trainer switches on and off around its update."""
    frozen = {id(p) for m in module.modules() if getattr(m, "frozen", False) for p in m.parameters()}
    for p in module.parameters():
        p.requires_grad_(flag and id(p) not in frozen)


class Freezable(nn.Module):
    """A module that can be frozen (every built-in encoder, for its ``freeze`` option): once
    :func:`freeze`-d, it stays in eval mode whatever mode its parents are put in. Until then
    ``frozen`` is False and it trains as any module."""

    frozen: bool = False

    def freeze(self) -> Freezable:
        """:func:`freeze` this module (returns it)."""
        return freeze(self)  # type: ignore[return-value]

    def train(self, mode: bool = True) -> Freezable:
        return super().train(mode and not self.frozen)


def _keep_frozen_in_eval(module: nn.Module) -> None:
    """Put back in eval mode the frozen submodules that a ``train()`` of ``module`` switched."""
    for m in module.modules():
        if m is not module and getattr(m, "frozen", False) and m.training:
            m.eval()


_warned_untrained: set[str] = set()


def warn_untrained(encoder: nn.Module, who: str, stacklevel: int = 3) -> None:
    """Warn once per component when a loss compares features of an untrained encoder."""
    if getattr(encoder, "pretrained", False) or who in _warned_untrained:
        return
    _warned_untrained.add(who)
    warnings.warn(
        f"{who} uses a randomly initialised encoder: its features are untrained, so the "
        "loss measures random projections. Set pretrained: true (online) or weights: <file>.",
        UserWarning,
        stacklevel=stacklevel,
    )


def frozen_encoder(encoder: nn.Module, layers: Sequence[str] | None, who: str) -> tuple[nn.Module, list[int]]:
    """A loss's fixed feature extractor: ``encoder`` :func:`freeze`-d (no gradients, eval mode,
    kept there by the loss), and the indices of the features named ``layers`` (every feature when None).

    Warns once (naming ``who``) when the encoder's weights are random; see :func:`warn_untrained`.

    Raises:
        ValueError: a layer that is not among the encoder's features.
    """
    encoder = freeze(encoder)
    names = [f.name for f in encoder.feature_info]
    if layers is None:
        indices = list(range(len(names)))
    else:
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise ValueError(f"layers {unknown} are not among the encoder's features {names}")
        indices = [names.index(n) for n in layers]
    warn_untrained(encoder, who, stacklevel=4)
    return encoder, indices


# ----------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------


@dataclass
class LossContext:
    """What content losses may use besides ``x`` and ``y``: the content net, a feature memo."""

    content_net: nn.Module | None = None
    _memo: dict[tuple[int, int], Any] = field(default_factory=dict)

    def features(self, encoder: Callable[[Tensor], list[Tensor]], image: Tensor) -> list[Tensor]:
        """``encoder(image)``, computed once per (encoder, image) in this step."""
        key = (id(encoder), id(image))
        if key not in self._memo:
            # keep the encoder and image alive so that their ids stay unique in this step
            self._memo[key] = (encoder, image, encoder(image))
        return self._memo[key][2]


class ContentLoss(nn.Module):
    """A content-retention loss: ``forward(x, y, context) -> scalar``.

    ``x`` is the input ``(B, 3, H, W)`` in [0, 1] and ``y`` its stylisation (or the content
    net's reconstruction) of the same shape.
    """

    #: Whether the content net's reconstruction loss ``L_c(x, C(x))`` may use this loss
    #: (pixel-level losses do; a loss in the content net's own features does not).
    reconstruction: bool = True
    #: Whether ``forward(x, x)`` is zero (a distance). A contrastive loss is lowest, not
    #: zero, for a perfect copy; the contract checks then that a copy scores below an
    #: unrelated image (``gancr.testing.check_content_loss``).
    zero_at_identity: bool = True

    def forward(self, x: Tensor, y: Tensor, context: LossContext | None = None) -> Tensor:
        raise NotImplementedError

    def train(self, mode: bool = True) -> ContentLoss:
        """Set the mode; a :func:`freeze`-d submodule (a fixed feature encoder) stays in eval."""
        super().train(mode)
        _keep_frozen_in_eval(self)
        return self


class StyleBatch:
    """One step's inputs of the style losses: real style images, fakes, the discriminator.

    Discriminator outputs are computed once per batch and shared by every style loss.
    ``real`` requires grad when a loss needs gradients w.r.t. real images (R1).
    """

    def __init__(self, real: Tensor, fake: Tensor, discriminator: nn.Module):
        self.real = real
        self.fake = fake
        self.discriminator = discriminator
        self._d_real: list[Tensor] | None = None
        self._d_fake: list[Tensor] | None = None

    def d_real(self) -> list[Tensor]:
        """The discriminator's logits on the real images (a list: one per scale)."""
        if self._d_real is None:
            self._d_real = as_list(self.discriminator(self.real))
        return self._d_real

    def d_fake(self) -> list[Tensor]:
        """The discriminator's logits on the fakes (a list: one per scale)."""
        if self._d_fake is None:
            self._d_fake = as_list(self.discriminator(self.fake))
        return self._d_fake


class StyleLoss(nn.Module):
    """A style loss: adversarial (both sides) or a statistic of style features.

    ``generator_loss`` is minimised by the generator, ``discriminator_loss`` by the
    discriminator; either returns ``None`` when the loss has no such side.
    """

    #: True when ``discriminator_loss`` needs gradients w.r.t. the real images.
    needs_real_grad: bool = False
    #: True when the loss calls the discriminator (so the trainer trains one).
    adversarial: bool = True
    #: True when the loss takes statistics from the style images whole: the trainer calls
    #: :meth:`use_style_images` with them (as loaded, ``(3, H, W)`` each) before the first step.
    needs_style_images: bool = False

    def use_style_images(self, images: list[Tensor]) -> None:
        """Take what the loss needs from the style images (see :attr:`needs_style_images`)."""

    def generator_loss(self, batch: StyleBatch) -> Tensor | None:
        return None

    def discriminator_loss(self, batch: StyleBatch) -> Tensor | None:
        return None

    def train(self, mode: bool = True) -> StyleLoss:
        """Set the mode; a :func:`freeze`-d submodule (a fixed feature encoder) stays in eval."""
        super().train(mode)
        _keep_frozen_in_eval(self)
        return self


# ----------------------------------------------------------------------------------------
# Balancers
# ----------------------------------------------------------------------------------------


class Balancer(nn.Module):
    """Combines the content and style losses of a joint stage into one objective.

    ``combine`` returns the total loss and the weights it used (logged every step).
    ``last_layer`` is the generator's last layer weight, for balancers that look at
    gradient norms; ``step`` the global step.
    """

    def combine(
        self,
        content: Tensor,
        style: Tensor,
        *,
        w_c: float,
        w_g: float,
        last_layer: Tensor | None = None,
        step: int = 0,
    ) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError
