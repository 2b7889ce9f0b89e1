"""Spec -> Trio: shape negotiation, sharing, impossible combinations, weight files."""

from __future__ import annotations

import copy
import inspect
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

import gancr
from gancr.builder import build_component, build_losses
from gancr.components.base import FeatureInfo, LossContext, StyleBatch
from gancr.errors import BuildError, CheckpointError, ResourceError, SpecError
from gancr.registry import ComponentParams
from gancr.trio import ContentNet, Generator, Trio

from conftest import SMALL_SPEC


def small(**model) -> dict:
    """SMALL_SPEC with parts of ``model`` replaced (generator parts merged)."""
    spec = copy.deepcopy(SMALL_SPEC)
    generator = model.pop("generator", {})
    spec["model"]["generator"].update(generator)
    spec["model"].update(model)
    return spec


# ----------------------------------------------------------------------------------------
# the trio
# ----------------------------------------------------------------------------------------


def test_build_gives_a_trio_of_modules(small_trio):
    trio = small_trio
    assert isinstance(trio, Trio) and isinstance(trio, nn.Module)
    assert isinstance(trio.generator, Generator) and isinstance(trio.content_net, ContentNet)
    assert isinstance(trio.discriminator, nn.Module)
    assert trio.spec.model.generator.encoder.widths == [8, 16, 32]
    assert not trio.shares_encoder and trio.content_net.encoder is not trio.generator.encoder
    assert trio.generator.reduction == 4 and trio.content_net.reduction == 2
    assert trio.generator.last_layer is trio.generator.decoder.head[1].weight
    assert trio.training  # the shape probes put the parts back in training mode
    x = torch.rand(2, 3, 32, 32)
    assert tuple(trio(x).shape) == (2, 3, 32, 32)
    features = trio.content_net.features(x)
    assert [tuple(f.shape) for f in features] == [(2, 8, 32, 32), (2, 16, 16, 16)]


def test_build_accepts_a_spec_a_mapping_and_a_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SMALL_SPEC), encoding="utf-8")
    for source in (SMALL_SPEC, gancr.load_spec(SMALL_SPEC), path, str(path)):
        trio = gancr.build(source)
        assert trio.spec.to_dict() == gancr.load_spec(SMALL_SPEC).to_dict()
    with pytest.raises(SpecError, match="model.generator.neck.blocks"):
        gancr.build(small(generator={"neck": {"name": "resblocks", "blocks": -1}}))


def test_gancr_build_is_a_plain_function_whatever_was_imported_first():
    """``gancr.build`` is the function :func:`gancr.builder.build`, for help(), inspect and type checkers."""
    import gancr.builder  # a submodule of another name: importing it changes nothing

    assert inspect.isfunction(gancr.build) and gancr.build is gancr.builder.build
    assert inspect.signature(gancr.build).parameters.keys() == {"spec"}
    assert isinstance(gancr.build(SMALL_SPEC), Trio)
    from gancr import build

    assert isinstance(build(SMALL_SPEC), Trio)


def test_share_encoder_shares_the_module():
    trio = gancr.build(small(content_net={"share_encoder": True}))
    assert trio.content_net.encoder is trio.generator.encoder and trio.shares_encoder
    # hard parameter sharing: one set of weights, counted once by the trio
    shared = {id(p) for p in trio.generator.encoder.parameters()}
    assert shared <= {id(p) for p in trio.content_net.parameters()}
    total = sum(p.numel() for p in trio.parameters())
    assert total == sum(p.numel() for p in {id(p): p for p in [
        *trio.generator.parameters(), *trio.content_net.parameters(), *trio.discriminator.parameters()]}.values())
    # the content net's decoder defaults to the generator's decoder spec, built anew
    assert type(trio.content_net.decoder) is type(trio.generator.decoder)
    assert trio.content_net.decoder is not trio.generator.decoder


def test_content_net_decoder_can_differ():
    spec = small(content_net={"encoder": {"name": "conv", "widths": [4, 8, 16]}, "decoder": {"name": "unet"}})
    trio = gancr.build(spec)
    assert type(trio.content_net.decoder).__name__ == "UNetDecoder"
    assert type(trio.generator.decoder).__name__ == "UpsampleConvDecoder"


ENCODERS = {
    "conv": {"name": "conv", "widths": [8, 16, 32]},
    "vgg19": {"name": "vgg19", "layer": "relu3_1"},
    "timm": {"name": "timm", "model_name": "resnet18", "out_indices": [0, 1, 2]},
}


@pytest.mark.parametrize("decoder", ["transposed_conv", "upsample_conv", "unet"])
@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_any_input_size_gives_the_same_size_out(encoder, decoder):
    trio = gancr.build(small(
        generator={"encoder": ENCODERS[encoder], "neck": {"name": "identity"}, "decoder": {"name": decoder}},
        content_net={"share_encoder": True},
    ))
    trio.eval()
    with torch.no_grad():
        for size in ((33, 47), (40, 56), (17, 90)):
            x = torch.rand(1, 3, *size)
            y = trio.generator(x)
            assert tuple(y.shape) == (1, 3, *size)
            assert 0 <= float(y.min()) and float(y.max()) <= 1
            assert tuple(trio.content_net(x).shape) == (1, 3, *size)


def test_the_shape_probe_leaves_batch_norm_statistics_alone():
    trio = gancr.build(small(generator={"encoder": {"name": "conv", "widths": [4, 8], "norm": "batch"}}))
    bn = [m for m in trio.generator.encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bn and all(int(m.num_batches_tracked) == 0 for m in bn)
    assert all(torch.equal(m.running_mean, torch.zeros_like(m.running_mean)) for m in bn)


# ----------------------------------------------------------------------------------------
# impossible combinations fail at build time, naming the parts and their channels
# ----------------------------------------------------------------------------------------


def test_a_neck_expecting_other_channels():
    with pytest.raises(BuildError) as exc:
        gancr.build(small(generator={"encoder": {"name": "conv", "widths": [32, 64, 128]},
                                     "neck": {"name": "resblocks", "in_channels": 256}}))
    message = str(exc.value)
    assert message.startswith("model.generator: neck 'resblocks'")
    assert "expects 256 input channels" in message
    assert "encoder 'conv'" in message and "gives 128 channels" in message and "reduction 4" in message


def test_unet_after_a_single_level_encoder():
    with pytest.raises(BuildError) as exc:
        gancr.build(small(generator={"encoder": {"name": "timm", "model_name": "resnet18", "out_indices": [4]},
                                     "decoder": {"name": "unet"}}))
    message = str(exc.value)
    assert "encoder 'timm'" in message and "model_name=resnet18" in message
    assert "decoder 'unet' needs multi-scale encoder features" in message
    assert "512 channels at reduction 32" in message


class _WrongDecoder(nn.Module):
    """Gives 4 channels instead of 3."""

    def __init__(self, feature_info, out_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(feature_info[-1].channels, 4, 1)
        self.scale = feature_info[-1].reduction

    def forward(self, features):
        return nn.functional.interpolate(self.conv(features[-1]), scale_factor=self.scale)


class _GreedyDecoder(nn.Module):
    """Expects 999 input channels whatever the encoder gives."""

    def __init__(self, feature_info, out_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(999, out_channels, 1)

    def forward(self, features):
        return self.conv(features[-1])


class _NoInfoEncoder(nn.Conv2d):
    """States no features."""

    def __init__(self):
        super().__init__(3, 4, 1)


class _ShrinkingEncoder(nn.Module):
    """Reductions that decrease."""

    def __init__(self):
        super().__init__()
        self.feature_info = [FeatureInfo(4, 4), FeatureInfo(8, 2)]

    def forward(self, x):  # pragma: no cover - never reached
        return []


class _BadPartsPlugin:
    @gancr.hookimpl
    def gancr_register_components(self, registry):
        registry.register("decoder", "wrong_channels", _WrongDecoder)
        registry.register("decoder", "greedy", _GreedyDecoder)
        registry.register("encoder", "no_info", _NoInfoEncoder)
        registry.register("encoder", "shrinking", _ShrinkingEncoder)


@pytest.fixture
def bad_parts():
    with gancr.registered_plugin(_BadPartsPlugin(), "bad-parts"):
        yield


def test_a_plugin_decoder_with_the_wrong_channel_count(bad_parts):
    with pytest.raises(BuildError) as exc:
        gancr.build(small(generator={"decoder": {"name": "wrong_channels"}}))
    message = str(exc.value)
    assert message.startswith("model.generator: expected an image of shape (1, 3, 32, 40)")
    assert "decoder 'wrong_channels'" in message and "encoder 'conv'" in message
    assert message.endswith("got (1, 4, 32, 40)")


def test_a_plugin_decoder_that_does_not_fit_the_encoder(bad_parts):
    with pytest.raises(BuildError) as exc:
        gancr.build(small(generator={"decoder": {"name": "greedy"}}))
    message = str(exc.value)
    assert message.startswith("model.generator: the parts do not fit together")
    assert "decoder 'greedy'" in message and "encoder 'conv'" in message
    assert "level2: 32ch/4x" in message and "999" in message
    # the content net is checked the same way
    spec = small(content_net={"encoder": {"name": "conv", "widths": [8, 16]}, "decoder": {"name": "greedy"}})
    with pytest.raises(BuildError, match=r"^model.content_net: the parts do not fit together .*level1: 16ch/2x"):
        gancr.build(spec)


def test_encoders_must_state_their_features(bad_parts):
    with pytest.raises(BuildError, match="encoder 'no_info' has no feature_info: an encoder must state its features"):
        gancr.build(small(generator={"encoder": {"name": "no_info"}}))
    with pytest.raises(BuildError, match="feature_info reductions must not decrease"):
        gancr.build(small(generator={"encoder": {"name": "shrinking"}}))


@pytest.mark.parametrize("discriminator,size", [({"name": "dcgan", "layers": 7, "width": 4}, 16),
                                                ({"name": "patchgan", "layers": 6, "width": 4}, 16)])
def test_a_discriminator_that_fails_at_the_training_image_size(discriminator, size):
    spec = small(discriminator=discriminator)
    spec["training"]["image_size"] = size
    with pytest.raises(BuildError) as exc:
        gancr.build(spec)
    message = str(exc.value)
    assert message.startswith(f"model.discriminator: '{discriminator['name']}'")
    assert f"fails on a {size}x{size} image (training.image_size)" in message
    # the same discriminator is fine on larger images
    spec["training"]["image_size"] = 256
    assert gancr.build(spec)


def test_factory_errors_name_the_component():
    with pytest.raises(BuildError, match=r"cannot build content_loss 'edge' \(plugin builtin\): low_threshold"):
        gancr.build_losses(gancr.load_spec({"losses": {"content": [{"name": "edge", "low_threshold": 0.3}]}}))


class _WrapParams(ComponentParams):
    inner: gancr.Slot["discriminator"]


class _Wrap(nn.Module):
    """A discriminator around another one, built through build_component (as diffaug's ``inner``)."""

    built: list[str] = []

    def __init__(self, inner, in_channels=3):
        super().__init__()
        _Wrap.built.append(str(torch.empty(0).device))
        self.inner = build_component("discriminator", inner, in_channels=in_channels)

    def forward(self, x):
        return self.inner(x)


class _WrapPlugin:
    @gancr.hookimpl
    def gancr_register_components(self, registry):
        registry.register("discriminator", "wrap", _Wrap, params=_WrapParams)


def _wrapped(levels: int, inner: dict) -> dict:
    for _ in range(levels):
        inner = {"name": "wrap", "inner": inner}
    return inner


def test_a_nested_component_is_built_once_per_level_not_once_per_path(monkeypatch):
    """Each part's memory check builds it on the meta device, its nested parts with it: they are
    not checked again (each check would build its own inner parts twice, 2^N builds at depth N)."""
    _Wrap.built = []
    with gancr.registered_plugin(_WrapPlugin(), "wrap"):
        spec = gancr.load_spec({"model": {"discriminator": _wrapped(40, {"name": "patchgan", "layers": 2, "width": 4})}})
        module = build_component("discriminator", spec.model.discriminator, in_channels=3)
        assert _Wrap.built == ["meta"] * 40 + ["cpu"] * 40
        assert module(torch.rand(1, 3, 32, 32)).shape[0] == 1
        # the outer part's check counts the weights of the parts nested in it
        monkeypatch.setattr("gancr.builder.available_memory", lambda: 1000)
        with pytest.raises(ResourceError, match=r"^discriminator 'wrap' has .* of weights, more than the 1.0 kB of free memory"):
            build_component("discriminator", spec.model.discriminator, in_channels=3)


# ----------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------


def test_build_losses_weights_and_reconstruction():
    spec = gancr.load_spec(small() | {"losses": {
        "content": [{"name": "mse", "weight": 2.0}, {"name": "content_net", "weight": 0.5}],
        "style": [{"name": "hinge", "weight": 0.1}, {"name": "r1", "gamma": 1.0}],
    }})
    losses = build_losses(spec)
    assert [(w, type(m).__name__, label) for w, m, label in losses.content] == [
        (2.0, "MSELoss", "content/mse"), (0.5, "ContentNetLoss", "content/content_net")]
    # the content net's reconstruction leaves out the loss in its own features
    assert [(w, type(m).__name__, label) for w, m, label in losses.reconstruction] == [
        (2.0, "MSELoss", "reconstruction/mse")]
    assert [(w, type(m).__name__, label) for w, m, label in losses.style] == [
        (0.1, "HingeGAN", "style/hinge"), (1.0, "R1Penalty", "style/r1")]
    assert type(losses.balancer).__name__ == "FixedBalancer"
    assert len(losses.modules()) == 5  # mse once, though it is in two lists
    only_features = gancr.load_spec({"losses": {"content": [{"name": "content_net"}]}})
    (recon,) = build_losses(only_features).reconstruction
    assert recon[0] == 1.0 and type(recon[1]).__name__ == "L1Loss"
    # a luminance SSIM lets colours move: the content net would learn them wrong (a run's
    # reconstructions came out blue); it is left out, and L1 takes over
    colour_free = gancr.load_spec({"losses": {"content": [{"name": "content_net"}, {"name": "ssim", "luminance": True}]}})
    (recon,) = build_losses(colour_free).reconstruction
    assert type(recon[1]).__name__ == "L1Loss"
    rgb = gancr.load_spec({"losses": {"content": [{"name": "ssim"}]}})
    assert [type(t.loss).__name__ for t in build_losses(rgb).reconstruction] == ["SSIMLoss"]


def test_content_net_loss_needs_the_content_net(small_trio):
    loss = build_component("content_loss", "content_net")
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(gancr.GancrError, match=r"needs the content net: pass LossContext\(content_net=...\)"):
        loss(x, x)
    y = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss(x, y, LossContext(content_net=small_trio.content_net)).backward()
    assert y.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------
# "done when": a YAML spec switches encoders and losses with no code change
# ----------------------------------------------------------------------------------------

BASE_YAML = """
model:
  generator:
    encoder: {name: vgg19, layer: relu3_1, pretrained: false}
    neck:    {name: resblocks, blocks: 1}
    decoder: {name: upsample_conv}
  content_net:
    share_encoder: false
    encoder: {name: conv, widths: [8, 16]}
  discriminator: {name: patchgan, layers: 2, width: 8}
losses:
  content: [{name: mse, weight: 1.0}]
  style:   [{name: lsgan, weight: 1.0}]
training:
  image_size: 64   # timm's resnet18 reduces by 32: 64 px crops leave a 2x2 bottleneck
"""


def _forward_backward(path: Path) -> None:
    spec = gancr.load_spec(path)
    trio = gancr.build(spec)
    losses = build_losses(spec)
    x, s = torch.rand(2, 3, 40, 56), torch.rand(2, 3, 40, 56)
    y = trio.generator(x)
    context = LossContext(content_net=trio.content_net)
    content = sum(t.weight * t.loss(x, y, context) for t in losses.content)
    style = sum(t.weight * t.loss.generator_loss(StyleBatch(s, y, trio.discriminator)) for t in losses.style)
    total, _ = losses.balancer.combine(content, style, w_c=1.0, w_g=1.0, last_layer=trio.generator.last_layer)
    total.backward()
    grads = [p.grad for p in trio.generator.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    encoder_grads = [p.grad for p in trio.generator.encoder.parameters()]
    assert encoder_grads and sum(g.abs().sum() for g in encoder_grads) > 0  # reaches the encoder


@pytest.mark.filterwarnings("ignore:.*randomly initialised encoder:UserWarning")
@pytest.mark.parametrize("edit", [
    None,
    ("{name: vgg19, layer: relu3_1, pretrained: false}", "{name: timm, model_name: resnet18, pretrained: false}"),
    ("[{name: mse, weight: 1.0}]", "[{name: perceptual, weight: 1.0}]"),
])
def test_changing_the_yaml_spec_needs_no_code_change(tmp_path, edit):
    text = BASE_YAML if edit is None else BASE_YAML.replace(*edit)
    assert edit is None or text != BASE_YAML
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    _forward_backward(path)
    spec = gancr.load_spec(path)
    if edit and "timm" in edit[1]:
        assert type(gancr.build(spec).generator.encoder).__name__ == "TimmEncoder"
    if edit and "perceptual" in edit[1]:
        assert type(build_losses(spec).content[0][1]).__name__ == "PerceptualLoss"


# ----------------------------------------------------------------------------------------
# weight files: loaded when safe, refused when they hold code, never downloaded in tests
# ----------------------------------------------------------------------------------------


def _torchvision_vgg19_features() -> nn.Sequential:
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(1)
    return make_layers(cfgs["E"])  # torchvision's vgg19().features, without the classifier


@pytest.fixture(scope="module")
def vgg19_features() -> nn.Sequential:
    return _torchvision_vgg19_features()


def _vgg_spec(weights: Path | str, layer: str = "relu2_1") -> dict:
    return small(generator={"encoder": {"name": "vgg19", "layer": layer, "weights": str(weights)}})


def test_local_vgg19_weights_load_and_match(tmp_path, vgg19_features):
    path = tmp_path / "vgg19_features.pth"
    torch.save(vgg19_features.state_dict(), path)
    encoder = gancr.build(_vgg_spec(path)).generator.encoder
    assert encoder.pretrained
    for index in (0, 2, 5):  # conv1_1, conv1_2, conv2_1
        assert torch.equal(encoder.layers[index].weight, vgg19_features[index].weight)
        assert torch.equal(encoder.layers[index].bias, vgg19_features[index].bias)
    # a whole model's state dict (features.* and classifier.*), wrapped under "state_dict"
    whole = {f"features.{k}": v for k, v in vgg19_features.state_dict().items()}
    whole["classifier.0.weight"] = torch.zeros(2, 2)
    wrapped = tmp_path / "vgg19_model.pth"
    torch.save({"state_dict": whole, "epoch": 3}, wrapped)
    deeper = gancr.build(_vgg_spec(wrapped, "relu3_1")).generator.encoder
    assert torch.equal(deeper.layers[10].weight, vgg19_features[10].weight)  # conv3_1
    # safetensors too
    from safetensors.torch import save_file

    st = tmp_path / "vgg19.safetensors"
    save_file({k: v.contiguous() for k, v in vgg19_features.state_dict().items()}, str(st))
    assert torch.equal(gancr.build(_vgg_spec(st)).generator.encoder.layers[5].weight, vgg19_features[5].weight)


def test_a_perceptual_loss_with_local_weights_does_not_warn(tmp_path, vgg19_features, recwarn):
    path = tmp_path / "vgg19.pth"
    torch.save(vgg19_features.state_dict(), path)
    build_component("content_loss", {"name": "perceptual", "encoder": {"name": "vgg19", "layer": "relu2_1",
                                                                         "weights": str(path)}})
    assert not [w for w in recwarn if "randomly initialised" in str(w.message)]


def test_weights_that_do_not_fit_are_a_build_error(tmp_path):
    conv = build_component("encoder", {"name": "conv", "widths": [4, 8]})
    path = tmp_path / "conv.pth"
    torch.save(conv.state_dict(), path)
    with pytest.raises(BuildError, match=r"vgg19 weights .*conv.pth do not match torchvision's vgg19 features"):
        gancr.build(_vgg_spec(path))
    with pytest.raises(CheckpointError, match=r"vgg19 weights: no such file .*missing.pth"):
        gancr.build(_vgg_spec(tmp_path / "missing.pth"))
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint", encoding="utf-8")
    with pytest.raises(CheckpointError, match="cannot read vgg19 weights .*notes.pth"):
        gancr.build(_vgg_spec(text))
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="is not a state dict"):
        gancr.build(_vgg_spec(tmp_path / "list.pth"))


def _write_marker(path: str) -> str:
    Path(path).write_text("unpickling ran code", encoding="utf-8")
    return path


class _Payload:
    """Unpickling this object calls ``_write_marker``: arbitrary code in a weight file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (_write_marker, (str(self.marker),))


def test_weight_files_holding_code_are_refused_and_never_run(tmp_path):
    # the payload is live: an unsafe load runs it
    probe = tmp_path / "probe-marker"
    torch.save({"conv.weight": torch.zeros(1), "payload": _Payload(probe)}, tmp_path / "probe.pth")
    torch.load(tmp_path / "probe.pth", weights_only=False)
    assert probe.exists()
    # gancr refuses it, without running it
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pth"
    torch.save({"0.weight": torch.zeros(64, 3, 3, 3), "payload": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError) as exc:
        gancr.build(_vgg_spec(evil))
    assert "holds Python objects besides tensors and plain data; gancr refuses to unpickle it" in str(exc.value)
    assert str(evil) in str(exc.value)
    assert not marker.exists()
    # a pickled function is refused the same way
    function = tmp_path / "function.pth"
    torch.save(_write_marker, function)
    with pytest.raises(CheckpointError, match="refuses to unpickle"):
        gancr.build(_vgg_spec(function))
    # and for timm, the file is checked before timm reads it
    with pytest.raises(CheckpointError, match="timm resnet18 weights .*refuses to unpickle"):
        build_component("encoder", {"name": "timm", "model_name": "resnet18", "weights": str(evil)})
    assert not marker.exists()


def test_local_timm_weights_load(tmp_path):
    import timm

    torch.manual_seed(2)
    model = timm.create_model("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(model.state_dict(), path)
    encoder = build_component("encoder", {"name": "timm", "model_name": "resnet18", "weights": str(path),
                                          "out_indices": [0, 1]})
    assert encoder.pretrained
    assert torch.equal(encoder.model.conv1.weight, model.conv1.weight)
    assert torch.equal(encoder.model.layer1[0].conv1.weight, model.layer1[0].conv1.weight)


def test_pretrained_vgg19_failed_download_fails_clearly(tmp_path, monkeypatch):
    """The host answers but the download fails (tests/test_weights_offline.py: no network at all)."""
    import torch.hub

    import gancr.storage.pretrained

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached
    monkeypatch.setattr(gancr.storage.pretrained, "reachable", lambda url: None)
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(BuildError) as exc:
        gancr.build(small(generator={"encoder": {"name": "vgg19", "layer": "relu2_1", "pretrained": True}}))
    message = str(exc.value)
    assert calls and calls[0].endswith(".pth")
    assert "cannot get the pretrained weights of vgg19" in message and "no network in tests" in message
    assert "`weights: /path/to/file`" in message and "pretrained: false" in message and calls[0] in message


def test_pretrained_timm_failed_download_fails_clearly(tmp_path, monkeypatch):
    """Not cached, the host answers, the download fails (tests/test_weights_offline.py: offline)."""
    import huggingface_hub
    import huggingface_hub.constants

    import gancr.storage.pretrained

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(gancr.storage.pretrained, "reachable", lambda url: None)
    calls = []

    def offline(*args, **kwargs):
        calls.append(args)
        raise OSError("no network in tests")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(BuildError) as exc:
        build_component("encoder", {"name": "timm", "model_name": "resnet18", "pretrained": True})
    assert calls
    message = str(exc.value)
    assert "cannot get the pretrained weights of timm resnet18" in message and "no network in tests" in message
    assert "`weights: /path/to/file`" in message


def test_parameter_models_of_components_are_their_own():
    """A component's parameters are validated by its model, not by the slot's base type."""

    class Params(ComponentParams):
        depth: int = 1

    class Plugin:
        @gancr.hookimpl
        def gancr_register_components(self, registry):
            registry.register("neck", "deep", lambda channels, depth: nn.Identity(), params=Params)

    with gancr.registered_plugin(Plugin(), "deep-plugin"):
        spec = gancr.load_spec(small(generator={"neck": {"name": "deep", "depth": "3"}}))
        assert spec.model.generator.neck.depth == 3  # pydantic's lax int, like any built-in
        with pytest.raises(SpecError, match="model.generator.neck.depth"):
            gancr.load_spec(small(generator={"neck": {"name": "deep", "depth": "three"}}))


def test_training_crops_too_small_for_the_encoder_fail_at_build_time():
    spec = {"model": {"generator": {"encoder": {"name": "timm", "model_name": "resnet18"}}},
            "training": {"image_size": 32}}
    with pytest.raises(BuildError, match=r"training.image_size 32 is too small for encoder 'timm'.*reduction is 32.*"
                                         r"1x1; use image_size >= 64"):
        gancr.build(spec)


@pytest.mark.parametrize("decoder", ["upsample_conv", "transposed_conv", "unet"])
def test_a_residual_generator_starts_as_the_identity_and_learns(decoder):
    spec = {"model": {"generator": {"encoder": {"name": "conv", "widths": [8, 16]}, "decoder": {"name": decoder},
                                    "residual": True},
                      "content_net": {"share_encoder": True}}}
    generator = gancr.build(spec).generator
    x = torch.rand(2, 3, 37, 50)
    assert torch.allclose(generator(x), x, atol=1e-6)  # any size, before any training
    target = 0.5 * x
    opt = torch.optim.Adam(generator.parameters(), 1e-3)
    losses = []
    for _ in range(10):  # the zeroed last layer gets gradients, so training moves away from x
        loss = (generator(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    y = generator(x)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_a_margin_runs_the_generator_on_the_reflected_frame_and_crops_it_back():
    def generator(margin):
        torch.manual_seed(0)
        spec = {"model": {"generator": {"encoder": {"name": "conv", "widths": [8, 16]}, "decoder": {"name": "unet"},
                                        "margin": margin},
                          "content_net": {"share_encoder": True}}}
        return gancr.build(spec).generator.eval()

    framed, plain = generator(8), generator(0)
    assert framed.margin == 8 and plain.margin == 0
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        want = plain(F.pad(x, (8, 8, 8, 8), mode="reflect"))[..., 8:40, 8:40]
        assert torch.allclose(framed(x), want, atol=1e-6)
        assert not torch.allclose(plain(x), want, atol=1e-3)  # the border is drawn differently without it
        assert framed(torch.rand(2, 3, 5, 3)).shape == (2, 3, 5, 3)  # a margin wider than the image


def test_residual_needs_a_decoder_that_can_start_at_zero_change():
    spec = {"model": {"generator": {"encoder": {"name": "conv", "widths": [8, 16]},
                                    "decoder": {"name": "upsample_conv", "output": "none"}, "residual": True},
                      "content_net": {"share_encoder": True}}}
    with pytest.raises(BuildError, match="residual: true needs a decoder .* does not start at G\\(x\\) = x"):
        gancr.build(spec)


def test_residual_defaults_to_false_so_older_specs_build_the_same_generator():
    generator = gancr.build({"model": {"content_net": {"share_encoder": True}}}).generator
    assert generator.residual is False
    assert gancr.load_spec({}).model.generator.residual is False
