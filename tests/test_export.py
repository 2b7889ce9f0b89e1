"""Export: the generator alone, dynamic batch/height/width, checked against PyTorch.

Sizes here are never the tracing size (64x96), and include odd ones: the generator pads to a
multiple of its reduction and crops back, which must survive export.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import gancr
from gancr.errors import CheckpointError, GancrError
from gancr.inference.export import ExportableGenerator, export_generator, min_input_size, read_metadata
from gancr.inference import load_content_net, load_generator
from gancr.storage import read_generator_file
from inferencekit import run_cli, smooth_image, tiny_spec, write_run

SIZES = [(1, 45, 77), (2, 100, 61)]

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("export") / "run")


def _images(batch: int, h: int, w: int) -> torch.Tensor:
    return torch.cat([smooth_image(h, w, seed=s) for s in range(batch)])


def _onnx_run(path: Path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"image": x.numpy()})[0])


def test_onnx_matches_pytorch_at_unseen_sizes(run, tmp_path):
    out = tmp_path / "g.onnx"
    code, stdout, err = run_cli("export", "--checkpoint", str(run), "--format", "onnx", "--out", str(out))
    assert code == 0, err
    assert "EMA weights" in stdout and "checked against PyTorch" in stdout
    generator = load_generator(run)
    for batch, h, w in SIZES:
        x = _images(batch, h, w)
        with torch.no_grad():
            want = generator(x)
        got = _onnx_run(out, x)
        assert got.shape == want.shape
        assert float((got - want).abs().max()) < 1e-3, (h, w)


def test_onnx_holds_the_generator_alone_with_its_spec(run, tmp_path):
    out = tmp_path / "g.onnx"
    export_generator(run, out, "onnx", check=False)
    model = onnx.load(str(out))
    weights = sum(int(torch.tensor(list(t.dims)).prod()) for t in model.graph.initializer)
    generator = sum(p.numel() for p in load_generator(run).parameters())
    content = sum(p.numel() for p in load_content_net(run).parameters())
    assert abs(weights - generator) < 0.05 * generator < content + generator  # no content net, no D
    meta = read_metadata(out)
    assert meta["gancr.reduction"] == "4" and meta["gancr.ema"] == "true"
    assert gancr.load_spec(__import__("json").loads(meta["gancr.spec"])).model.generator.decoder.name == "unet"
    assert [i.name for i in model.graph.input] == ["image"] and [o.name for o in model.graph.output] == ["stylized"]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


def test_torchscript_matches_pytorch_at_unseen_sizes(run, tmp_path):
    out = tmp_path / "g.pt"
    code, stdout, err = run_cli("export", "--checkpoint", str(run), "--format", "torchscript", "--out", str(out))
    assert code == 0, err
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        scripted = torch.jit.load(str(out))
    generator = load_generator(run)
    for batch, h, w in SIZES:
        x = _images(batch, h, w)
        with torch.no_grad():
            got, want = scripted(x), generator(x)
        assert got.shape == want.shape and float((got - want).abs().max()) < 1e-3
    assert read_metadata(out)["gancr.reduction"] == "4"


def test_safetensors_export_loads_with_load_generator(run, tmp_path):
    out = tmp_path / "g.safetensors"
    code, stdout, err = run_cli("export", "--checkpoint", str(run), "--format", "safetensors", "--out", str(out),
                                "--no-ema")
    assert code == 0, err
    weights = read_generator_file(out)  # the generator alone, not its EMA, no content net
    assert weights.exported and not weights.uses_ema and weights.ema is None and not weights.content_net
    loaded, raw = load_generator(out), load_generator(run, ema=False)
    x = _images(1, 45, 77)
    with torch.no_grad():
        assert torch.equal(loaded(x), raw(x))
        assert not torch.equal(loaded(x), load_generator(run)(x))  # --no-ema: the raw weights
    with pytest.raises(CheckpointError, match="no content-net weights"):
        load_content_net(out)


def test_ema_choice_reaches_onnx(run, tmp_path):
    out = tmp_path / "raw.onnx"
    export_generator(run, out, "onnx", ema=False, check=False)
    x = _images(1, 45, 77)
    with torch.no_grad():
        raw = load_generator(run, ema=False)(x)
    assert float((_onnx_run(out, x) - raw).abs().max()) < 1e-3


# a deeper reduction (8), transposed convolutions, batch norm: the padding trick and the
# dynamic axes must hold for other generators too
OTHER = tiny_spec({
    "generator": {
        "encoder": {"name": "conv", "widths": [8, 8, 16, 16], "norm": "batch"},
        "neck": {"name": "resblocks", "blocks": 1, "norm": "batch"},
        "decoder": {"name": "transposed_conv", "norm": "batch", "output": "sigmoid"},
    },
    "content_net": {"share_encoder": True},
})


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_other_generators_export_exactly(tmp_path, fmt):
    generator = gancr.build(OTHER).generator.eval()
    assert generator.reduction == 8
    result = export_generator(generator, tmp_path / f"g.{fmt}", fmt)
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-3
    x = _images(1, 33, 97)
    with torch.no_grad():
        want = generator(x)
        assert torch.allclose(ExportableGenerator(generator)(x), want, atol=1e-6)
    if fmt == "onnx":
        got = _onnx_run(tmp_path / "g.onnx", x)
        assert float((got - want).abs().max()) < 1e-3


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_residual_generator_with_a_margin_exports_exactly(tmp_path, fmt):
    """x + the learned change, on the reflected frame (an export once dropped both)."""
    spec = {"model": {"generator": {"encoder": {"name": "conv", "widths": [8, 16]}, "neck": {"name": "identity"},
                                    "decoder": {"name": "unet"}, "residual": True, "margin": 6},
                      "content_net": {"share_encoder": True}}}
    generator = gancr.build(spec).generator.eval()
    torch.nn.init.normal_(generator.last_layer, std=0.2)  # a change that is not zero
    x = _images(1, 29, 41)
    with torch.no_grad():
        want = generator(x)
        assert float((want - x).abs().mean()) > 0.01
        assert torch.allclose(ExportableGenerator(generator)(x), want, atol=1e-6)
    result = export_generator(generator, tmp_path / f"g.{fmt}", fmt)
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    if fmt == "onnx":
        assert float((_onnx_run(tmp_path / "g.onnx", x) - want).abs().max()) < 1e-4


def test_an_exported_generator_asks_for_inputs_wider_than_its_margin():
    spec = {"model": {"generator": {"encoder": {"name": "conv", "widths": [8, 16]}, "neck": {"name": "identity"},
                                    "decoder": {"name": "unet"}, "margin": 40},
                      "content_net": {"share_encoder": True}}}
    assert min_input_size(gancr.build(spec).generator) == 41  # a reflection needs more pixels than it adds


def test_export_errors_are_clear(run, tmp_path):
    code, _, err = run_cli("export", "--checkpoint", str(run), "--format", "tflite", "--out", str(tmp_path / "x"))
    assert code == 2 and "invalid choice" in err
    code, _, err = run_cli("export", "--checkpoint", str(run), "--format", "torchscript", "--out",
                           str(tmp_path / "x.pt"), "--opset", "17")
    assert code == 2 and "--opset applies to --format onnx only" in err
    code, _, err = run_cli("export", "--checkpoint", str(tmp_path / "missing"), "--format", "onnx", "--out",
                           str(tmp_path / "x.onnx"))
    assert code == 2 and "missing" in err
    with pytest.raises(GancrError, match="opset 9 is too old"):
        export_generator(run, tmp_path / "x.onnx", "onnx", opset=9)
    with pytest.raises(GancrError, match="unknown format"):
        export_generator(run, tmp_path / "x.bin", "tensorrt")
