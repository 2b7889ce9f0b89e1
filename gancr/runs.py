"""The run directory as data: atomic writes, checkpoints, the generator file, a run read once.

:class:`~gancr.training.Trainer` writes a run directory::

    RUN/spec.yaml                   the resolved spec
    RUN/metrics.jsonl               one line of metrics per logged step
    RUN/checkpoints/step_N.pt       the newest few checkpoints (everything a resume needs)
    RUN/samples/step_N.png          sample grids
    RUN/generator.safetensors       at the end: the generator (and EMA) and content-net weights, with the spec

Inference, export and evaluation read it with :func:`read_run`, once: the weights file is
found (``generator.safetensors``, else the newest checkpoint that loads) and read in one go.

A checkpoint is data, not code: tensors, numbers, strings and containers of them, written
with ``torch.save`` and read back with ``torch.load(weights_only=True)``, so a file that
holds arbitrary Python objects is refused instead of executed. Every file is written to a
temporary name in the same folder and renamed into place (:mod:`gancr.files`), so a run
killed at any moment leaves the last complete checkpoint loadable. Checkpoints and generator
files carry a checksum of their content (:mod:`gancr.integrity`), verified on load: a
changed byte is an error, and a resume falls back to the checkpoint before.
"""

from __future__ import annotations

import json
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gancr.errors import CheckpointError
from gancr.files import atomic_write, atomic_write_bytes, atomic_write_stream, atomic_write_text, human_size
from gancr.integrity import MAX_DEPTH, checksum, depth, exported_kind, looks_like_safetensors, nonfinite, runs_code
from gancr.resources import available_memory

if TYPE_CHECKING:  # torch loads when a checkpoint is written or read, not on import
    from torch import Tensor

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_write_stream",
    "exported_kind",
    "checkpoint_path",
    "save_checkpoint",
    "load_checkpoint",
    "list_checkpoints",
    "latest_checkpoint",
    "load_latest_checkpoint",
    "prune_checkpoints",
    "save_generator",
    "generator_file_bytes",
    "read_generator_file",
    "resolve_weights_path",
    "run_files",
    "clear_run_files",
    "RunWeights",
    "read_run",
    "CHECKPOINT_VERSION",
]

CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^step_(\d+)\.pt$")


# ----------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step_{step:07d}.pt"


def _tensor_bytes(data: Any) -> int:
    """The bytes of every tensor in a tree of plain data (about a file's size)."""
    import torch

    total, stack = 0, [data]
    while stack:
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            total += x.numel() * x.element_size()
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
    return total


def save_checkpoint(directory: str | os.PathLike[str], step: int, state: dict[str, Any]) -> Path:
    """Write ``state`` as ``<directory>/step_<step>.pt``, atomically, with its checksum.

    Raises:
        WriteError: the disk is full or the place not writable (no partial file is left;
            older checkpoints are untouched).
    """
    import torch

    state = {"version": CHECKPOINT_VERSION, "step": step, **state}
    state["checksum"] = checksum(state)
    return atomic_write_stream(checkpoint_path(Path(directory), step), lambda fh: torch.save(state, fh),
                               needed=_tensor_bytes(state))


def _not_a_checkpoint(path: Path, kind: str) -> CheckpointError:
    what = {"onnx": "an ONNX model", "torchscript": "a TorchScript model"}[kind]
    return CheckpointError(
        f"{path} is {what} (what `gancr export --format {kind}` writes), not a run: gancr stylize, eval "
        f"and export read a run directory, its generator.safetensors or a checkpoints/step_N.pt. Pass the "
        f"run directory the model was exported from; to run {path.name} itself, see docs/deploying.md"
    )


def _check_memory(path: Path, declared: int, what: str) -> None:
    free = available_memory()
    if free is not None and declared > free:
        raise CheckpointError(
            f"{path} declares {human_size(declared)} of {what}, more than the {human_size(free)} of free "
            "memory; it is not a file gancr wrote for this model, or it needs a bigger machine"
        )


def _verify(path: Path, stored: Any, actual: str) -> None:
    if stored != actual:
        raise CheckpointError(
            f"{path} is corrupt: its content does not match the checksum stored in it (a changed byte on "
            "disk or in transfer); gancr does not load it"
        )


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) and verify its checksum.

    Raises:
        CheckpointError: missing, truncated or corrupt, holding arbitrary objects, or an
            exported model instead of a checkpoint.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    kind = exported_kind(path)
    if kind is not None:
        raise _not_a_checkpoint(path, kind)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                _check_memory(path, sum(i.file_size for i in z.infolist()), "tensors")
        except zipfile.BadZipFile:
            pass
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (MemoryError, RecursionError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__} (a hostile or corrupt file?)") from None
    except Exception as exc:  # noqa: BLE001 - pickle raises many kinds
        text = str(exc)
        if runs_code(exc):
            raise CheckpointError(
                f"{path} holds Python objects besides tensors and plain data; gancr refuses to "
                "unpickle it (a checkpoint could run code). Only load checkpoints gancr wrote."
            ) from None
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {text.splitlines()[0] if text else ''}") from None
    if not isinstance(state, dict) or "models" not in state or "step" not in state:
        raise CheckpointError(f"{path} is not a gancr checkpoint (no models/step)")
    if depth(state.get("spec"), MAX_DEPTH) > MAX_DEPTH:
        raise CheckpointError(f"{path}: its stored spec nests more than {MAX_DEPTH} levels deep; not a spec gancr wrote")
    if "checksum" in state:  # files of gancr 0.1 have none
        stored = state.pop("checksum")
        _verify(path, stored, checksum(state))
    return state


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_latest_checkpoint(directory: str | os.PathLike[str], map_location: Any = "cpu") -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``directory`` that loads, with its state (corrupt ones are skipped)."""
    for step, path in reversed(list_checkpoints(directory)):
        try:
            return path, load_checkpoint(path, map_location=map_location)
        except CheckpointError as exc:
            warnings.warn(f"skipping checkpoint {path.name}: {exc}", stacklevel=2)
    return None


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The newest checkpoint in ``directory`` that loads, or None (corrupt ones are skipped)."""
    found = load_latest_checkpoint(directory)
    return found[0] if found else None


def prune_checkpoints(directory: str | os.PathLike[str], keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints; returns the deleted paths."""
    found = list_checkpoints(directory)
    removed = []
    for _, path in found[:-keep] if keep > 0 else found:
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# ----------------------------------------------------------------------------------------
# the inference file: generator.safetensors
# ----------------------------------------------------------------------------------------


def _generator_checksum(tensors: dict[str, Tensor], metadata: dict[str, str]) -> str:
    return checksum({"tensors": tensors, "metadata": {k: v for k, v in metadata.items() if k != "checksum"}})


def save_generator(path: str | os.PathLike[str], tensors: dict[str, Tensor], spec: dict[str, Any],
                   extra: dict[str, Any] | None = None) -> Path:
    """Write the inference weights (``generator/``, ``ema/``, ``content_net/`` prefixes) with the spec.

    The metadata holds the spec, ``extra`` and a checksum of everything.

    Raises:
        CheckpointError: a tensor holds NaN or infinity (such a generator stylises to black).
        WriteError: the disk is full or the place not writable (the old file stays).
    """
    return atomic_write_bytes(path, generator_file_bytes(tensors, spec, extra, path))


def generator_file_bytes(tensors: dict[str, Tensor], spec: dict[str, Any], extra: dict[str, Any] | None = None,
                         path: str | os.PathLike[str] = "the generator file") -> bytes:
    """The bytes of a generator file (see :func:`save_generator`); ``path`` names it in errors."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    bad = nonfinite(tensors)
    if bad:
        raise CheckpointError(
            f"refusing to write {path}: {len(bad)} of its {len(tensors)} tensors hold NaN or infinite values "
            f"(e.g. {', '.join(bad[:3])}); the training diverged, lower the learning rates or loss weights"
        )
    metadata = {"format": "gancr.generator", "version": str(CHECKPOINT_VERSION), "spec": json.dumps(spec)}
    for key, value in (extra or {}).items():
        metadata[key] = json.dumps(value)
    metadata["checksum"] = _generator_checksum(tensors, metadata)
    return save(tensors, metadata=metadata)


#: The longest safetensors header gancr reads (the safetensors library's own limit).
MAX_HEADER = 100_000_000


def _declared_bytes(path: Path) -> int:
    """The bytes of tensor data a safetensors header declares, read without the library (so a
    hostile header cannot make it map or allocate anything)."""
    unreadable = f"{path} is not a readable safetensors file"
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{unreadable}: it is {len(head)} bytes long")
        n = int.from_bytes(head, "little")
        if n > MAX_HEADER:
            raise CheckpointError(f"{unreadable}: it declares a header of {human_size(n)}")
        text = fh.read(n)
    try:
        header = json.loads(text)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{unreadable}: its header is not JSON") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{unreadable}: its header is not a mapping")
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"
            and isinstance(entry, dict) and isinstance(entry.get("data_offsets"), list)
            and len(entry["data_offsets"]) == 2 and isinstance(entry["data_offsets"][1], int)]
    return max(ends, default=0)


def _json_value(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
    except RecursionError:
        return None  # reported by the depth check of its reader


def read_generator_file(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and metadata (``spec`` parsed) of a ``generator.safetensors`` file, its checksum verified.

    The sizes its header declares are checked against the free memory before anything is read.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no generator file at {path}")
    kind = exported_kind(path)
    if kind is not None:
        raise _not_a_checkpoint(path, kind)
    _check_memory(path, _declared_bytes(path), "tensors")  # before anything is mapped or read
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None
    except MemoryError:
        raise CheckpointError(f"{path}: not enough memory to read its tensors") from None
    if metadata.get("format") != "gancr.generator" or "spec" not in metadata:
        raise CheckpointError(f"{path} is not a gancr generator file (no spec in its metadata)")
    if "checksum" in metadata:  # files of gancr 0.1 have none
        _verify(path, metadata["checksum"], _generator_checksum(tensors, metadata))
    meta: dict[str, Any] = {key: _json_value(value) for key, value in metadata.items()}
    if depth(meta, MAX_DEPTH) > MAX_DEPTH or meta["spec"] is None:
        raise CheckpointError(f"{path}: its metadata nests more than {MAX_DEPTH} levels deep; not a file gancr wrote")
    return tensors, meta


# ----------------------------------------------------------------------------------------
# a run's files
# ----------------------------------------------------------------------------------------

#: What a run writes into its folder (``checkpoints/`` and ``samples/`` count by their files).
RUN_FILES = ("spec.yaml", "metrics.jsonl", "generator.safetensors", "checkpoints", "samples", "stylized",
             "tensorboard")


def run_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The files and non-empty folders of a run in ``folder`` (empty when none)."""
    folder = Path(folder)
    found = []
    for name in RUN_FILES:
        p = folder / name
        if p.is_file() or (p.is_dir() and any(p.iterdir())):
            found.append(p)
    return found


def clear_run_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete a run's files from ``folder`` (:data:`RUN_FILES`; anything else stays); returns them."""
    import shutil

    removed = run_files(folder)
    for p in removed:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    return removed


# ----------------------------------------------------------------------------------------
# a run, read once
# ----------------------------------------------------------------------------------------


def resolve_weights_path(path: str | os.PathLike[str]) -> Path:
    """A run directory, ``generator.safetensors`` or a checkpoint ``.pt`` -> the file to read.

    A run directory gives its ``generator.safetensors`` when training finished, else its
    newest complete checkpoint.
    """
    p = Path(path)
    if p.is_dir():
        if (p / "generator.safetensors").is_file():
            return p / "generator.safetensors"
        ckpt = latest_checkpoint(p / "checkpoints")
        if ckpt is None:
            raise CheckpointError(f"{p} holds neither generator.safetensors nor a checkpoint in checkpoints/")
        return ckpt
    if not p.is_file():
        raise CheckpointError(f"no run directory, generator file or checkpoint at {p}")
    return p


@dataclass(frozen=True)
class RunWeights:
    """What inference needs of a run, read from one file.

    Attributes:
        path: the file that was read (``generator.safetensors`` or a checkpoint).
        spec: the resolved spec stored with the weights, as plain data (not validated here).
        generator: the generator's state dict.
        ema: the EMA generator's state dict, or None when the run kept none.
        content_net: the content net's state dict (empty when the file holds none).
    """

    path: Path
    spec: dict[str, Any]
    generator: dict[str, Tensor]
    ema: dict[str, Tensor] | None
    content_net: dict[str, Tensor]


def read_run(path: str | os.PathLike[str]) -> RunWeights:
    """Read the weights and spec of a run directory, ``generator.safetensors`` or checkpoint, once.

    A run directory gives its ``generator.safetensors`` when training finished, else its
    newest checkpoint that loads (corrupt ones are skipped with a warning).

    Raises:
        CheckpointError: nothing to read there, an unreadable or unsafe file, or no spec in it.
    """
    p = Path(path)
    if p.is_dir():
        if (p / "generator.safetensors").is_file():
            return _generator_file_weights(p / "generator.safetensors")
        found = load_latest_checkpoint(p / "checkpoints")
        if found is None:
            raise CheckpointError(f"{p} holds neither generator.safetensors nor a checkpoint in checkpoints/")
        return _checkpoint_weights(*found)
    if not p.is_file():
        raise CheckpointError(f"no run directory, generator file or checkpoint at {p}")
    if p.suffix == ".safetensors" or looks_like_safetensors(p):
        return _generator_file_weights(p)
    return _checkpoint_weights(p, load_checkpoint(p))

def _generator_file_weights(path: Path) -> RunWeights:
    tensors, meta = read_generator_file(path)

    def strip(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    ema = strip("ema/")
    return RunWeights(path, _stored_spec(path, meta["spec"]), strip("generator/"), ema or None, strip("content_net/"))


def _checkpoint_weights(path: Path, state: dict[str, Any]) -> RunWeights:
    models = state["models"]
    if not isinstance(models, dict):
        raise CheckpointError(f"{path} is not a gancr checkpoint (its models are not a mapping)")
    gen = {k[len("generator."):]: v for k, v in models.items() if k.startswith("generator.")}
    content = {k[len("content_net."):]: v for k, v in models.items() if k.startswith("content_net.")}
    if "spec" not in state:
        raise CheckpointError(f"{path} has no spec: it was not written by gancr's trainer")
    return RunWeights(path, _stored_spec(path, state["spec"]), gen, state.get("ema") or None, content)


def _stored_spec(path: Path, spec: Any) -> dict[str, Any]:
    """A stored spec is data (a mapping), never a path to follow."""
    if not isinstance(spec, dict):
        raise CheckpointError(
            f"{path}: its stored spec is a {type(spec).__name__}, not a mapping; not a file gancr wrote"
        )
    return spec
