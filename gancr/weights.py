"""Reading weight files safely: safetensors, or ``torch.load(weights_only=True)``; never pickle."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from gancr.errors import CheckpointError

__all__ = ["load_state_dict_file"]


def load_state_dict_file(path: str | os.PathLike[str], what: str = "weights") -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a ``torch.save`` file, on the CPU.

    A ``torch.save`` file is read with ``weights_only=True``: a file that holds arbitrary
    Python objects (code) is refused. A dict wrapping the weights under ``state_dict`` or
    ``model`` is unwrapped.

    Raises:
        CheckpointError: missing, unreadable or unsafe file; the message names it.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"{what}: no such file {p}")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(p), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{what}: {p} is not a readable safetensors file: {exc}") from None
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle raises many kinds
        text = str(exc)
        if "Unsupported global" in text:  # a class or function: code, not weights
            raise CheckpointError(
                f"{what}: {p} holds Python objects besides tensors; refusing to unpickle it "
                "(gancr loads weights only). Re-save it as a plain state dict or safetensors."
            ) from None
        # any other failure of the weights-only unpickler: a corrupt or foreign file
        detail = text.partition("WeightsUnpickler error:")[2].strip().split("\n")[0] or f"{type(exc).__name__}: {exc}"
        raise CheckpointError(f"{what}: cannot read {p} (not a torch.save or safetensors file?): {detail}") from None
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{what}: {p} is not a state dict (a mapping of names to tensors)")
    return data
