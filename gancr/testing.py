"""Contract checks for components: the ones gancr's own tests run on every built-in.

A plugin's tests check a component against its kind's contract in one line::

    from gancr.testing import check_component

    def test_patchnce_keeps_the_contract():
        check_component("content_loss", "patchnce")

or run a suite over every component one plugin registers (by plugin or distribution name),
so a component added later is tested without anyone writing a test for it::

    import pytest
    from gancr.testing import check_component, component_params

    @pytest.mark.parametrize("kind,name", component_params(plugin="gancr-cut"))
    def test_contract(kind, name):
        check_component(kind, name)

Each check builds the component from a spec (a name, or a mapping with ``name`` and
parameters) with random weights, runs it on a small input (``1x3x40x56``), and fails with an
``AssertionError`` naming the component and what it broke. The contract of each kind is in
:data:`gancr.registry.KINDS`; :data:`CHECKS` maps each kind to its check. Nothing downloads.
"""

from __future__ import annotations

import copy
import functools
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from gancr.builder import build, build_component
from gancr.components.base import (
    Balancer,
    ContentLoss,
    FeatureInfo,
    LossContext,
    StyleBatch,
    StyleLoss,
    as_list,
    pad_to_multiple,
)
from gancr.errors import SpecError
from gancr.plugins import get_registry, plugin_failures
from gancr.registry import KINDS
from gancr.spec import component_model, validate_component

__all__ = [
    "H",
    "W",
    "CHECKS",
    "check_component",
    "component_params",
    "check_parameter_model",
    "check_encoder",
    "check_neck",
    "check_decoder",
    "check_discriminator",
    "check_content_loss",
    "check_style_loss",
    "check_balancer",
    "SMALL_SPEC",
    "small_trio",
    "conv_features",
]

#: Height and width of the test images: not multiples of the usual reductions, so that
#: padding and cropping are exercised.
H, W = 40, 56

#: A mapping that is the wrong type for numbers, strings, lists, literals and slots.
_WRONG = {"not": "the right type"}

SpecLike = str | Mapping[str, Any]


def _spec(spec: SpecLike) -> dict[str, Any]:
    return {"name": spec} if isinstance(spec, str) else dict(spec)


def _who(kind: str, spec: SpecLike) -> str:
    data = _spec(spec)
    params = ", ".join(f"{k}={v!r}" for k, v in data.items() if k != "name")
    return f"{kind} {data.get('name')!r}" + (f" ({params})" if params else "")


@contextmanager
def _random_weights_are_expected() -> Iterator[None]:
    """Contract checks use random weights on purpose: no 'untrained encoder' warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*randomly initialised encoder", category=UserWarning)
        yield


# ----------------------------------------------------------------------------------------
# what the checks run against: small parts built once (random weights)
# ----------------------------------------------------------------------------------------


#: A small spec (conv encoders, one residual block, a narrow PatchGAN): builds in well under a second.
SMALL_SPEC: dict[str, Any] = {
    "model": {
        "generator": {
            "encoder": {"name": "conv", "widths": [8, 16, 32]},
            "neck": {"name": "resblocks", "blocks": 1},
            "decoder": {"name": "upsample_conv"},
        },
        "content_net": {"encoder": {"name": "conv", "widths": [8, 16]}},
        "discriminator": {"name": "patchgan", "layers": 2, "width": 8},
    },
    "training": {"image_size": 32},
}


@functools.lru_cache(maxsize=1)
def small_trio() -> Any:
    """The trio of :data:`SMALL_SPEC`, built once per process."""
    return build(copy.deepcopy(SMALL_SPEC))


@functools.lru_cache(maxsize=1)
def conv_features() -> tuple[list[FeatureInfo], list[Tensor]]:
    """A default ``conv`` encoder's ``feature_info`` and its features of a ``1x3xHxW`` image."""
    encoder = build_component("encoder", {"name": "conv"})
    with torch.no_grad():
        features = encoder(torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(0)))
    return list(encoder.feature_info), [f.detach() for f in features]


# ----------------------------------------------------------------------------------------
# the contract of each kind
# ----------------------------------------------------------------------------------------


def check_encoder(spec: SpecLike) -> None:
    """Features as stated in ``feature_info`` (deepest last), for an input padded to the reduction."""
    who = _who("encoder", spec)
    encoder = build_component("encoder", _spec(spec))
    assert isinstance(encoder, nn.Module), f"{who}: not an nn.Module"
    info = list(getattr(encoder, "feature_info", []) or [])
    assert info and all(isinstance(f, FeatureInfo) for f in info), f"{who}: feature_info must list FeatureInfo"
    assert all(f.channels > 0 and f.reduction > 0 for f in info), f"{who}: {info}"
    assert [f.reduction for f in info] == sorted(f.reduction for f in info), f"{who}: deepest feature last: {info}"
    reduction = max(f.reduction for f in info)
    x = pad_to_multiple(torch.rand(1, 3, H, W), reduction)
    ph, pw = math.ceil(H / reduction) * reduction, math.ceil(W / reduction) * reduction
    assert tuple(x.shape[-2:]) == (ph, pw)
    encoder.eval()
    with torch.no_grad():
        features = encoder(x)
    assert isinstance(features, (list, tuple)) and len(features) == len(info), (
        f"{who}: returned {type(features).__name__} of {len(features) if isinstance(features, (list, tuple)) else '?'} "
        f"features, feature_info states {len(info)}"
    )
    for f, fi in zip(features, info):
        expected = (1, fi.channels, ph // fi.reduction, pw // fi.reduction)
        assert tuple(f.shape) == expected, f"{who}: feature {fi.name or fi} has shape {tuple(f.shape)}, not {expected}"
        assert torch.isfinite(f).all(), f"{who}: non-finite feature {fi.name}"


def check_neck(spec: SpecLike, features: tuple[list[FeatureInfo], list[Tensor]] | None = None) -> None:
    """Maps the deepest feature ``(B, C, h, w)`` to ``(B, out_channels, h, w)``."""
    who = _who("neck", spec)
    info, feats = features or conv_features()
    deepest = feats[-1]
    neck = build_component("neck", _spec(spec), channels=info[-1].channels)
    assert isinstance(neck, nn.Module), f"{who}: not an nn.Module"
    out = neck(deepest)
    assert isinstance(out, Tensor), f"{who}: returned {type(out).__name__}"
    expected = (1, int(neck.out_channels), *deepest.shape[-2:])
    assert tuple(out.shape) == expected, f"{who}: shape {tuple(out.shape)}, not {expected}"
    assert getattr(neck, "in_channels", info[-1].channels) == info[-1].channels, f"{who}: in_channels"


def check_decoder(spec: SpecLike, features: tuple[list[FeatureInfo], list[Tensor]] | None = None) -> None:
    """Maps the feature list to a ``(1, 3, H, W)`` image (in [0, 1] for tanh/sigmoid outputs)."""
    who = _who("decoder", spec)
    info, feats = features or conv_features()
    decoder = build_component("decoder", _spec(spec), feature_info=info, out_channels=3)
    params = validate_component("decoder", _spec(spec))
    y = decoder(feats)
    assert isinstance(y, Tensor) and tuple(y.shape) == (1, 3, H, W), (
        f"{who}: expected an image of shape (1, 3, {H}, {W}), got {getattr(y, 'shape', type(y).__name__)}"
    )
    assert torch.isfinite(y).all(), f"{who}: non-finite output"
    if getattr(params, "output", None) in ("tanh", "sigmoid"):
        assert y.min() >= 0 and y.max() <= 1, f"{who}: output {params.output} outside [0, 1]"


def check_discriminator(spec: SpecLike) -> None:
    """Logits ``(B, 1, ...)`` (or a list of them) with gradients reaching the input."""
    who = _who("discriminator", spec)
    discriminator = build_component("discriminator", _spec(spec), in_channels=3)
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    logits = as_list(discriminator(x))
    assert logits, f"{who}: no logits"
    for out in logits:
        assert isinstance(out, Tensor) and out.dim() >= 2 and out.shape[0] == 2 and out.shape[1] == 1, (
            f"{who}: logits must be (B, 1, ...), got {getattr(out, 'shape', type(out).__name__)}"
        )
        assert torch.isfinite(out).all(), f"{who}: non-finite logits"
    sum(o.sum() for o in logits).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, f"{who}: no gradient reaches the input"


def check_content_loss(spec: SpecLike, content_net: nn.Module | None = None) -> None:
    """A finite positive scalar with gradients reaching ``y``; a perfect copy keeps all content.

    For a loss with ``zero_at_identity = True`` (the default) ``loss(x, x)`` is zero; for
    one without (a contrastive loss) it is below ``loss(x, y)`` for an unrelated ``y``.
    """
    who = _who("content_loss", spec)
    loss = build_component("content_loss", _spec(spec))
    assert isinstance(loss, ContentLoss), f"{who}: must subclass gancr.components.base.ContentLoss"
    net = content_net if content_net is not None else small_trio().content_net
    torch.manual_seed(0)
    x = torch.rand(2, 3, H, W)
    y = torch.rand(2, 3, H, W, requires_grad=True)
    torch.manual_seed(1)
    value = loss(x, y, LossContext(content_net=net))
    assert isinstance(value, Tensor) and value.dim() == 0, f"{who}: must return a scalar tensor"
    assert torch.isfinite(value) and value > 0, f"{who}: loss of an unrelated image is {float(value)}"
    value.backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0, (
        f"{who}: no gradient reaches y"
    )
    value = float(value.detach())
    torch.manual_seed(1)
    same = float(loss(x, x.clone(), LossContext(content_net=net)).detach())
    if getattr(loss, "zero_at_identity", True):
        assert abs(same) < 1e-5, f"{who}: loss(x, x) is {same}, not 0 (set zero_at_identity = False if intended)"
    else:
        assert math.isfinite(same) and same < value, (
            f"{who}: a perfect copy scores {same}, not below an unrelated image's {value}"
        )


def check_style_loss(spec: SpecLike, discriminator: nn.Module | None = None) -> None:
    """Gradients reach the fakes (generator side) and the discriminator (discriminator side)."""
    who = _who("style_loss", spec)
    if discriminator is None:
        discriminator = build_component("discriminator", {"name": "patchgan", "layers": 2, "width": 8})
    loss = build_component("style_loss", _spec(spec))
    assert isinstance(loss, StyleLoss), f"{who}: must subclass gancr.components.base.StyleLoss"
    torch.manual_seed(0)
    real = torch.rand(2, 3, H, W)
    fake = torch.rand(2, 3, H, W, requires_grad=True)
    g = loss.generator_loss(StyleBatch(real, fake, discriminator))
    if g is not None:
        assert isinstance(g, Tensor) and g.dim() == 0 and torch.isfinite(g), f"{who}: generator_loss is not a finite scalar"
        g.backward()
        assert fake.grad is not None and torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0, (
            f"{who}: no gradient reaches the fakes"
        )
    discriminator.zero_grad(set_to_none=True)
    real_d = real.clone().requires_grad_(loss.needs_real_grad)
    d = loss.discriminator_loss(StyleBatch(real_d, fake.detach(), discriminator))
    if d is not None:
        assert isinstance(d, Tensor) and d.dim() == 0 and torch.isfinite(d), f"{who}: discriminator_loss is not a finite scalar"
        d.backward()
        grads = [p.grad for p in discriminator.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(gr).all() for gr in grads), f"{who}: no finite gradient reaches D"
        assert sum(gr.abs().sum() for gr in grads) > 0, f"{who}: zero gradient at the discriminator"
    assert g is not None or d is not None, f"{who}: a style loss needs at least one side"
    if loss.adversarial:
        assert d is not None, f"{who}: an adversarial loss trains the discriminator"
    else:
        assert d is None, f"{who}: a non-adversarial loss (adversarial = False) has no discriminator side"


def check_balancer(spec: SpecLike, generator: nn.Module | None = None) -> None:
    """``combine`` gives a finite scalar, float weights, and gradients to the generator."""
    who = _who("balancer", spec)
    generator = generator if generator is not None else small_trio().generator
    balancer = build_component("balancer", _spec(spec))
    assert isinstance(balancer, Balancer), f"{who}: must subclass gancr.components.base.Balancer"
    x = torch.rand(1, 3, 32, 32)
    y = generator(x)
    content = torch.nn.functional.mse_loss(y, x)
    style = (y - 0.5).square().mean()
    generator.zero_grad(set_to_none=True)
    total, weights = balancer.combine(content, style, w_c=1.0, w_g=0.5, last_layer=generator.last_layer, step=0)
    assert isinstance(total, Tensor) and total.dim() == 0 and torch.isfinite(total), f"{who}: total is not a finite scalar"
    assert weights and all(isinstance(k, str) and type(v) is float and math.isfinite(v) for k, v in weights.items()), (
        f"{who}: weights must map names to finite floats, got {weights!r}"
    )
    total.backward()
    assert generator.last_layer.grad is not None and generator.last_layer.grad.abs().sum() > 0, (
        f"{who}: no gradient reaches the generator"
    )


def check_parameter_model(kind: str, name: str) -> None:
    """The parameter model rejects a wrong type in each field and unknown fields, with paths;
    its defaults validate."""
    model = component_model(kind, name)
    who = f"{kind} {name!r}"
    for field, info in model.model_fields.items():
        if field == "name" or info.annotation is Any:
            continue
        try:
            validate_component(kind, {"name": name, field: _WRONG}, path="here")
        except SpecError as exc:
            paths = [p for p, _ in exc.errors]
            assert f"here.{field}" in paths, f"{who}: a wrong {field!r} is reported at {paths}, not here.{field}"
        else:
            raise AssertionError(f"{who}: parameter {field!r} accepts {_WRONG!r}")
    try:
        validate_component(kind, {"name": name, "no_such_parameter": 1}, path="here")
    except SpecError as exc:
        assert [p for p, _ in exc.errors] == ["here.no_such_parameter"], f"{who}: {exc.errors}"
        assert "unknown field" in exc.errors[0][1], f"{who}: {exc.errors}"
    else:
        raise AssertionError(f"{who}: an unknown parameter is accepted (subclass gancr.ComponentParams)")
    assert validate_component(kind, {"name": name}).name == name, f"{who}: its defaults do not validate"


#: The contract check of each kind (called with a component spec).
CHECKS: dict[str, Callable[..., None]] = {
    "encoder": check_encoder,
    "neck": check_neck,
    "decoder": check_decoder,
    "discriminator": check_discriminator,
    "content_loss": check_content_loss,
    "style_loss": check_style_loss,
    "balancer": check_balancer,
}


def check_component(kind: str, spec: SpecLike, **parts: Any) -> None:
    """Check one registered component against its kind's contract, and its parameter model.

    Args:
        kind: the component's kind (``content_loss``, ``discriminator`` ...).
        spec: its name (built with its defaults), or ``{"name": ..., **params}``.
        parts: passed to the kind's check (``content_net=``, ``discriminator=``,
            ``generator=``, ``features=``) to check against your own parts.

    Raises:
        AssertionError: naming the component and what it broke.

    Example:
        >>> check_component("neck", "resblocks")
        >>> check_component("discriminator", {"name": "patchgan", "layers": 2, "width": 8})
    """
    if kind not in CHECKS:
        raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
    name = _spec(spec)["name"]
    with _random_weights_are_expected():
        check_parameter_model(kind, name)
        CHECKS[kind](spec, **parts)


def component_params(kind: str | None = None, *, plugin: str | None = None, pattern: str = "*") -> list[Any]:
    """``pytest.param(kind, name, id="kind-name")`` for every registered component, for
    ``@pytest.mark.parametrize("kind,name", component_params(...))``.

    Args:
        kind: only this kind (every kind when None).
        plugin: only components of this plugin, by plugin name (``cut``) or distribution
            name (``gancr-cut``); an error when it registered none (not installed? left out?).
        pattern: a wildcard on names.
    """
    import pytest

    registry = get_registry()
    entries = registry.entries(kind, pattern)
    if plugin is not None:
        entries = [e for e in entries if plugin in (e.plugin, e.distribution)]
        if not entries:
            loaded = ", ".join(str(info) for info in registry.plugins.values()) or "(none)"
            left_out = "; ".join(plugin_failures().values())
            what = f"{kind} components" if kind else "components"
            raise LookupError(
                f"plugin {plugin!r} registered no {what}"
                + (f" matching {pattern!r}" if pattern != "*" else "")
                + f". Is it installed (pip install -e .)? Plugins loaded: {loaded}."
                + (f" Left out: {left_out}" if left_out else "")
            )
    return [pytest.param(e.kind, e.name, id=f"{e.kind}-{e.name}") for e in entries]
