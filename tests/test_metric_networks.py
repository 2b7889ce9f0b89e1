"""The metrics' pretrained networks from local files: the FID Inception (through torch-fidelity,
as published FID/KID use it) and LPIPS (the lpips package's learned heads on torchvision's
AlexNet). The files here are randomly initialised networks saved in the published formats."""

from __future__ import annotations

import pytest
import torch

from gancr import metrics as M
from gancr.errors import CheckpointError, GancrError
from gancr.evaluation import evaluate, format_table, markdown_table
from gancr.metrics import inception as inception_module
from gancr.metrics.lpips import LPIPS_BACKBONE_FILE

pytest.importorskip("torch_fidelity")
pytest.importorskip("lpips")


def _images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g)


@pytest.fixture(scope="module")
def fid_file(tmp_path_factory):
    """A random Inception in the FID layout (1008 classes, no aux head), saved like the published file."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
    path = tmp_path_factory.mktemp("hub") / inception_module.FID_INCEPTION_FILES[0]
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    from torchvision.models import alexnet

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("hub") / LPIPS_BACKBONE_FILE
    torch.save(alexnet(weights=None).state_dict(), path)
    return path


def test_fid_inception_is_torch_fidelitys_network_on_8_bit_images(fid_file):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    network = M.FIDInception(fid_file)
    images = [_images(1, 40, 52, 0)[0], _images(1, 64, 48, 1)[0]]  # mixed sizes
    feats = network.features(images)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float32
    reference = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(fid_file))
    for image, f in zip(images, feats):
        (expected,) = reference(((image * 255).round().to(torch.uint8))[None])
        torch.testing.assert_close(f, expected[0], rtol=1e-4, atol=1e-5)
    # a random file is not the published one, and says so
    assert network.info["standard"] is False
    assert network.info["label"].startswith("Inception of FID layout, NOT the standard file")


def test_fid_inception_found_in_torch_hubs_cache_and_labelled_by_its_hash(fid_file, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(fid_file.parent.parent))
    (fid_file.parent.parent / "hub").mkdir(exist_ok=True)
    checkpoints = fid_file.parent.parent / "hub" / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    cached = checkpoints / fid_file.name
    if not cached.exists():
        cached.symlink_to(fid_file)
    assert M.fid_inception_file(None) == cached
    monkeypatch.setattr(inception_module, "FID_INCEPTION_SHA256", inception_module.file_sha256(fid_file)[:8])
    info = M.FIDInception().info
    assert info["standard"] is True and info["label"] == "FID Inception pt_inception-2015-12-05"


def test_fid_inception_refuses_wrong_and_unsafe_files(tmp_path):
    from torchvision.models import inception_v3

    imagenet = tmp_path / "inception_v3_google.pth"
    torch.save(inception_v3(weights=None, aux_logits=False, init_weights=False).state_dict(), imagenet)
    with pytest.raises(GancrError, match="1000 classes: torchvision's ImageNet inception_v3, not the FID Inception"):
        M.FIDInception(imagenet)
    partial = tmp_path / "partial.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, partial)
    with pytest.raises(GancrError, match="is not the FID Inception's state dict: .*Missing key"):
        M.FIDInception(partial)

    class Payload:
        def __reduce__(self):
            return (print, ("this ran",))

    evil = tmp_path / "evil.pth"
    torch.save({"fc.weight": Payload()}, evil)
    with pytest.raises(CheckpointError, match="refuses to unpickle"):
        M.FIDInception(evil)


def test_lpips_is_the_lpips_package_with_the_local_backbone(alexnet_file, monkeypatch):
    import lpips
    import torchvision.models

    x, y = _images(2, 48, 40, 3), _images(2, 48, 40, 4)
    network = M.LPIPS(alexnet_file)
    d = network.distance(x, y)
    assert d.shape == (2,) and bool((d > 0).all())
    assert network.distance(x, x).abs().max() < 1e-6
    # the reference: the lpips package building its own backbone, handed the same AlexNet
    own = torchvision.models.alexnet(weights=None)
    own.load_state_dict(torch.load(alexnet_file, weights_only=True))
    monkeypatch.setattr(torchvision.models, "alexnet", lambda *a, **k: own)
    reference = lpips.LPIPS(net="alex", verbose=False).eval()
    torch.testing.assert_close(d, reference(x, y, normalize=True).flatten().detach(), rtol=1e-4, atol=1e-6)
    assert network.info["label"] == "LPIPS (alex, learned)"


def test_lpips_refuses_a_file_that_is_not_alexnet(tmp_path, fid_file, monkeypatch):
    with pytest.raises(GancrError, match="is not torchvision's AlexNet state dict"):
        M.LPIPS(fid_file)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(M.WeightsUnavailable, match="alexnet-owt-7be5be79.pth.*--lpips-weights FILE"):
        M.LPIPS()


class Invert(torch.nn.Module):
    def forward(self, x):
        return 1 - x


def test_evaluate_loads_each_network_once_and_labels_every_table(fid_file, alexnet_file, monkeypatch):
    loads = []
    real = inception_module.FIDInception.__init__

    def counted(self, *args, **kwargs):
        loads.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(inception_module.FIDInception, "__init__", counted)
    x, s = _images(2, 40, 48, 5), _images(2, 44, 40, 6)
    result = evaluate(Invert(), x, s, inception_weights=fid_file, lpips_weights=alexnet_file,
                      views=1, feature_size=32, kid_subsets=5)
    assert loads == [1]
    f = result["features"]
    assert f["kid_fid"]["features"] == "fid_inception/pool3" and f["kid_fid"]["vectors"] == {"outputs": 2, "style": 2}
    assert f["perceptual_distance"]["features"] == "lpips/alex"
    assert result["metrics"]["content/perceptual_distance"]["metric"] == "lpips"
    table, markdown = format_table(result), markdown_table(result)
    for text in (table, markdown):
        assert "LPIPS (alex, learned)" in text and "NOT the standard file" in text and "fallback" not in text

    # without the files: the fallbacks, labelled as such in the tables
    monkeypatch.setenv("TORCH_HOME", str(fid_file.parent / "empty"))
    fallback = evaluate(Invert(), x, s, views=1, feature_size=32, kid_subsets=5)
    assert fallback["features"]["kid_fid"]["fallback"] is True
    assert fallback["metrics"]["content/perceptual_distance"]["metric"] == "feature_distance"
    for text in (format_table(fallback), markdown_table(fallback)):
        assert "fallback, not FID Inception" in text and "fallback, not LPIPS" in text
    assert "--inception-weights FILE" in format_table(fallback) and "--lpips-weights FILE" in format_table(fallback)
    # a file that is given but wrong is an error, not a silent fallback
    with pytest.raises(GancrError, match="not the FID Inception"):
        evaluate(Invert(), x, s, inception_weights=alexnet_file, views=1, feature_size=32, kid_subsets=5)
