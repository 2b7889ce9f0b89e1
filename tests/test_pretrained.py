"""Pretrained weights (gancr.storage.pretrained): one table of sources that encoders ask by name;
offline, cached weights load without the network, and a download that cannot work fails within
seconds with one message that says what to do (no minute of retries)."""

from __future__ import annotations

import time

import pytest
import torch

import gancr.storage.pretrained
from gancr import build_component
from gancr.errors import BuildError


def _no_network(monkeypatch):
    """Every connection fails at once, as on a machine without a network; a download is an error."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


@pytest.mark.parametrize("encoder", [{"name": "timm", "model_name": "resnet18"}, {"name": "vgg19", "layer": "relu1_1"}])
def test_pretrained_offline_fails_at_once_with_what_to_do(encoder, empty_caches, monkeypatch):
    _no_network(monkeypatch)
    start = time.perf_counter()
    with pytest.raises(BuildError) as info:
        build_component("encoder", {**encoder, "pretrained": True})
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "cannot be reached" in message and "Network is unreachable" in message
    assert "weights: /path/to/" in message and "Weights offline" in message


def test_hf_hub_offline_is_obeyed_without_trying_the_network(empty_caches, monkeypatch):
    import socket

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("HF_HUB_OFFLINE: no connection"))
    with pytest.raises(BuildError, match="HF_HUB_OFFLINE is set.*huggingface.co/timm/resnet18.a1_in1k"):
        build_component("encoder", {"name": "timm", "model_name": "resnet18", "pretrained": True})


def test_weights_in_the_hugging_face_cache_load_offline(empty_caches, monkeypatch):
    """A cache copied from a connected machine: `pretrained: true` loads it with no network at all."""
    import timm
    from safetensors.torch import save_file

    _no_network(monkeypatch)
    reference = timm.create_model("resnet18")
    snapshot = empty_caches / "hf" / "models--timm--resnet18.a1_in1k" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abc")
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(snapshot / "model.safetensors"))
    encoder = build_component("encoder", {"name": "timm", "model_name": "resnet18", "pretrained": True})
    assert encoder.pretrained
    assert torch.equal(encoder.model.conv1.weight, reference.conv1.weight)


def test_torchvision_cache_loads_offline(empty_caches, monkeypatch):
    from torchvision.models import VGG19_Weights, vgg19

    _no_network(monkeypatch)
    checkpoints = empty_caches / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    reference = vgg19(weights=None)
    torch.save(reference.state_dict(), checkpoints / VGG19_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1])
    monkeypatch.setattr(torch.hub, "_check_hash", lambda *a, **k: None, raising=False)
    encoder = build_component("encoder", {"name": "vgg19", "layer": "relu1_1", "pretrained": True})
    assert encoder.pretrained
    assert torch.equal(encoder.layers[0].weight, reference.features[0].weight)


def test_reachable_says_why_not(monkeypatch):
    import socket

    def refuse(address, timeout):
        assert timeout == 2.0
        raise OSError("refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("GANCR_NETWORK_TIMEOUT", "2")
    assert gancr.storage.pretrained.reachable("https://example.org/x.pth") == "example.org:443 cannot be reached (refused)"


# ----------------------------------------------------------------------------------------
# the table of sources
# ----------------------------------------------------------------------------------------


@pytest.fixture
def own_sources(monkeypatch):
    """Sources registered in a test go away after it."""
    monkeypatch.setattr(gancr.storage.pretrained, "_SOURCES", dict(gancr.storage.pretrained._SOURCES))


def test_the_built_in_sources_are_listed():
    assert {"torchvision", "timm"} <= set(gancr.storage.pretrained.sources())
    with pytest.raises(BuildError, match="no pretrained source 'nope'; the sources are .*torchvision"):
        gancr.storage.pretrained.load_pretrained("nope", "vgg19")


def test_a_new_source_is_one_registered_function(own_sources, tmp_path):
    from gancr.storage.pretrained import Preprocessing, Pretrained, load_pretrained, source

    caffe = Preprocessing(mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0), scale=255.0, channels="BGR")
    asked = []

    @source("caffe", label="Caffe {name}", preprocessing=caffe)
    def _caffe(name: str) -> Pretrained:
        """Converted Caffe weights."""
        asked.append(name)
        return Pretrained({"features.0.weight": torch.ones(1)}, origin="converted", preprocessing=caffe)

    found = load_pretrained("caffe", "vgg16")
    assert asked == ["vgg16"] and found.preprocessing == caffe and found.origin == "converted"
    # a local file in the source's layout gets the source's preprocessing, and its name in messages
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "w.pth")
    local = load_pretrained("caffe", "vgg16", file=tmp_path / "w.pth")
    assert asked == ["vgg16"] and local.preprocessing == caffe
    assert torch.equal(local.state_dict["features.0.weight"], torch.zeros(1))
    from gancr.errors import CheckpointError

    with pytest.raises(CheckpointError, match="Caffe vgg16 weights: no such file"):
        load_pretrained("caffe", "vgg16", file=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="'caffe' is registered already"):
        source("caffe")(_caffe)


def test_an_encoder_normalises_as_its_weights_expect():
    from gancr.components.encoders import _Normalize
    from gancr.storage.pretrained import IMAGENET, Preprocessing

    x = torch.rand(2, 3, 8, 8)
    mean, std = torch.tensor(IMAGENET.mean).view(1, 3, 1, 1), torch.tensor(IMAGENET.std).view(1, 3, 1, 1)
    assert torch.equal(_Normalize(IMAGENET)(x), (x - mean) / std)
    caffe = Preprocessing(mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0), scale=255.0, channels="BGR")
    expected = x.flip(1) * 255 - torch.tensor(caffe.mean).view(1, 3, 1, 1)
    assert torch.allclose(_Normalize(caffe)(x), expected)


def test_vgg_features_keeps_torchvisions_feature_keys_up_to_a_layer():
    from gancr.storage.pretrained import vgg_features

    state = {"features.0.weight": 0, "features.2.weight": 1, "features.10.weight": 2, "classifier.0.weight": 3,
             "extra": 4}
    assert vgg_features(state, 2) == {"0.weight": 0, "2.weight": 1, "extra": 4}
