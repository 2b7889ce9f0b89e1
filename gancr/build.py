"""Spec -> Trio: the generator, the content-retention net and the discriminator.

Parts negotiate shapes: the encoder states its features (channels, reduction); the neck is
built for the deepest feature's channels and the decoder from the feature list with the
neck's channels at the bottom. Any input height and width works: inputs are padded to a
multiple of the deepest reduction and the output is cropped back. A combination that cannot
work fails here, with both parts and their channels named, not deep inside torch later.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from gancr.components.base import (
    Balancer,
    ContentLoss,
    FeatureInfo,
    StyleLoss,
    check_feature_info,
    pad_to_multiple,
)
from gancr.errors import BuildError, GancrError
from gancr.spec import Spec, load_spec

__all__ = ["Generator", "ContentNet", "Trio", "Losses", "build", "build_component", "build_losses"]


def build_component(kind: str, spec: Any, **build_args: Any) -> Any:
    """Build one registered component from ``{"name": ..., **params}`` (or a bound spec).

    Example:
        >>> enc = build_component("encoder", {"name": "conv", "widths": [8, 16]})
        >>> [(f.channels, f.reduction) for f in enc.feature_info]
        [(8, 1), (16, 2)]
    """
    from gancr.plugins import get_registry

    return get_registry().create(kind, spec, **build_args)


def _describe(spec: Any) -> str:
    """``encoder 'vgg19' (layer=relu4_1)``-style text for error messages."""
    data = spec.model_dump() if hasattr(spec, "model_dump") else dict(spec)
    name = data.pop("name", "?")
    data.pop("weight", None)
    params = ", ".join(f"{k}={v}" for k, v in data.items() if v is not None and not isinstance(v, dict))
    return f"{name!r}" + (f" ({params})" if params else "")


class Generator(nn.Module):
    """``G(x) = decoder(neck(encoder(x)))`` for any ``(B, 3, H, W)``; output the same size.

    The input is padded (reflection) to a multiple of the encoder's deepest reduction and
    the output cropped back.
    """

    def __init__(self, encoder: nn.Module, neck: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.neck, self.decoder = encoder, neck, decoder
        self.reduction = max(f.reduction for f in encoder.feature_info)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        features = self.encoder(pad_to_multiple(x, self.reduction))
        features = [*features[:-1], self.neck(features[-1])]
        return self.decoder(features)[..., :h, :w]

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
        h, w = x.shape[-2:]
        return self.encoder(pad_to_multiple(x, self.reduction))

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return self.decoder(self.encoder(pad_to_multiple(x, self.reduction)))[..., :h, :w]


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


@dataclass
class Losses:
    """The built losses of a spec, each with its weight."""

    content: list[tuple[float, ContentLoss]]
    reconstruction: list[tuple[float, ContentLoss]]
    style: list[tuple[float, StyleLoss]]
    balancer: Balancer

    def modules(self) -> nn.ModuleList:
        """Every loss module (and the balancer), e.g. to collect trainable parameters."""
        seen: list[nn.Module] = []
        for _, m in [*self.content, *self.reconstruction, *self.style, (0.0, self.balancer)]:
            if all(m is not s for s in seen):
                seen.append(m)
        return nn.ModuleList(seen)


def _probe_size(reduction: int) -> int:
    return max(32, 2 * reduction)


def _build_generator(gspec: Any) -> Generator:
    encoder = build_component("encoder", gspec.encoder)
    enc_name = f"encoder {_describe(gspec.encoder)}"
    info = check_feature_info(encoder, enc_name)
    deepest = info[-1]
    neck = build_component("neck", gspec.neck, channels=deepest.channels)
    neck_in = getattr(neck, "in_channels", deepest.channels)
    if neck_in != deepest.channels:
        raise BuildError(
            f"model.generator: neck {_describe(gspec.neck)} expects {neck_in} input channels, but "
            f"{enc_name} gives {deepest.channels} channels (feature {deepest.name or 'last'}, "
            f"reduction {deepest.reduction})"
        )
    neck_out = int(getattr(neck, "out_channels", deepest.channels))
    decoder_info = [*info[:-1], replace(deepest, channels=neck_out)]
    try:
        decoder = build_component("decoder", gspec.decoder, feature_info=decoder_info, out_channels=3)
    except BuildError as exc:
        raise BuildError(f"model.generator: {enc_name} -> decoder {_describe(gspec.decoder)}: {exc}") from None
    generator = Generator(encoder, neck, decoder)
    _probe(generator, "model.generator", f"{enc_name}, neck {_describe(gspec.neck)}, decoder {_describe(gspec.decoder)}", info)
    return generator


def _probe(net: nn.Module, where: str, parts: str, info: list[FeatureInfo]) -> None:
    """Run a small input through ``net``: a mismatch shows here with the parts named."""
    size = _probe_size(max(f.reduction for f in info))
    x = torch.rand(1, 3, size, size + 8)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            y = net(x)
    except GancrError:
        raise
    except (RuntimeError, ValueError) as exc:
        channels = ", ".join(f"{f.name or i}: {f.channels}ch/{f.reduction}x" for i, f in enumerate(info))
        raise BuildError(f"{where}: the parts do not fit together ({parts}; encoder features {channels}): {exc}") from None
    finally:
        net.train(was_training)
    if not isinstance(y, Tensor) or tuple(y.shape) != tuple(x.shape):
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise BuildError(f"{where}: expected an image of shape {tuple(x.shape)} from {parts}, got {shape}")


def _build_content_net(spec: Spec, generator: Generator) -> ContentNet:
    cspec = spec.model.content_net
    if cspec.share_encoder:
        encoder = generator.encoder
        enc_name = "the generator's encoder (shared)"
    else:
        encoder = build_component("encoder", cspec.encoder)
        enc_name = f"encoder {_describe(cspec.encoder)}"
    info = check_feature_info(encoder, f"model.content_net: {enc_name}")
    dspec = cspec.decoder if cspec.decoder is not None else spec.model.generator.decoder
    try:
        decoder = build_component("decoder", dspec, feature_info=info, out_channels=3)
    except BuildError as exc:
        raise BuildError(f"model.content_net: {enc_name} -> decoder {_describe(dspec)}: {exc}") from None
    net = ContentNet(encoder, decoder)
    _probe(net, "model.content_net", f"{enc_name}, decoder {_describe(dspec)}", info)
    return net


def _check_discriminator(discriminator: nn.Module, dspec: Any, size: int) -> None:
    x = torch.rand(1, 3, size, size)
    was_training = discriminator.training
    discriminator.eval()
    try:
        with torch.no_grad():
            out = discriminator(x)
    except GancrError:
        raise
    except (RuntimeError, ValueError) as exc:
        raise BuildError(
            f"model.discriminator: {_describe(dspec)} fails on a {size}x{size} image "
            f"(training.image_size): {exc}"
        ) from None
    finally:
        discriminator.train(was_training)
    for o in out if isinstance(out, (list, tuple)) else [out]:
        if not isinstance(o, Tensor) or o.numel() == 0 or o.shape[0] != 1:
            raise BuildError(f"model.discriminator: {_describe(dspec)} gives no logits for a {size}x{size} image")


def _check_training_size(generator: Generator, spec: Spec) -> None:
    """The training crops must leave the encoder's deepest feature at least 2x2."""
    size, reduction = spec.training.image_size, generator.reduction
    if size < 2 * reduction:
        raise BuildError(
            f"training.image_size {size} is too small for encoder {_describe(spec.model.generator.encoder)}: "
            f"its reduction is {reduction}, so the deepest feature would be "
            f"{-(-size // reduction)}x{-(-size // reduction)}; use image_size >= {2 * reduction}"
        )


def build(spec: Spec | Mapping[str, Any] | str | Any) -> Trio:
    """Assemble a spec (a :class:`Spec`, a mapping, or a YAML/JSON path) into a :class:`Trio`.

    Raises:
        SpecError: the spec does not validate.
        BuildError: the parts do not fit together; names the parts and their channels.

    Example:
        >>> trio = build({"model": {"generator": {"encoder": {"name": "conv", "widths": [8, 16]},
        ...                                       "neck": {"name": "identity"}},
        ...                         "content_net": {"share_encoder": True}}})
        >>> trio.generator(torch.rand(1, 3, 40, 56)).shape
        torch.Size([1, 3, 40, 56])
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    generator = _build_generator(spec.model.generator)
    _check_training_size(generator, spec)
    content_net = _build_content_net(spec, generator)
    discriminator = build_component("discriminator", spec.model.discriminator, in_channels=3)
    _check_discriminator(discriminator, spec.model.discriminator, spec.training.image_size)
    return Trio(generator, content_net, discriminator, spec)


def build_losses(spec: Spec) -> Losses:
    """Build the spec's content and style losses and its balancer.

    The content net's reconstruction uses the content losses that work on pixels (those
    with ``reconstruction = True``), or L1 when none does.
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    content = [
        (item.weight, build_component("content_loss", item)) for item in spec.losses.content
    ]
    reconstruction = [(w, m) for w, m in content if getattr(m, "reconstruction", True)]
    if not reconstruction:
        reconstruction = [(1.0, build_component("content_loss", {"name": "l1"}))]
    style = [(item.weight, build_component("style_loss", item)) for item in spec.losses.style]
    balancer = build_component("balancer", spec.training.balancer)
    return Losses(content=content, reconstruction=reconstruction, style=style, balancer=balancer)


class _CallableModule(types.ModuleType):
    """``gancr.build`` is this module *and* the function :func:`build`.

    Importing a submodule makes it an attribute of its package, so ``gancr.build`` is this
    module as soon as anything has imported it (``from gancr.build import ...``), which
    would hide the public ``gancr.build(spec)``. Calling the module calls :func:`build`.
    """

    def __call__(self, spec: Any) -> Trio:
        return build(spec)


__signature__ = inspect.signature(build)
sys.modules[__name__].__class__ = _CallableModule
