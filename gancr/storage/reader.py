"""The one reader of weight and checkpoint files: safetensors, or ``torch.load(weights_only=True)``; never pickle.

Every file gancr reads tensors from goes through :func:`read_file`: a run's
``generator.safetensors`` and ``checkpoints/step_N.pt``, an encoder's or a metric network's
``weights:`` file, a pretrained file from a cache. Each read, in this order:

1. the file exists, and is not a model that ``gancr export`` wrote (ONNX, TorchScript);
2. the bytes of tensors it declares fit in the free memory — checked before anything is read
   (a safetensors header is parsed here, without the library, so a hostile header cannot make
   it map or allocate anything; a ``torch.save`` zip lists its entries' sizes);
3. safetensors through the ``safetensors`` library; anything else through
   ``torch.load(weights_only=True)``, which refuses a pickle that would call a function or
   build an object — with one message, :func:`refusal`, wherever it happens.

What the data means (a checkpoint, a generator file, a state dict) is for the callers:
:mod:`gancr.storage.records` and :func:`read_state_dict`.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gancr.errors import CheckpointError
from gancr.devices import available_memory
from gancr.storage.files import human_size
from gancr.storage.integrity import exported_kind, looks_like_safetensors, runs_code

if TYPE_CHECKING:  # torch loads when a file is read, not on import
    from torch import Tensor

__all__ = ["StoredFile", "read_file", "read_state_dict", "state_dict_of", "safetensors_header", "refusal",
           "check_memory", "MAX_HEADER"]

#: The longest safetensors header gancr reads (the safetensors library's own limit).
MAX_HEADER = 100_000_000

_EXPORTED = {"onnx": "an ONNX model", "torchscript": "a TorchScript model"}


@dataclass(frozen=True)
class StoredFile:
    """What :func:`read_file` read.

    Attributes:
        path: the file.
        format: ``"safetensors"`` or ``"torch"`` (a ``torch.save`` file).
        data: a safetensors file's tensors by name; a torch file's content (plain data and tensors).
        metadata: a safetensors file's metadata (strings); empty for a torch file.
    """

    path: Path
    format: Literal["safetensors", "torch"]
    data: Any
    metadata: dict[str, str]


def refusal(path: str | os.PathLike[str], what: str) -> CheckpointError:
    """The one message for a file whose pickle would run code (a class or a function in it)."""
    return CheckpointError(
        f"{what} {path} holds Python objects besides tensors and plain data; gancr refuses to unpickle it "
        "(a pickle can run code). Load only files gancr wrote, and save weights as a plain state dict or "
        "safetensors."
    )


def _refuse_exported(path: Path, what: str) -> None:
    kind = exported_kind(path)
    if kind is not None:
        raise CheckpointError(
            f"{path} is {_EXPORTED[kind]} (what `gancr export --format {kind}` writes), not a run or a state "
            f"dict ({what} expected): gancr stylize, eval and export read a run directory, its "
            "generator.safetensors or a checkpoints/step_N.pt, and a weights: option a state dict (.pth or "
            f".safetensors). Pass the run directory the model was exported from; to run {path.name} itself, "
            "see docs/deploying.md"
        )


def check_memory(path: Path, declared: int, what: str) -> None:
    """Refuse ``path`` when the ``declared`` bytes it unpacks to exceed the free memory."""
    free = available_memory()
    if free is not None and declared > free:
        raise CheckpointError(
            f"{what} {path} declares {human_size(declared)} of tensors, more than the {human_size(free)} of free "
            "memory; it is not a file gancr wrote for this model, or it needs a bigger machine"
        )


def safetensors_header(path: str | os.PathLike[str], what: str = "file") -> dict[str, Any]:
    """A safetensors file's header (tensor entries and ``__metadata__``), read without the library.

    Raises:
        CheckpointError: not a safetensors header (too short, too long, not a JSON mapping).
    """
    path = Path(path)
    unreadable = f"{what} {path} is not a readable safetensors file"
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{unreadable}: it is {len(head)} bytes long")
            n = int.from_bytes(head, "little")
            if n > MAX_HEADER:
                raise CheckpointError(f"{unreadable}: it declares a header of {human_size(n)}")
            text = fh.read(n)
    except OSError as exc:
        raise CheckpointError(f"{unreadable}: {exc.strerror or exc}") from None
    try:
        header = json.loads(text)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{unreadable}: its header is not JSON") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{unreadable}: its header is not a mapping")
    return header


def _declared_bytes(header: dict[str, Any]) -> int:
    """The bytes of tensor data a safetensors header declares (the end of its last tensor)."""
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"
            and isinstance(entry, dict) and isinstance(entry.get("data_offsets"), list)
            and len(entry["data_offsets"]) == 2 and isinstance(entry["data_offsets"][1], int)]
    return max(ends, default=0)


def _read_safetensors(path: Path, what: str) -> StoredFile:
    from safetensors import SafetensorError, safe_open

    check_memory(path, _declared_bytes(safetensors_header(path, what)), what)  # before anything is mapped
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{what} {path} is not a readable safetensors file: {exc}") from None
    except MemoryError:
        raise CheckpointError(f"{what} {path}: not enough memory to read its tensors") from None
    return StoredFile(path, "safetensors", tensors, metadata)


def _torch_declared_bytes(path: Path) -> int:
    """About the bytes a ``torch.save`` file unpacks to: its zip entries' sizes (an old, unzipped
    file: its own size)."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                return sum(i.file_size for i in z.infolist())
        except zipfile.BadZipFile:
            pass
    return path.stat().st_size


def _read_torch(path: Path, what: str, map_location: Any) -> StoredFile:
    import torch

    check_memory(path, _torch_declared_bytes(path), what)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (MemoryError, RecursionError) as exc:
        raise CheckpointError(f"cannot read {what} {path}: {type(exc).__name__} (a hostile or corrupt file?)") from None
    except Exception as exc:  # noqa: BLE001 - the unpickler raises many kinds
        if runs_code(exc):
            raise refusal(path, what) from None
        text = str(exc)
        detail = text.partition("WeightsUnpickler error:")[2].strip().split("\n")[0]
        detail = detail or f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
        raise CheckpointError(f"cannot read {what} {path} (not a torch.save or safetensors file?): {detail}") from None
    return StoredFile(path, "torch", data, {})


def read_file(path: str | os.PathLike[str], what: str, *, map_location: Any = "cpu") -> StoredFile:
    """Read a safetensors or ``torch.save`` file safely (see the module's docstring).

    Args:
        path: the file (``~`` is expanded). A ``.safetensors`` name, or content that starts as
            safetensors does, is read as safetensors; anything else with ``torch.load``.
        what: what the file is for, as messages name it (``"checkpoint"``, ``"vgg19 weights"``).
        map_location: where a torch file's tensors go (safetensors are read on the CPU).

    Raises:
        CheckpointError: missing, an exported model, too big for the free memory, unreadable,
            or a pickle that would run code; the message names the file.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"{what}: no such file {p}")
    _refuse_exported(p, what)
    if p.suffix == ".safetensors" or looks_like_safetensors(p):
        return _read_safetensors(p, what)
    return _read_torch(p, what, map_location)


def read_state_dict(path: str | os.PathLike[str], what: str = "weights") -> dict[str, Tensor]:
    """A network's state dict from ``.safetensors`` or a ``torch.save`` file, on the CPU.

    A dict that wraps the weights under ``state_dict`` or ``model`` is unwrapped.

    Raises:
        CheckpointError: see :func:`read_file`; or the file holds something else than a mapping
            of names to tensors.
    """
    return state_dict_of(read_file(path, what), what)


def state_dict_of(stored: StoredFile, what: str = "weights") -> dict[str, Tensor]:
    """The state dict a file :func:`read_file` read holds (unwrapped from ``state_dict`` or ``model``).

    Raises:
        CheckpointError: the file holds something else than a mapping of names to tensors.
    """
    import torch

    data = stored.data
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{what} {stored.path} is not a state dict (a mapping of names to tensors)")
    return data
