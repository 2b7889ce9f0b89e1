"""Spec -> Trio: building components, the generator, the content-retention net and the discriminator.

:func:`build_component` validates one component's spec against the registry-bound models
and calls its factory (the registry only keeps entries). :func:`build` assembles a whole
spec into a :class:`~gancr.trio.Trio`; :func:`build_losses` builds its losses.

Parts negotiate shapes: the encoder states its features (channels, reduction); the neck is
built for the deepest feature's channels and the decoder from the feature list with the
neck's channels at the bottom. Any input height and width works: inputs are padded to a
multiple of the deepest reduction and the output is cropped back. A combination that cannot
work fails here, with both parts and their channels named, not deep inside torch later.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from gancr._registry import Registry
from gancr.components.base import FeatureInfo, check_feature_info
from gancr.devices import available_memory, eval_mode, is_allocation_error, memory_error
from gancr.errors import BuildError, GancrError, ResourceError
from gancr.plugins import get_registry
from gancr.storage.files import human_size
from gancr.spec import Spec, load_spec, validate_component
from gancr.trio import ContentNet, Generator, Losses, LossTerm, Trio

__all__ = [
    "build",
    "build_component",
    "build_losses",
    "build_generator",
    "build_content_net",
    "component_label",
]


def build_component(kind: str, spec: Any, *, registry: Registry | None = None, **build_args: Any) -> Any:
    """Build one registered component from ``{"name": ..., **params}`` (or a bound spec).

    Args:
        kind: the component's kind.
        spec: ``{"name": ..., **params}``, a validated spec model, or just a name.
        registry: the registry to build from (default: the plugins', :func:`gancr.plugins.get_registry`).
        build_args: what the kind needs from parts already built (see :data:`gancr.registry.KINDS`).

    Raises:
        SpecError: the parameters do not validate (with their paths).
        BuildError: the factory rejected its arguments; names the component.

    Examples:
        >>> enc = build_component("encoder", {"name": "conv", "widths": [8, 16]})
        >>> [(f.channels, f.reduction) for f in enc.feature_info]
        [(8, 1), (16, 2)]
    """
    registry = registry or get_registry()
    params = validate_component(kind, spec, registry=registry)
    entry = registry.get(kind, params.name)
    kwargs = {k: getattr(params, k) for k in entry.params.model_fields}
    pool, key = _SHARED.get(), _share_key(kind, params)
    if pool is not None and key is not None and not _ON_META.get():
        if key not in pool:
            pool[key] = _build(kind, params, entry, kwargs, build_args)
        return pool[key]
    return _build(kind, params, entry, kwargs, build_args)


def _build(kind: str, params: Any, entry: Any, kwargs: dict[str, Any], build_args: dict[str, Any]) -> Any:
    """Call a validated component's factory (its memory checked first); errors name the component."""
    measured = _MEASURED.get()
    if kind in _MODEL_KINDS and not measured:
        measured = _check_memory(kind, params, lambda: entry.factory(**kwargs, **build_args))
    token = _MEASURED.set(measured)  # the parts this factory builds were measured with it
    try:
        return entry.factory(**kwargs, **build_args)
    except GancrError:
        raise
    except (MemoryError, RuntimeError) as exc:
        if not is_allocation_error(exc):
            raise
        raise memory_error(exc, f"building {kind} {component_label(params)}",
                           f"its size parameters (widths, blocks, layers)") from None
    except (TypeError, ValueError) as exc:
        raise BuildError(
            f"cannot build {kind} {entry.name!r} (plugin {entry.plugin}): {exc}"
        ) from exc
    finally:
        _MEASURED.reset(token)


_MODEL_KINDS = ("encoder", "neck", "decoder", "discriminator")

#: True while a factory runs whose part (with every part it builds through :func:`build_component`,
#: e.g. ``diffaug``'s ``inner``) was already measured on the meta device. Such nested parts are not
#: measured again: each would rebuild its own inner parts twice (on meta, then for real), so a
#: component nested N deep would be built 2^N times.
_MEASURED: ContextVar[bool] = ContextVar("gancr_part_measured", default=False)
#: True while a part is built on the meta device (to measure it): nothing built then is shared.
_ON_META: ContextVar[bool] = ContextVar("gancr_part_on_meta", default=False)
#: Frozen encoders built so far by :func:`build_losses`, by their validated spec (see :func:`_share_key`).
_SHARED: ContextVar[dict[str, Any] | None] = ContextVar("gancr_shared_encoders", default=None)


def _share_key(kind: str, params: Any) -> str | None:
    """What makes two encoders the same fixed function: their validated spec, ``freeze: true``
    included (a frozen encoder never changes, so one instance can serve a generator, a content
    net and every loss that names it alike); None for anything else."""
    if kind != "encoder" or getattr(params, "freeze", False) is not True:
        return None
    return params.model_dump_json()


def _check_memory(kind: str, params: Any, factory: Any) -> bool:
    """Build the part on the ``meta`` device first (no memory, no compute) and compare the size
    of its weights with the free memory: a spec asking for hundreds of gigabytes is an error
    here, instead of a process the system kills. Parts that load weights are not pre-built.

    Returns whether the part was measured (the parts it nests included).
    """
    if getattr(params, "pretrained", False) or getattr(params, "weights", None):
        return False
    token = _MEASURED.set(True)  # its nested parts are on meta too, and counted in its size
    on_meta = _ON_META.set(True)
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            module = factory()
    except Exception:  # noqa: BLE001 - a part that cannot be built on meta is built for real below
        return False
    finally:
        _ON_META.reset(on_meta)
        _MEASURED.reset(token)
    if not isinstance(module, nn.Module):
        return False
    need = sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
    free = available_memory()
    if free is not None and need > free:
        raise ResourceError(
            f"{kind} {component_label(params)} has {human_size(need)} of weights, more than the "
            f"{human_size(free)} of free memory; lower its size parameters (widths, blocks, layers)"
        )
    return True


def component_label(spec: Any) -> str:
    """A component spec as messages name it: ``'vgg19' (layer=relu4_1)`` (its parameters that are set)."""
    data = spec.model_dump() if hasattr(spec, "model_dump") else dict(spec)
    name = data.pop("name", "?")
    data.pop("weight", None)
    params = ", ".join(f"{k}={v}" for k, v in data.items() if v is not None and not isinstance(v, dict))
    return f"{name!r}" + (f" ({params})" if params else "")


def _probe_size(reduction: int) -> int:
    return max(32, 2 * reduction)


def build_generator(gspec: Any) -> Generator:
    """The generator of ``model.generator`` (a bound :class:`~gancr.spec.GeneratorSpec`), checked."""
    encoder = build_component("encoder", gspec.encoder)
    enc_name = f"encoder {component_label(gspec.encoder)}"
    info = check_feature_info(encoder, enc_name)
    deepest = info[-1]
    neck = build_component("neck", gspec.neck, channels=deepest.channels)
    neck_in = getattr(neck, "in_channels", deepest.channels)
    if neck_in != deepest.channels:
        raise BuildError(
            f"model.generator: neck {component_label(gspec.neck)} expects {neck_in} input channels, but "
            f"{enc_name} gives {deepest.channels} channels (feature {deepest.name or 'last'}, "
            f"reduction {deepest.reduction})"
        )
    neck_out = int(getattr(neck, "out_channels", deepest.channels))
    decoder_info = [*info[:-1], replace(deepest, channels=neck_out)]
    try:
        decoder = build_component("decoder", gspec.decoder, feature_info=decoder_info, out_channels=3)
    except BuildError as exc:
        raise BuildError(f"model.generator: {enc_name} -> decoder {component_label(gspec.decoder)}: {exc}") from None
    generator = Generator(encoder, neck, decoder, residual=gspec.residual, margin=gspec.margin)
    components = f"{enc_name}, neck {component_label(gspec.neck)}, decoder {component_label(gspec.decoder)}"
    _probe(generator, "model.generator", components, info)
    if gspec.residual:
        _start_at_identity(generator, component_label(gspec.decoder))
    return generator


def _start_at_identity(generator: Generator, decoder: str) -> None:
    """Zero the decoder's last layer and check that the residual generator then gives back x."""
    x = torch.rand(1, 3, 32, 40)
    with eval_mode(generator):
        ok = generator.start_at_identity() and torch.allclose(generator(x), x, atol=1e-6)
    if not ok:
        raise BuildError(
            f"model.generator: residual: true needs a decoder whose output is 0.5 when its last layer "
            f"is zero (output: tanh or sigmoid, and a last_layer), but decoder {decoder} does not start "
            "at G(x) = x; use output: tanh, or residual: false"
        )


def _probe(net: nn.Module, where: str, components: str, info: list[FeatureInfo]) -> None:
    """Run a small input through ``net``: a mismatch shows here with its ``components`` named."""
    size = _probe_size(max(f.reduction for f in info))
    x = torch.rand(1, 3, size, size + 8)
    try:
        with eval_mode(net):
            y = net(x)
    except GancrError:
        raise
    except (MemoryError, RuntimeError, ValueError) as exc:
        if is_allocation_error(exc):
            raise memory_error(exc, f"{where} ({components}) on a {size}x{size + 8} image",
                               f"the size parameters of {where} (widths, blocks, layers)") from None
        channels = ", ".join(f"{f.name or i}: {f.channels}ch/{f.reduction}x" for i, f in enumerate(info))
        raise BuildError(f"{where}: the parts do not fit together ({components}; encoder features {channels}): {exc}") from None
    if not isinstance(y, Tensor) or tuple(y.shape) != tuple(x.shape):
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise BuildError(f"{where}: expected an image of shape {tuple(x.shape)} from {components}, got {shape}")


def build_content_net(spec: Spec, shared_encoder: nn.Module | None = None) -> ContentNet:
    """The content-retention net of ``spec``, checked.

    Args:
        spec: the whole (validated) spec: the decoder defaults to the generator's.
        shared_encoder: the generator's encoder, used when ``share_encoder`` is true.
    """
    cspec = spec.model.content_net
    if cspec.share_encoder:
        if shared_encoder is None:
            raise BuildError("model.content_net: share_encoder is true, but no generator encoder was given")
        encoder = shared_encoder
        enc_name = "the generator's encoder (shared)"
    else:
        encoder = build_component("encoder", cspec.encoder)
        enc_name = f"encoder {component_label(cspec.encoder)}"
    info = check_feature_info(encoder, f"model.content_net: {enc_name}")
    dspec = cspec.decoder if cspec.decoder is not None else spec.model.generator.decoder
    try:
        decoder = build_component("decoder", dspec, feature_info=info, out_channels=3)
    except BuildError as exc:
        raise BuildError(f"model.content_net: {enc_name} -> decoder {component_label(dspec)}: {exc}") from None
    net = ContentNet(encoder, decoder)
    _probe(net, "model.content_net", f"{enc_name}, decoder {component_label(dspec)}", info)
    return net


def _check_discriminator(discriminator: nn.Module, dspec: Any, size: int) -> None:
    x = torch.rand(1, 3, size, size)
    try:
        with eval_mode(discriminator):
            out = discriminator(x)
    except GancrError:
        raise
    except (MemoryError, RuntimeError, ValueError) as exc:
        if is_allocation_error(exc):
            raise memory_error(exc, f"model.discriminator {component_label(dspec)} on a {size}x{size} image",
                               "training.image_size or the discriminator's width and layers") from None
        raise BuildError(
            f"model.discriminator: {component_label(dspec)} fails on a {size}x{size} image "
            f"(training.image_size): {exc}"
        ) from None
    for o in out if isinstance(out, (list, tuple)) else [out]:
        if not isinstance(o, Tensor) or o.numel() == 0 or o.shape[0] != 1:
            raise BuildError(f"model.discriminator: {component_label(dspec)} gives no logits for a {size}x{size} image")


def _check_training_size(generator: Generator, spec: Spec) -> None:
    """The training crops must leave the encoder's deepest feature at least 2x2."""
    size, reduction = spec.training.image_size, generator.reduction
    if size < 2 * reduction:
        raise BuildError(
            f"training.image_size {size} is too small for encoder {component_label(spec.model.generator.encoder)}: "
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
    generator = build_generator(spec.model.generator)
    _check_training_size(generator, spec)
    content_net = build_content_net(spec, generator.encoder)
    discriminator = build_component("discriminator", spec.model.discriminator, in_channels=3)
    _check_discriminator(discriminator, spec.model.discriminator, spec.training.image_size)
    return Trio(generator, content_net, discriminator, spec)


def build_losses(spec: Spec, trio: Trio | None = None) -> Losses:
    """Build the spec's content and style losses and its balancer.

    The content net's reconstruction uses the content losses that work on pixels (those
    with ``reconstruction = True``), or L1 when none does. Every term is labelled with its
    list and its component's name (:class:`~gancr.trio.LossTerm`).

    Encoders with ``freeze: true`` that are specified alike are built once and shared: by the
    losses, and with ``trio``'s generator and content net when it is given. With the frozen
    encoder's :class:`~gancr.components.base.FeatureMemo`, a step then computes each image's
    features once, however many parts use them.
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    pool: dict[str, Any] = {}
    if trio is not None:
        encoders = [(spec.model.generator.encoder, trio.generator.encoder)]
        if not spec.model.content_net.share_encoder:
            encoders.append((spec.model.content_net.encoder, trio.content_net.encoder))
        for params, module in encoders:
            if (key := _share_key("encoder", params)) is not None:
                pool.setdefault(key, module)
    token = _SHARED.set(pool)
    try:
        return _build_losses(spec)
    finally:
        _SHARED.reset(token)


def _build_losses(spec: Spec) -> Losses:
    names = _unique_names([item.name for item in spec.losses.content])
    content = [LossTerm(item.weight, build_component("content_loss", item), f"content/{name}")
               for item, name in zip(spec.losses.content, names)]
    reconstruction = [LossTerm(t.weight, t.loss, f"reconstruction/{name}")
                      for t, name in zip(content, names) if getattr(t.loss, "reconstruction", True)]
    if not reconstruction:  # L1, labelled by its name as every term is
        fallback = "l1"
        reconstruction = [LossTerm(1.0, build_component("content_loss", {"name": fallback}), f"reconstruction/{fallback}")]
    style = [LossTerm(item.weight, build_component("style_loss", item), f"style/{name}")
             for item, name in zip(spec.losses.style, _unique_names([i.name for i in spec.losses.style]))]
    balancer = build_component("balancer", spec.training.balancer)
    return Losses(content=content, reconstruction=reconstruction, style=style, balancer=balancer)


def _unique_names(names: list[str]) -> list[str]:
    """``l1, edge, edge.1``: a list's names, numbered from their second time on."""
    out, seen = [], {}
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name + (f".{n}" if n else ""))
    return out
