"""Export a trained generator alone: ONNX, TorchScript or a generator-only safetensors file.

The content-retention net and the discriminator stay behind. Exported models take any
height and width (and batch): ``image`` ``(N, 3, H, W)`` float32 in [0, 1] gives
``stylized`` of the same shape.

The generator pads its input to a multiple of its reduction and crops the output back.
Its own ``forward`` picks the padding in Python (``if`` the size is already a multiple...),
which a tracer would freeze at the example's size. :class:`ExportableGenerator` computes
the same thing with no size-dependent branch: it always reflection-pads by
``reduction - 1`` pixels, then slices to the next multiple of the reduction (the first
``k`` rows of a reflection pad do not depend on how many rows it adds), so the traced
graph holds ``Shape``/``Slice`` operations instead of constants. The result equals the
generator's for any image of at least ``reduction`` pixels per side (a reflection pad must
be smaller than the image); gancr's ``stylize`` additionally pads images smaller than
``max(32, 2 x reduction)`` (replicate) and crops back, and so should a caller of the
exported model.

ONNX goes through PyTorch's TorchScript-based exporter (``dynamo=False``): it needs no
package besides ``onnx``, exports in seconds, and its graphs ran as fast as the
``torch.export``-based exporter's in onnxruntime on this project's models (see
docs/deploying.md). Every export is checked by default: the exported model is run next to
PyTorch on an image of a size it was not traced at.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancr.errors import GancrError
from gancr.inference.load import load_generator
from gancr.storage.files import atomic_write, check_output, write_bytes
from gancr.trio import apply_change
from gancr.storage.records import InferenceWeights, generator_file_bytes

__all__ = [
    "FORMATS",
    "ExportableGenerator",
    "ExportResult",
    "export_generator",
    "export_onnx",
    "export_torchscript",
    "export_safetensors",
    "min_input_size",
    "read_metadata",
    "DEFAULT_OPSET",
]

FORMATS: tuple[str, ...] = ("onnx", "torchscript", "safetensors")
DEFAULT_OPSET = 17
#: The size the graph is traced at, and the (different, odd) size it is checked at.
TRACE_SIZE = (64, 96)
CHECK_SIZE = (67, 93)


def min_input_size(generator: nn.Module) -> int:
    """The least height and width to give an exported generator (``stylize`` pads smaller ones)."""
    return max(32, 2 * int(getattr(generator, "reduction", 1)), int(getattr(generator, "margin", 0)) + 1)


class ExportableGenerator(nn.Module):
    """A gancr generator whose padding traces into size-independent operations.

    Same output as ``generator(x)`` (residual and margin included) for inputs of at least
    ``generator.reduction`` pixels, and more than its ``margin``, per side.
    """

    def __init__(self, generator: nn.Module):
        super().__init__()
        for part in ("encoder", "neck", "decoder", "reduction"):
            if not hasattr(generator, part):
                raise GancrError(f"export: expected a gancr generator (encoder, neck, decoder), got {type(generator).__name__}")
        self.encoder = generator.encoder
        self.neck = generator.neck
        self.decoder = generator.decoder
        self.reduction = int(generator.reduction)
        self.residual = bool(getattr(generator, "residual", False))
        self.margin = int(getattr(generator, "margin", 0))

    def forward(self, x: Tensor) -> Tensor:
        image = x
        m = self.margin
        if m:
            x = F.pad(x, (m, m, m, m), mode="reflect")
        h, w = x.shape[2], x.shape[3]
        r = self.reduction
        if r > 1:
            padded_h = (h + r - 1) // r * r
            padded_w = (w + r - 1) // r * r
            x = F.pad(x, (0, r - 1, 0, r - 1), mode="reflect")[:, :, :padded_h, :padded_w]
        features = self.encoder(x)
        features = [*features[:-1], self.neck(features[-1])]
        out = self.decoder(features)[:, :, m:h - m, m:w - m]
        if self.residual:
            return apply_change(image, out)
        return out


@dataclass
class ExportResult:
    """What :func:`export_generator` wrote, and how the check went."""

    path: Path
    format: str
    ema: bool
    reduction: int
    max_abs_diff: float | None = None
    checked_shape: tuple[int, ...] | None = None

    def summary(self) -> str:
        weights = "EMA weights" if self.ema else "weights"
        lines = [
            f"exported the generator ({weights}) to {self.path} ({self.format})",
        ]
        if self.format != "safetensors":
            lines.append(
                f"  input 'image' (N, 3, H, W) float32 in [0, 1], any H, W >= {max(32, 2 * self.reduction)} "
                f"(reduction {self.reduction}); output 'stylized', same shape"
            )
        else:
            lines.append("  load it with gancr.load_generator(path) or gancr stylize --checkpoint")
        if self.max_abs_diff is not None and self.checked_shape is not None:
            shape = "x".join(map(str, self.checked_shape))
            lines.append(f"  checked against PyTorch at {shape}: max |difference| {self.max_abs_diff:.2e}")
        return "\n".join(lines)


def _metadata(generator: nn.Module) -> dict[str, str]:
    spec = getattr(generator, "spec", None)
    meta = {
        "gancr.format": "gancr.generator",
        "gancr.reduction": str(int(generator.reduction)),
        "gancr.min_size": str(min_input_size(generator)),
        "gancr.input": "image: (N, 3, H, W) float32 RGB in [0, 1]",
        "gancr.output": "stylized: (N, 3, H, W) float32 RGB in [0, 1]",
        "gancr.ema": json.dumps(bool(getattr(generator, "uses_ema", False))),
    }
    if spec is not None:
        meta["gancr.spec"] = json.dumps(spec.to_dict())
    return meta


def _example(generator: nn.Module, size: tuple[int, int], batch: int = 1, seed: int = 0) -> Tensor:
    param = next(generator.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, *size, generator=g).to(device)


@contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Silence the tracer's and the legacy exporter's warnings (the check afterwards is the proof)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        for message in ("legacy TorchScript-based ONNX export", "ONNX export mode is set to", "Constant folding",
                        "is deprecated", "will be removed"):
            warnings.filterwarnings("ignore", message=f".*{message}.*")
        yield


def export_onnx(generator: nn.Module, out: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET,
                check: bool = True) -> ExportResult:
    """Write ``generator`` as ONNX with dynamic batch, height and width.

    The file is written atomically, and checked before it replaces what was at ``out``: a
    failed export or check leaves the previous file as it was.

    Args:
        generator: a loaded generator (:func:`gancr.load_generator`), in eval mode.
        out: the ``.onnx`` file.
        opset: the ONNX opset (11 or later; 17 by default).
        check: run the file in onnxruntime next to PyTorch at a size it was not traced at
            (needs onnxruntime) and report the largest difference.
    """
    try:
        import onnx
    except ImportError:
        raise GancrError('export --format onnx needs the onnx package: pip install "gancr[onnx]"') from None
    if opset < 11:
        raise GancrError(f"export: opset {opset} is too old; use 11 or later (the default is {DEFAULT_OPSET})")
    out = check_output(out)
    model = ExportableGenerator(generator).eval()
    example = _example(generator, TRACE_SIZE)
    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    try:
        with _quiet_tracing(), torch.no_grad():
            torch.onnx.export(
                model, (example,), buffer, dynamo=False, opset_version=opset,
                input_names=["image"], output_names=["stylized"],
                dynamic_axes={"image": axes, "stylized": axes}, do_constant_folding=True,
            )
    except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds
        raise GancrError(f"export: the ONNX exporter failed on this generator: {type(exc).__name__}: {exc}") from None
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in _metadata(generator).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "gancr"
    data = proto.SerializeToString()
    result = ExportResult(out, "onnx", bool(getattr(generator, "uses_ema", False)), int(generator.reduction))

    def write(tmp: Path) -> None:
        write_bytes(tmp, data)
        if not check:
            return
        try:
            import onnxruntime as ort
        except ImportError:
            warnings.warn("export: onnxruntime is not installed, so the exported file was not checked", stacklevel=4)
            return
        x = _example(generator, CHECK_SIZE, batch=2, seed=1)
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"image": x.cpu().numpy()})[0])
        result.max_abs_diff, result.checked_shape = _compare(generator, x, got), tuple(x.shape)

    atomic_write(out, write, needed=len(data))
    return result


def export_torchscript(generator: nn.Module, out: str | os.PathLike[str], *, check: bool = True) -> ExportResult:
    """Write ``generator`` as a traced TorchScript module (``torch.jit.load`` reads it).

    The spec and the input contract are stored as extra files (``gancr.json``). The file is
    written atomically, and checked before it replaces what was at ``out``.
    """
    out = check_output(out)
    model = ExportableGenerator(generator).eval()
    example = _example(generator, TRACE_SIZE)
    try:
        # a trace records each convolution's allow_tf32 flag: trace in full fp32, so the
        # module computes in fp32 wherever it runs (on CUDA, PyTorch's default is TF32)
        with _quiet_tracing(), torch.no_grad(), _full_fp32():
            traced = torch.jit.trace(model, (example,), check_trace=False)
    except Exception as exc:  # noqa: BLE001 - the tracer raises many kinds
        raise GancrError(f"export: TorchScript tracing failed on this generator: {type(exc).__name__}: {exc}") from None
    extra = {"gancr.json": json.dumps(_metadata(generator), indent=1)}
    buffer = io.BytesIO()
    with _quiet_tracing():
        torch.jit.save(traced, buffer, _extra_files=extra)  # in memory: a full disk cannot abort the process
    data = buffer.getvalue()
    result = ExportResult(out, "torchscript", bool(getattr(generator, "uses_ema", False)), int(generator.reduction))

    def write(tmp: Path) -> None:
        write_bytes(tmp, data)
        if check:
            x = _example(generator, CHECK_SIZE, batch=2, seed=1)
            with _quiet_tracing():
                loaded = torch.jit.load(str(tmp), map_location=x.device)
            with torch.no_grad(), _full_fp32():
                got = loaded(x)
            result.max_abs_diff, result.checked_shape = _compare(generator, x, got), tuple(x.shape)

    atomic_write(out, write, needed=len(data))
    return result


def export_safetensors(generator: nn.Module, out: str | os.PathLike[str], *, check: bool = True) -> ExportResult:
    """Write the generator's weights and spec (:class:`~gancr.storage.InferenceWeights`): a file for ``load_generator``.

    Only the chosen weights are kept (EMA or not); no content net, no discriminator. The file
    is written atomically, and checked before it replaces what was at ``out``.
    """
    spec = getattr(generator, "spec", None)
    if spec is None:
        raise GancrError("export --format safetensors needs a generator with its spec (use gancr.load_generator)")
    out = check_output(out)
    ema = bool(getattr(generator, "uses_ema", False))
    result = ExportResult(out, "safetensors", ema, int(generator.reduction))
    weights = InferenceWeights(spec.to_dict(), generator.state_dict(), exported=True, uses_ema=ema)
    data = generator_file_bytes(weights, out)

    def write(tmp: Path) -> None:
        write_bytes(tmp, data)
        if check:
            x = _example(generator, CHECK_SIZE, batch=2, seed=1)
            loaded = load_generator(tmp, device=x.device)
            with torch.no_grad(), _full_fp32():
                got = loaded(x)
            result.max_abs_diff, result.checked_shape = _compare(generator, x, got), tuple(x.shape)

    atomic_write(out, write, needed=len(data))
    return result


@contextmanager
def _full_fp32() -> Iterator[None]:
    """No TF32 on CUDA (PyTorch's default for convolutions there), so the check compares fp32 with fp32."""
    matmul = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


def _compare(generator: nn.Module, x: Tensor, got: Tensor) -> float:
    """The largest difference of the exported model's output from PyTorch's; NaN or infinity fails."""
    with torch.no_grad(), _full_fp32():
        want = generator(x)
    if tuple(got.shape) != tuple(want.shape):
        raise GancrError(f"export check: the exported model gave shape {tuple(got.shape)}, PyTorch {tuple(want.shape)}")
    for name, y in (("the generator (in PyTorch)", want), ("the exported model", got)):
        if not bool(torch.isfinite(y).all()):
            raise GancrError(f"export check: {name} outputs NaN or infinite values; nothing was written")
    difference = float((got.to(want.device).float() - want.float()).abs().max())
    if not math.isfinite(difference):
        raise GancrError(f"export check: the difference from PyTorch is {difference}; nothing was written")
    return difference


def export_generator(
    checkpoint: str | os.PathLike[str] | nn.Module,
    out: str | os.PathLike[str],
    format: str = "onnx",
    *,
    ema: bool = True,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
) -> ExportResult:
    """Export a run's generator (alone) as ``onnx``, ``torchscript`` or ``safetensors``.

    Args:
        checkpoint: a run directory, ``generator.safetensors``, a checkpoint, or a loaded generator.
        out: the file to write.
        format: ``onnx``, ``torchscript`` or ``safetensors``.
        ema: use the EMA weights when the run kept them.
        opset: the ONNX opset (ONNX only).
        check: compare the exported model with PyTorch on a size it was not traced at.

    Example:
        >>> import gancr, tempfile, os
        >>> trio = gancr.build({"model": {"generator": {"encoder": {"name": "conv", "widths": [8, 16]},
        ...     "neck": {"name": "identity"}}, "content_net": {"share_encoder": True}}})
        >>> path = os.path.join(tempfile.mkdtemp(), "g.pt")
        >>> r = export_generator(trio.generator.eval(), path, "torchscript")
        >>> r.max_abs_diff < 1e-4
        True
    """
    if format not in FORMATS:
        raise GancrError(f"export: unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if isinstance(checkpoint, nn.Module):
        generator = checkpoint.eval()
    else:
        generator = load_generator(checkpoint, ema=ema, device="cpu")
    if format == "onnx":
        return export_onnx(generator, out, opset=opset, check=check)
    if format == "torchscript":
        return export_torchscript(generator, out, check=check)
    return export_safetensors(generator, out, check=check)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The gancr metadata stored in an exported ONNX or TorchScript file."""
    p = Path(path)
    if p.suffix == ".onnx":
        import onnx

        proto = onnx.load(str(p), load_external_data=False)
        return {e.key: e.value for e in proto.metadata_props}
    extra = {"gancr.json": ""}
    with _quiet_tracing():
        torch.jit.load(str(p), _extra_files=extra)
    return json.loads(extra["gancr.json"])
