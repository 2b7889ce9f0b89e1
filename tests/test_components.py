"""Contract tests, parametrised over every registered component (plugin components included).

The parameters come from the registry at collection time (as timm's tests come from
``list_models``): a new component — built-in, from an installed plugin, or from the test
plugin below — is tested without anyone writing a test for it. Each kind's contract is
one ``check_<kind>`` function in :mod:`gancr.testing` (which plugins' tests use too); the
test plugin's components go through the same checks.
"""

from __future__ import annotations

import math
import typing
import warnings
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

import gancr
import gancr.testing
from gancr import build_component
from gancr.components.base import Balancer, ContentLoss, FeatureInfo, StyleBatch, StyleLoss
from gancr.errors import BuildError
from gancr.plugins import get_registry
from gancr.registry import KINDS, ComponentParams, Registry
from gancr.testing import H, W, check_component, check_style_loss, component_params

# ----------------------------------------------------------------------------------------
# a plugin with one component of every kind, checked by the same contract
# ----------------------------------------------------------------------------------------


class TinyEncoderParams(ComponentParams):
    width: int = Field(4, gt=0)


class TinyEncoder(nn.Module):
    """Two levels: reduction 2 and 4."""

    def __init__(self, width: int = 4):
        super().__init__()
        self.a = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.b = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.feature_info = [FeatureInfo(width, 2, "a"), FeatureInfo(2 * width, 4, "b")]

    def forward(self, x):
        a = self.a(x)
        return [a, self.b(a)]


class TinyNeck(nn.Conv2d):
    """A 1x1 convolution to ``out`` channels."""

    def __init__(self, channels: int, out: int = 6):
        super().__init__(channels, out, 1)
        self.in_channels, self.out_channels = channels, out


class TinyDecoderParams(ComponentParams):
    output: typing.Literal["sigmoid", "none"] = "sigmoid"


class TinyDecoder(nn.Module):
    """Bilinear upsampling of a 1x1 convolution of the deepest feature."""

    def __init__(self, feature_info, out_channels=3, output="sigmoid"):
        super().__init__()
        self.conv = nn.Conv2d(feature_info[-1].channels, out_channels, 1)
        self.scale = feature_info[-1].reduction
        self.act = nn.Sigmoid() if output == "sigmoid" else nn.Identity()

    def forward(self, features):
        return self.act(F.interpolate(self.conv(features[-1]), scale_factor=self.scale, mode="bilinear"))


class TinyDiscriminator(nn.Module):
    """A global logit from a strided convolution."""

    def __init__(self, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 4, stride=4)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


class MeanLoss(ContentLoss):
    """Difference of image means."""

    def forward(self, x, y, context=None):
        return (x.mean() - y.mean()).abs()


class LyingNeck(TinyNeck):
    """States one input channel more than it takes (breaks the contract)."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.in_channels = channels + 1


class MeanPlusOne(ContentLoss):
    """Difference of image means, plus one (breaks the contract: a copy is not free)."""

    def forward(self, x, y, context=None):
        return (x.mean() - y.mean()).abs() + 1.0


class Inverted(ContentLoss):
    """Highest for a copy: breaks the contract of a loss that is not zero at identity."""

    zero_at_identity = False

    def forward(self, x, y, context=None):
        return 2.0 - (y - x).abs().mean()


class FakeMeanLoss(StyleLoss):
    """Pushes the mean of the fakes to one half; no discriminator side."""

    adversarial = False

    def generator_loss(self, batch):
        return (batch.fake.mean() - 0.5).square()


class SumParams(ComponentParams):
    scale: float = 1.0


class SumBalancer(Balancer):
    """Adds the terms up, times a scale."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = scale

    def combine(self, content, style, *, w_c, w_g, last_layer=None, step=0):
        return self.scale * (w_c * content + w_g * style), {"w_c": float(w_c), "w_g": float(w_g)}


class ContractPlugin:
    @gancr.hookimpl
    def gancr_register_components(self, registry):
        registry.register("encoder", "tiny_test_encoder", TinyEncoder, params=TinyEncoderParams)
        registry.register("neck", "tiny_test_neck", TinyNeck)
        registry.register("decoder", "tiny_test_decoder", TinyDecoder, params=TinyDecoderParams)
        registry.register("discriminator", "tiny_test_discriminator", TinyDiscriminator)
        registry.register("content_loss", "tiny_test_mean", MeanLoss)
        registry.register("style_loss", "tiny_test_fake_mean", FakeMeanLoss)
        registry.register("balancer", "tiny_test_sum", SumBalancer, params=SumParams)


PLUGIN = "contract-test-plugin"


def _plugin_entries():
    registry = Registry()
    ContractPlugin().gancr_register_components(registry)
    return registry.entries()


def components(kind: str | None = None) -> list:
    """pytest params ``(kind, name, plugin)`` of every component of ``kind``, at collection time."""
    params = [pytest.param(*p.values, None, id=p.id) for p in component_params(kind)]
    params += [
        pytest.param(e.kind, e.name, PLUGIN, id=f"{e.kind}-{e.name}-plugin")
        for e in _plugin_entries()
        if kind is None or e.kind == kind
    ]
    return params


def _with_plugin(plugin):
    return gancr.registered_plugin(ContractPlugin(), PLUGIN) if plugin else nullcontext()


@pytest.fixture(scope="module")
def conv_features() -> tuple[list[FeatureInfo], list[torch.Tensor]]:
    """A conv encoder's feature_info and its features of a 1x3x40x56 image."""
    return gancr.testing.conv_features()


def test_the_plugin_components_cover_every_kind():
    assert {e.kind for e in _plugin_entries()} == set(KINDS)
    assert set(gancr.testing.CHECKS) == set(KINDS)  # and gancr.testing has a check for each


def test_contract_params_come_from_the_registry():
    names = {(p.values[0], p.values[1]) for p in components() if p.values[2] is None}
    assert names == {(e.kind, e.name) for e in get_registry().entries()}


def test_every_parameter_of_every_component_has_a_description():
    """Editors show Field(description=...) (through gancr schema), and so do gancr describe and the
    catalogue: no parameter of a built-in or an installed plugin's component is left blank."""
    blank = [
        f"{e.kind} {e.name!r} (plugin {e.plugin}): {field}"
        for e in get_registry().entries()
        for field, info in e.params.model_fields.items()
        if not (info.description or "").strip()
    ]
    assert not blank, "give these parameters Field(description=...):\n" + "\n".join(blank)
    schema = gancr.spec.Spec.model_json_schema()
    assert schema["$defs"]["Encoder_conv"]["properties"]["norm"]["description"]


# ----------------------------------------------------------------------------------------
# the contract of each kind, and the parameter models (gancr.testing: plugins run the same)
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,name,plugin", components())
def test_component_contract(kind, name, plugin):
    from gancr.storage.hed import hed_missing

    if (kind, name) == ("content_loss", "hed_edges") and hed_missing() is not None:
        pytest.skip(hed_missing())  # its default weights come from a package this machine lacks
    with _with_plugin(plugin):
        check_component(kind, name)


@pytest.mark.parametrize(
    "name", [e.name for e in get_registry().entries("style_loss") if getattr(e.factory, "adversarial", False)]
)
def test_adversarial_losses_average_over_a_multiscale_discriminator(name):
    discriminator = build_component("discriminator", {"name": "multiscale", "layers": 2, "width": 4})
    check_style_loss(name, discriminator)


def test_the_checks_fail_naming_the_component():
    class Broken:
        @gancr.hookimpl
        def gancr_register_components(self, registry):
            registry.register("neck", "test_wrong_channels", LyingNeck)
            registry.register("content_loss", "test_nonzero_copy", MeanPlusOne)
            registry.register("content_loss", "test_inverted", Inverted)

    with gancr.registered_plugin(Broken(), "broken-contract"):
        with pytest.raises(AssertionError, match=r"neck 'test_wrong_channels': in_channels"):
            check_component("neck", "test_wrong_channels")
        with pytest.raises(AssertionError, match=r"content_loss 'test_nonzero_copy': loss\(x, x\) is 1.0, not 0"):
            check_component("content_loss", "test_nonzero_copy")
        with pytest.raises(AssertionError, match=r"'test_inverted': a perfect copy scores 2.0, not below an unrelated image's 1.6"):
            check_component("content_loss", "test_inverted")


def test_component_params_of_one_plugin():
    with gancr.registered_plugin(ContractPlugin(), PLUGIN):
        params = component_params(plugin=PLUGIN)
        assert {(p.values, p.id) for p in params} == {((e.kind, e.name), f"{e.kind}-{e.name}") for e in _plugin_entries()}
        assert [p.values for p in component_params("neck", plugin=PLUGIN)] == [("neck", "tiny_test_neck")]
    builtin = {(e.kind, e.name) for e in get_registry().entries() if e.plugin == "builtin"}
    assert {p.values for p in component_params(plugin="builtin")} == builtin  # by plugin name
    assert {p.values for p in component_params(plugin="gancr")} == builtin  # by distribution name
    with pytest.raises(LookupError, match=r"plugin 'gancr-not-installed' registered no components\. Is it installed"):
        component_params(plugin="gancr-not-installed")


# ----------------------------------------------------------------------------------------
# component specifics the contract does not cover
# ----------------------------------------------------------------------------------------


def test_vgg19_layers_are_named_and_tapped():
    from gancr.components.encoders import VGG19_LAYERS, VGG19Encoder

    assert VGG19_LAYERS[:4] == ("relu1_1", "relu1_2", "relu2_1", "relu2_2") and len(VGG19_LAYERS) == 16
    enc = VGG19Encoder(layer="relu3_2")
    assert [(f.name, f.channels, f.reduction) for f in enc.feature_info] == [
        ("relu1_1", 64, 1), ("relu2_1", 128, 2), ("relu3_2", 256, 4),
    ]
    assert len(enc.layers) == 14  # conv/relu up to relu3_2, torchvision's indices
    deep = VGG19Encoder(layer="relu5_1")
    assert [(f.channels, f.reduction) for f in deep.feature_info][-1] == (512, 16)


def test_frozen_encoders_have_no_trainable_parameters_and_stay_in_eval():
    enc = build_component("encoder", {"name": "conv", "widths": [4, 8], "freeze": True, "norm": "batch"})
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training
    loose = build_component("encoder", {"name": "conv", "widths": [4, 8]})
    loose.train()
    assert loose.training and all(p.requires_grad for p in loose.parameters())


def test_freeze_keeps_any_encoder_in_eval_inside_a_loss():
    """One word for it (issue 20): freeze() stops gradients, sets eval and marks the module frozen;
    a Freezable (every built-in encoder) keeps itself in eval, and a loss keeps any frozen
    submodule in eval, a plugin's plain nn.Module encoder too."""
    from gancr.components.base import Freezable, freeze, frozen_encoder

    class PlainEncoder(nn.Module):  # not Freezable: a plugin's encoder
        feature_info = [FeatureInfo(4, 1, "conv")]

        def __init__(self):
            super().__init__()
            self.conv, self.norm = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)

        def forward(self, x):
            return [self.norm(self.conv(x))]

    class FeatureLoss(ContentLoss):
        def __init__(self):
            super().__init__()
            self.encoder, self.indices = frozen_encoder(PlainEncoder(), None, "test loss")

    with pytest.warns(UserWarning, match="randomly initialised"):
        loss = FeatureLoss()
    loss.train()
    assert loss.training and not loss.encoder.training and loss.encoder.frozen
    assert not any(p.requires_grad for p in loss.encoder.parameters())
    enc = build_component("encoder", {"name": "conv", "widths": [4, 8]})
    assert isinstance(enc, Freezable) and not enc.frozen
    assert freeze(enc) is enc and enc.frozen and not enc.train().training


def test_timm_encoder_chosen_levels_and_last_map_only():
    enc = build_component("encoder", {"name": "timm", "model_name": "resnet18", "out_indices": [1, 3]})
    assert [(f.channels, f.reduction) for f in enc.feature_info] == [(64, 4), (256, 16)]
    last = build_component("encoder", {"name": "timm", "model_name": "resnet18", "features_only": False})
    assert [(f.channels, f.reduction) for f in last.feature_info] == [(512, 32)]
    with torch.no_grad():
        (out,) = last(torch.rand(1, 3, 64, 64))
    assert tuple(out.shape) == (1, 512, 2, 2)


def test_timm_unknown_model_suggests_names():
    with pytest.raises(gancr.BuildError, match=r"timm has no model 'resnt18'. Did you mean .*resnet18"):
        build_component("encoder", {"name": "timm", "model_name": "resnt18"})


@pytest.mark.parametrize("decoder", ["transposed_conv", "upsample_conv", "unet"])
@pytest.mark.parametrize("output,low,high", [("sigmoid", 0.0, 1.0), ("none", -math.inf, math.inf)])
def test_decoder_norms_and_outputs(decoder, output, low, high, conv_features):
    info, features = conv_features
    for norm in ("batch", "instance", "none"):
        dec = build_component("decoder", {"name": decoder, "norm": norm, "output": output}, feature_info=info)
        with torch.no_grad():
            y = dec(features)
        assert tuple(y.shape) == (1, 3, H, W) and low <= float(y.min()) and float(y.max()) <= high
        assert dec.last_layer is dec.head[1].weight


def test_unet_uses_the_skips():
    info = [FeatureInfo(8, 1), FeatureInfo(16, 2), FeatureInfo(32, 8)]
    dec = build_component("decoder", {"name": "unet"}, feature_info=info)
    feats = [torch.rand(1, 8, 16, 16), torch.rand(1, 16, 8, 8), torch.rand(1, 32, 2, 2)]
    y = dec(feats)
    assert tuple(y.shape) == (1, 3, 16, 16)
    assert dec.skips == [-1, 1, 0]  # reduction 4 has no encoder level; 2 and 1 do
    # changing a skip feature changes the output: the skips are used
    feats2 = [feats[0], torch.rand(1, 16, 8, 8), feats[2]]
    assert not torch.allclose(dec(feats2), y)


def test_decoders_reject_a_reduction_that_is_not_a_power_of_two():
    with pytest.raises(gancr.BuildError, match=r"upsamples by powers of 2.*reduction 3"):
        build_component("decoder", {"name": "upsample_conv"}, feature_info=[FeatureInfo(8, 3, "odd")])


def test_discriminator_shapes():
    patch = build_component("discriminator", {"name": "patchgan", "layers": 3, "width": 8, "norm": "spectral"})
    assert tuple(patch(torch.rand(1, 3, 64, 64)).shape) == (1, 1, 6, 6)
    multi = build_component("discriminator", {"name": "multiscale", "scales": 3, "layers": 1, "width": 4})
    shapes = [tuple(o.shape) for o in multi(torch.rand(1, 3, 64, 64))]
    assert shapes == [(1, 1, 30, 30), (1, 1, 14, 14), (1, 1, 6, 6)]  # finest first
    dcgan = build_component("discriminator", {"name": "dcgan", "width": 8})
    for size in ((40, 56), (33, 47), (128, 96)):  # size-agnostic
        assert tuple(dcgan(torch.rand(2, 3, *size)).shape) == (2, 1)


def test_a_projected_discriminator_trains_heads_on_a_frozen_encoder():
    """projected: one logit map per encoder feature, finest first; the encoder stays frozen and in
    eval mode (no parameter of it trains, its weights are the spec's), while the heads learn and the
    gradient reaches the image (the generator's signal)."""
    torch.manual_seed(0)
    spec = {"name": "projected", "encoder": {"name": "vgg16", "layer": "relu2_2"}, "width": 8}
    d = build_component("discriminator", spec)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = d(x)
    assert [tuple(o.shape) for o in out] == [(2, 1, 15, 15), (2, 1, 7, 7)]  # relu1_1, relu2_2
    trainable = {n for n, p in d.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("heads.") for n in trainable)
    assert not any(p.requires_grad for p in d.encoder.parameters())
    d.train()
    assert not d.encoder.training
    sum(o.mean() for o in out).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in d.encoder.parameters())
    deeper = build_component("discriminator", {**spec, "encoder": {"name": "vgg16", "layer": "relu3_1"}, "layers": 0})
    assert [tuple(o.shape) for o in deeper(torch.rand(1, 3, 32, 32))] == [(1, 1, 31, 31), (1, 1, 15, 15), (1, 1, 7, 7)]
    with pytest.raises(gancr.BuildError, match="RGB images"):
        build_component("discriminator", spec, in_channels=1)


def test_a_projected_discriminators_margin_hides_the_encoders_zero_padding():
    """margin: the heads see the features of the reflected image with the margin cut off: a flat
    image gives them flat features (no edge against the zero padding), at the sizes without it."""
    torch.manual_seed(0)
    spec = {"name": "projected", "encoder": {"name": "vgg16", "layer": "relu2_2"}, "width": 8}
    seen: dict[int, list[torch.Tensor]] = {}

    def heads_input(d):
        inputs = []
        hooks = [h.register_forward_pre_hook(lambda m, a: inputs.append(a[0].detach())) for h in d.heads]
        out = d(torch.full((1, 3, 32, 40), 0.3))
        for hook in hooks:
            hook.remove()
        return inputs, [tuple(o.shape) for o in out]

    for margin in (0, 8):
        d = build_component("discriminator", {**spec, "margin": margin})
        seen[margin], shapes = heads_input(d)
        assert shapes == [(1, 1, 15, 19), (1, 1, 7, 9)]
    assert [f.shape for f in seen[8]] == [f.shape for f in seen[0]]
    spread = lambda f: float((f - f[..., :1, :1]).abs().amax())  # noqa: E731
    assert all(spread(f) < 1e-4 for f in seen[8])
    assert all(spread(f) > 1e-2 for f in seen[0])


def test_a_gray_projected_discriminator_judges_luminance_only():
    """gray: the encoder gets the luma in all three channels, so a recoloured image with the same
    luma gets the same logits."""
    from kornia.color import rgb_to_grayscale

    torch.manual_seed(0)
    spec = {"name": "projected", "encoder": {"name": "vgg16", "layer": "relu1_2"}, "width": 8}
    d = build_component("discriminator", {**spec, "gray": True})
    x = torch.rand(1, 3, 32, 32)
    recoloured = x.clone()
    recoloured[:, 0] += 0.1
    recoloured[:, 1] -= 0.1 * 0.299 / 0.587
    assert torch.allclose(rgb_to_grayscale(recoloured), rgb_to_grayscale(x), atol=1e-5)
    assert torch.allclose(d(x)[0], d(recoloured)[0], atol=1e-3)
    colour = build_component("discriminator", spec)
    colour.load_state_dict(d.state_dict())
    assert not torch.allclose(colour(x)[0], colour(recoloured)[0], atol=1e-2)


def test_edge_loss_canny_and_color_spaces():
    x = torch.rand(1, 3, 32, 32)
    y = torch.rand(1, 3, 32, 32, requires_grad=True)
    canny = build_component("content_loss", {"name": "edge", "mode": "canny"})
    value = canny(x, y)
    value.backward()
    assert torch.isfinite(value) and y.grad.abs().sum() > 0 and float(canny(x, x)) == 0
    with pytest.raises(gancr.BuildError, match="low_threshold 0.5 must be below high_threshold 0.2"):
        build_component("content_loss", {"name": "edge", "low_threshold": 0.5})
    for space in ("lab", "ycbcr"):
        loss = build_component("content_loss", {"name": "color", "space": space, "blur": 1.0})
        assert float(loss(x, x)) < 1e-6 and float(loss(x, y).detach()) > 0
    # colour losses ignore brightness: a grey image against a darker grey is free
    grey = torch.full((1, 3, 8, 8), 0.6)
    assert float(build_component("content_loss", {"name": "color", "space": "ycbcr"})(grey, grey * 0.5)) < 1e-6


def test_a_luminance_ssim_lets_colours_move_and_keeps_brightness():
    x = torch.rand(2, 3, 32, 32)
    grayed = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]).expand(-1, 3, -1, -1)  # the same luminance
    luminance = build_component("content_loss", {"name": "ssim", "luminance": True})
    rgb = build_component("content_loss", {"name": "ssim"})
    assert float(luminance(x, grayed)) < 1e-4 < float(rgb(x, grayed))
    assert float(luminance(x, 1.0 - x)) > 0.3  # inverted brightness is a lost structure


def test_ssim_window_must_be_odd():
    with pytest.raises(gancr.BuildError, match="window_size must be odd, got 4"):
        build_component("content_loss", {"name": "ssim", "window_size": 4})


def test_perceptual_and_gram_layers_and_untrained_warning():
    from gancr.components import base

    base._warned_untrained.discard("content loss 'perceptual'")
    with pytest.warns(UserWarning, match="randomly initialised encoder") as record:
        loss = build_component("content_loss", {"name": "perceptual", "encoder": {"name": "vgg19", "layer": "relu2_1"},
                                                "layers": ["relu2_1"]})
        build_component("content_loss", {"name": "perceptual", "encoder": {"name": "vgg19", "layer": "relu1_1"}})
    assert len([w for w in record if "randomly initialised" in str(w.message)]) == 1  # once
    assert loss.indices == [1]
    assert not any(p.requires_grad for p in loss.encoder.parameters())
    loss.train()
    assert not loss.encoder.training  # frozen encoders stay in eval mode
    with pytest.raises(gancr.BuildError, match=r"layers \['relu9_9'\] are not among the encoder's features"):
        build_component("content_loss", {"name": "perceptual", "encoder": {"name": "vgg19", "layer": "relu2_1"},
                                         "layers": ["relu9_9"]})
    with pytest.raises(gancr.BuildError, match="not among the encoder's features"):
        build_component("style_loss", {"name": "gram", "encoder": {"name": "conv"}, "layers": ["relu1_1"]})


def test_gram_matrix_and_loss_of_identical_statistics():
    from gancr.components.style_losses import gram_matrix

    f = torch.rand(2, 4, 5, 6)
    g = gram_matrix(f)
    assert tuple(g.shape) == (2, 4, 4) and torch.allclose(g, g.transpose(1, 2))
    assert torch.allclose(g[0], f[0].reshape(4, -1) @ f[0].reshape(4, -1).T / (4 * 5 * 6))
    loss = build_component("style_loss", {"name": "gram", "encoder": {"name": "conv", "widths": [4, 8]}})
    same = torch.rand(2, 3, 16, 16)
    assert float(loss.generator_loss(StyleBatch(same, same.clone(), nn.Identity()))) < 1e-10


def test_r1_needs_real_images_that_require_grad():
    loss = build_component("style_loss", {"name": "r1"})
    d = build_component("discriminator", {"name": "dcgan", "width": 4})
    batch = StyleBatch(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), d)
    with pytest.raises(RuntimeError, match="r1 needs real images that require grad"):
        loss.discriminator_loss(batch)


def test_adversarial_losses_have_the_documented_values():
    """With a discriminator that outputs constants, each loss has a known value."""

    class Const(nn.Module):
        def forward(self, x):
            return torch.where(x.mean(dim=(1, 2, 3), keepdim=True) > 0.5, 2.0, -1.0).expand(-1, 1, 2, 2)

    real, fake = torch.ones(2, 3, 8, 8), torch.zeros(2, 3, 8, 8)  # D(real)=2, D(fake)=-1
    batch = StyleBatch(real, fake, Const())
    sp = F.softplus
    expect = {
        "vanilla": (sp(torch.tensor(1.0)), sp(torch.tensor(-2.0)) + sp(torch.tensor(-1.0))),
        "lsgan": (torch.tensor(4.0), torch.tensor(0.5 * (1 + 1))),
        "hinge": (torch.tensor(1.0), torch.tensor(0.0 + 0.0)),
    }
    for name, (g, d) in expect.items():
        loss = build_component("style_loss", {"name": name})
        assert torch.allclose(loss.generator_loss(batch), g), name
        assert torch.allclose(loss.discriminator_loss(batch), d), name


def test_fixed_balancer_weights():
    fixed = build_component("balancer", {"name": "fixed"})
    c, s = torch.tensor(2.0), torch.tensor(3.0)
    total, weights = fixed.combine(c, s, w_c=0.5, w_g=0.25)
    assert float(total) == 0.5 * 2 + 0.25 * 3 and weights == {"w_c": 0.5, "w_g": 0.25}
    pinned = build_component("balancer", {"name": "fixed", "w_c": 1.0, "w_g": 0.0})
    total, weights = pinned.combine(c, s, w_c=0.5, w_g=0.25)
    assert float(total) == 2.0 and weights == {"w_c": 1.0, "w_g": 0.0}


@pytest.mark.parametrize("name", ["patchgan", "multiscale", "dcgan"])
def test_antialiased_discriminators_keep_their_weights_and_lose_the_checkerboard(name):
    """antialias blurs before stride-2 convolutions: same parameters and state-dict keys, and the
    gradient a discriminator hands the generator has no checkerboard (period-2) pattern."""
    import torch

    params = {"name": name, "layers": 2, "width": 8, "norm": "spectral"}
    torch.manual_seed(0)
    plain = build_component("discriminator", params)
    smooth = build_component("discriminator", {**params, "antialias": True})
    assert plain.state_dict().keys() == smooth.state_dict().keys()
    smooth.load_state_dict(plain.state_dict())

    def checkerboard(d: torch.nn.Module) -> float:
        """Share of the input gradient's energy at the Nyquist frequency (the period-2 pattern)."""
        x = torch.full((1, 3, 64, 64), 0.5, requires_grad=True)
        out = d(x)
        sum(o.mean() for o in (out if isinstance(out, list) else [out])).backward()
        spectrum = torch.fft.fft2(x.grad.mean(1)).abs().square()
        return float(spectrum[0, 32, :].sum() + spectrum[0, :, 32].sum()) / float(spectrum.sum())

    assert checkerboard(smooth) < 0.25 * checkerboard(plain)


@pytest.mark.parametrize("name", ["patchgan", "multiscale", "dcgan"])
def test_a_gray_discriminator_judges_luminance_only(name):
    """gray: two images with the same luma and different colours get the same logits, and the
    gradient handed to the generator moves every channel by its luma weight (no hue push)."""
    import torch
    from kornia.color import rgb_to_grayscale

    torch.manual_seed(0)
    d = build_component("discriminator", {"name": name, "layers": 2, "width": 8, "gray": True})
    colour = build_component("discriminator", {"name": name, "layers": 2, "width": 8})
    x = torch.rand(2, 3, 64, 64)
    recoloured = x.clone()  # more red, less green: the same luma
    recoloured[:, 0] += 0.1
    recoloured[:, 1] -= 0.1 * 0.299 / 0.587
    assert torch.allclose(rgb_to_grayscale(recoloured), rgb_to_grayscale(x), atol=1e-5)

    def logits(model, img):
        out = model(img)
        return torch.cat([o.flatten() for o in (out if isinstance(out, list) else [out])])

    assert torch.allclose(logits(d, x), logits(d, recoloured), atol=1e-4)
    assert not torch.allclose(logits(colour, x), logits(colour, recoloured), atol=1e-4)
    img = x.clone().requires_grad_(True)
    logits(d, img).sum().backward()
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose(img.grad, img.grad.sum(1, keepdim=True) * weights, atol=1e-6)
    assert sum(p.numel() for p in d.parameters()) < sum(p.numel() for p in colour.parameters())


def test_a_neck_of_another_width_projects_and_says_so():
    neck = build_component("neck", {"name": "resblocks", "blocks": 1, "width": 8}, channels=32)
    assert (neck.in_channels, neck.out_channels) == (32, 8)
    assert neck(torch.rand(2, 32, 5, 7)).shape == (2, 8, 5, 7)
    trio = gancr.build({"model": {"generator": {"encoder": {"name": "conv", "widths": [8, 32]},
                                                "neck": {"name": "resblocks", "blocks": 1, "width": 12}},
                                  "content_net": {"share_encoder": True}}, "training": {"image_size": 32}})
    assert trio.generator.decoder.stages[0][2].in_channels == 12  # the decoder was sized for the neck


def test_decoder_widths_set_each_stage_and_a_wrong_count_is_named(conv_features):
    info, feats = conv_features  # reductions 1, 2, 4: two x2 stages
    dec = build_component("decoder", {"name": "upsample_conv", "widths": [6, 5]}, feature_info=info, out_channels=3)
    assert [s[2].out_channels for s in dec.stages] == [6, 5]
    assert dec(feats).shape[-2:] == (40, 56)
    with pytest.raises(BuildError, match=r"widths \[6\] has 1 stages, but .* reduction 4, which takes 2"):
        build_component("decoder", {"name": "unet", "widths": [6]}, feature_info=info, out_channels=3)


def test_unet_skip_norm_joins_features_of_any_scale_alike(conv_features):
    info, feats = conv_features
    torch.manual_seed(0)
    dec = build_component("decoder", {"name": "unet", "skip_norm": True}, feature_info=info, out_channels=3).eval()
    out = dec(feats)
    # scaling every skip by 1000 changes nothing: each joins at unit root mean square
    scaled = [f * 1000 for f in feats[:-1]] + [feats[-1]]
    assert torch.allclose(dec(scaled), out, atol=1e-5)
    plain = build_component("decoder", {"name": "unet"}, feature_info=info, out_channels=3).eval()
    plain.load_state_dict(dec.state_dict())
    assert not torch.allclose(plain(scaled), plain(feats), atol=1e-3)


@pytest.mark.parametrize("name", ["perceptual", "content_net"])
def test_normalized_feature_distances_do_not_depend_on_the_feature_scale(name, small_trio):
    import copy

    from gancr.components.base import LossContext

    small_trio = copy.deepcopy(small_trio)  # its weights change below

    params = {"name": name, "distance": "mse", "normalize": True}
    if name == "perceptual":
        params["encoder"] = {"name": "conv", "widths": [4, 8]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights, said once per process
        loss = build_component("content_loss", params)
    def context():  # a new one per step: it remembers features
        return LossContext(content_net=small_trio.content_net)

    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    value = float(loss(x, y, context()).detach())
    encoder = loss.encoder if name == "perceptual" else small_trio.content_net.encoder
    with torch.no_grad():  # the last layer's weights x 10: features x 10 where the ReLU passes them
        last = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.mul_(10), last.bias.mul_(10)
        norms = [m for m in encoder.modules() if hasattr(m, "affine") and m.affine]
        for m in norms[-1:]:
            m.weight.mul_(10), m.bias.mul_(10)
    assert float(loss(x, y, context()).detach()) == pytest.approx(value, rel=1e-4)
    assert float(loss(x, x, context()).detach()) == 0.0
