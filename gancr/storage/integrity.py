"""What makes a stored file trustworthy: a checksum of its content, finite weights, plain data of bounded depth.

- :func:`checksum`: SHA-256 of a tree of tensors and plain data (each tensor's dtype, shape
  and bytes; every key, number and string). A checkpoint stores it under ``checksum``, a
  ``generator.safetensors`` in its metadata; loading recomputes it, so a flipped bit on
  disk is an error instead of a silently different model. Files written before checksums
  existed have none and still load.
- :func:`nonfinite`: the names of tensors that hold NaN or infinity (a generator like that
  stylises to black images: it is neither written nor loaded).
- :func:`overrun`: where plain data goes past the limits of a spec (:data:`MAX_DEPTH` levels,
  :data:`MAX_VALUES` values), found without recursion and visiting each shared object once,
  so hostile data (a spec nested thousands of levels deep, or a few lines of YAML aliases
  that expand to 10^9 values) is refused before anything recurses into it or expands it.
- :func:`exported_kind` tells an exported ONNX or TorchScript model from a checkpoint, and
  :func:`runs_code` a pickle that ``torch.load(weights_only=True)`` refused because it would
  call a function, so messages can say what a file is.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "checksum", "file_sha256", "nonfinite", "overrun", "Overrun", "MAX_DEPTH", "MAX_VALUES", "exported_kind",
    "looks_like_safetensors", "runs_code",
]

#: The deepest nesting accepted in a spec or in a file's metadata (a real spec nests about 6;
#: each component nested in another, e.g. ``diffaug``'s ``inner``, adds 1).
MAX_DEPTH = 64
#: The most values (mappings, lists, keys and scalars) a spec or a file's metadata may hold,
#: each shared value counted every time it is used: a YAML alias (``*name``), or an object a
#: pickle refers to twice, counts as a copy of what it names. A real spec holds a few hundred.
#: The count stops at the limit, and no object is visited twice, so the distinct values walked
#: are bounded by it too.
MAX_VALUES = 1_000_000


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


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


@dataclass(frozen=True)
class Overrun:
    """Where plain data goes past a limit (see :func:`overrun`).

    Attributes:
        limit: ``"depth"`` (nests deeper than ``bound`` levels), ``"values"`` (holds more than
            ``bound`` values, shared ones counted each time they are used) or ``"cycle"`` (a
            container holds itself, so it has no end).
        bound: the limit that was passed.
        path: the keys and indices from the top to the place.
        nodes: the containers along ``path``, the place's last (to name a YAML anchor among them).
    """

    limit: str
    bound: int
    path: tuple[Any, ...]
    nodes: tuple[Any, ...] = field(repr=False)  # their repr would expand them

    def describe(self) -> str:
        """``nests more than 64 levels deep``-style text (without the place)."""
        if self.limit == "depth":
            return f"nests more than {self.bound} levels deep"
        if self.limit == "values":
            return (f"holds more than {self.bound:,} values, the limit (each use of a shared value, "
                    "such as a YAML alias, counts as a copy of it)")
        return "holds itself (like a YAML alias inside its own anchor), so it has no end"

    def where(self, most: int = 8) -> str:
        """The path as a spec names it (``model.discriminator.inner``), its middle elided when long."""
        parts = [str(p) for p in self.path]
        if len(parts) <= most:
            return ".".join(parts)
        return f"{'.'.join(parts[:most - 1])} ... {len(parts) - most} more ... {parts[-1]}"


def _children(x: Any) -> Iterator[tuple[Any, Any]]:
    """(key, child) of a container; a mapping's keys count as values too (a key of a pickle may be a tuple)."""
    if isinstance(x, Mapping):
        for k, v in x.items():
            yield k, k
            yield k, v
    else:
        yield from enumerate(x)


def overrun(data: Any, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> Overrun | None:
    """The first place where ``data`` (dicts, lists, tuples and scalars) goes past a limit, or None.

    Counts on the object graph: a container used in several places (a YAML alias, an object a
    pickle refers to twice) is walked once, and its size and depth are added wherever it is used,
    so the cost is that of the distinct objects, never of the expanded data, and the walk stops
    as soon as a limit is passed. Without recursion.
    """
    done: dict[int, tuple[int, int]] = {}  # id -> (values, levels) of a container walked whole
    walking: set[int] = set()
    # frames: [container, its children, key in its parent, values so far, levels below so far]
    stack: list[list[Any]] = []
    walked = 0

    def over(limit: str, bound: int, tail: tuple[Any, ...] = (), last: Any = None) -> Overrun:
        path = tuple(f[2] for f in stack[1:]) + tail
        nodes = tuple(f[0] for f in stack) + (() if last is None else (last,))
        return Overrun(limit, bound, path, nodes)

    if not isinstance(data, (Mapping, list, tuple)):
        return None
    stack.append([data, _children(data), None, 1, 0])
    walking.add(id(data))
    if max_depth < 1:
        return over("depth", max_depth)
    while stack:
        frame = stack[-1]
        for key, child in frame[1]:
            walked += 1
            if walked > max_values:
                return over("values", max_values)
            if not isinstance(child, (Mapping, list, tuple)):
                frame[3] += 1
            elif id(child) in walking:
                return over("cycle", max_depth, (key,), child)
            elif id(child) in done:
                values, levels = done[id(child)]
                frame[3] += values
                frame[4] = max(frame[4], levels)
                if len(stack) + levels > max_depth:
                    return over("depth", max_depth, (key,), child)
            else:
                if len(stack) + 1 > max_depth:
                    return over("depth", max_depth, (key,), child)
                stack.append([child, _children(child), key, 1, 0])
                walking.add(id(child))
                break
            if frame[3] > max_values:
                return over("values", max_values)
        else:  # every child walked
            stack.pop()
            walking.discard(id(frame[0]))
            done[id(frame[0])] = (frame[3], frame[4] + 1)
            if stack:
                parent = stack[-1]
                parent[3] += frame[3]
                parent[4] = max(parent[4], frame[4] + 1)
                if parent[3] > max_values:
                    return over("values", max_values)
    return None


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


