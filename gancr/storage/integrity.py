"""What makes a stored file trustworthy: a checksum of its content, finite weights, plain data of bounded depth.

- :func:`checksum`: SHA-256 of a tree of tensors and plain data (each tensor's dtype, shape
  and bytes; every key, number and string). A checkpoint stores it under ``checksum``, a
  ``generator.safetensors`` in its metadata; loading recomputes it, so a flipped bit on
  disk is an error instead of a silently different model. Files written before checksums
  existed have none and still load.
- :func:`nonfinite`: the names of tensors that hold NaN or infinity (a generator like that
  stylises to black images: it is neither written nor loaded).
- :func:`depth`: how deeply plain data nests, measured without recursion, so hostile
  metadata (a spec nested thousands of levels deep) is refused before anything recurses.
- :func:`exported_kind` tells an exported ONNX or TorchScript model from a checkpoint, and
  :func:`runs_code` a pickle that ``torch.load(weights_only=True)`` refused because it would
  call a function, so messages can say what a file is.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["checksum", "nonfinite", "depth", "MAX_DEPTH", "exported_kind", "looks_like_safetensors", "runs_code"]

#: The deepest nesting accepted in a spec or in a file's metadata (a real spec nests about 6).
MAX_DEPTH = 64


def _tensor_bytes(t: Any) -> memoryview:
    t = t.detach().to("cpu").contiguous()
    try:
        import torch

        return memoryview(t.reshape(-1).view(torch.uint8).numpy())
    except (RuntimeError, TypeError):  # exotic dtypes: their element bytes as numpy sees them
        return memoryview(t.numpy().tobytes())


class _Key:
    """A dict key on the work stack (told apart from data)."""

    __slots__ = ("key",)

    def __init__(self, key: Any):
        self.key = key


def checksum(data: Any) -> str:
    """SHA-256 (hex) of a tree of dicts, lists, tuples, tensors, numbers, strings and None.

    Dict keys are taken in a canonical order, so the value does not depend on insertion
    order; tensors count by dtype, shape and bytes (not by device or memory layout).
    """
    import torch

    h = hashlib.sha256()
    stack: list[Any] = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            h.update(f"T{x.dtype}{tuple(x.shape)}|".encode())
            h.update(_tensor_bytes(x))
        elif isinstance(x, Mapping):
            keys = sorted(x, key=lambda k: (type(k).__name__, repr(k)))
            h.update(f"D{len(keys)}|".encode())
            for k in reversed(keys):  # popped in order
                stack.append(x[k])
                stack.append(_Key(k))
        elif isinstance(x, _Key):
            h.update(f"K{type(x.key).__name__}:{x.key!r}|".encode())
        elif isinstance(x, (list, tuple)):
            h.update(f"{'L' if isinstance(x, list) else 'U'}{len(x)}|".encode())
            stack.extend(reversed(x))
        elif isinstance(x, (bytes, bytearray)):
            h.update(f"B{len(x)}|".encode())
            h.update(x)
        else:
            h.update(f"V{type(x).__name__}:{x!r}|".encode())
    return h.hexdigest()


def nonfinite(tensors: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors that hold NaN or an infinity."""
    import torch

    return [k for k, v in tensors.items()
            if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex())
            and not bool(torch.isfinite(v).all())]


def depth(data: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``data`` nests (dicts, lists, tuples); stops counting past ``limit`` + 1."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, Mapping):
            children: Any = x.values()
        elif isinstance(x, (list, tuple)):
            children = x
        else:
            continue
        d += 1
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        stack.extend((c, d) for c in children)
    return deepest


def runs_code(exc: BaseException) -> bool:
    """Whether ``torch.load(weights_only=True)`` failed because the pickle names a function or class."""
    text = str(exc)
    return any(t in text for t in ("Unsupported global", "GLOBAL", "is blocked", "Unsupported class"))


def exported_kind(path: str | os.PathLike[str]) -> str | None:
    """``"onnx"`` or ``"torchscript"`` for a file that ``gancr export`` (or PyTorch) wrote as a model, else None."""
    p = Path(path)
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as z:
                names = z.namelist()[:10000]
            if any("/code/" in n or n.endswith("constants.pkl") for n in names):
                return "torchscript"
            return None
        with open(p, "rb") as fh:
            head = fh.read(4096)
    except (OSError, zipfile.BadZipFile):
        return None
    if looks_like_safetensors(p):
        return None
    # an ONNX ModelProto starts with ir_version (field 1: tag 0x08, a small number), then another field's tag
    tags = (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72)
    if p.suffix.lower() == ".onnx" or (len(head) > 2 and head[0] == 0x08 and 1 <= head[1] <= 30 and head[2] in tags):
        return "onnx"
    return None


def looks_like_safetensors(path: str | os.PathLike[str]) -> bool:
    """A safetensors file starts with its header's length (8 bytes, little-endian) and then ``{``."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(9)
        return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < p.stat().st_size
    except OSError:
        return False


