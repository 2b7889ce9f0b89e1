"""Weight files: reading them safely (safetensors, or ``torch.load(weights_only=True)``; never
pickle), and finding pretrained weights offline — cached, or failing at once when a download
cannot work (see "Weights offline" in docs/training.md)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from gancr.errors import BuildError, CheckpointError
from gancr.integrity import exported_kind, runs_code

__all__ = ["load_state_dict_file", "reachable", "torch_hub_cached", "timm_pretrained_file"]


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
    kind = exported_kind(p)
    if kind is not None:
        raise CheckpointError(f"{what}: {p} is an exported {kind} model, not a state dict; give the network's "
                              "weights as .pth or .safetensors")
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
        if runs_code(exc):  # a class or function: code, not weights
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


#: Seconds to wait for a weights host to answer before calling it unreachable (``GANCR_NETWORK_TIMEOUT``).
DEFAULT_NETWORK_TIMEOUT = 5.0

OFFLINE_HELP = "see 'Weights offline' in docs/training.md"


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def reachable(url: str) -> str | None:
    """``None`` when ``url``'s host (or the HTTPS proxy) accepts a connection within the timeout,
    else why not. One attempt, no retries: a quick answer to "can a download work at all?"."""
    import socket
    from urllib.parse import urlparse

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or os.environ.get("ALL_PROXY")
    target = urlparse(proxy if proxy else url)
    host, port = target.hostname, target.port or (443 if target.scheme in ("https", "") else 80)
    if not host:
        return f"no host in {url!r}"
    try:
        timeout = float(os.environ.get("GANCR_NETWORK_TIMEOUT", DEFAULT_NETWORK_TIMEOUT))
    except ValueError:
        timeout = DEFAULT_NETWORK_TIMEOUT
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({exc or type(exc).__name__})"
    return None


def torch_hub_cached(url: str) -> Path | None:
    """The file torch hub's cache holds for ``url`` (``$TORCH_HOME/hub/checkpoints/NAME``), if any."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    return path if path.is_file() else None


def timm_pretrained_file(model_name: str) -> Path | None:
    """The cached pretrained weights of a timm model, or ``None`` when a download is needed and can work.

    Looks in the Hugging Face cache (``model.safetensors`` or ``pytorch_model.bin`` of the
    model's ``hf_hub_id``) and in torch hub's cache (its ``url``). Without a cached file it
    checks at once that the download can work — ``HF_HUB_OFFLINE`` is not set and the host
    answers within ``GANCR_NETWORK_TIMEOUT`` seconds — instead of letting the hub client retry
    for about a minute.

    Raises:
        BuildError: not cached, and offline; the message says what to do.
    """
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name)
    hf_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    url = getattr(cfg, "url", None) if cfg is not None else None
    if hf_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = hf_id.partition("@")
        for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(repo, name, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
    if url and (cached := torch_hub_cached(url)) is not None:
        return cached
    where = f"huggingface.co/{hf_id}" if hf_id else (url or "its pretrained_cfg")
    if hf_id and (_truthy("HF_HUB_OFFLINE") or _truthy("TRANSFORMERS_OFFLINE")):
        why = "HF_HUB_OFFLINE is set"
    else:
        why = reachable(f"https://huggingface.co/{hf_id}" if hf_id else str(url))
    if why is None:
        return None  # online: timm downloads them
    raise BuildError(
        f"timm {model_name}: pretrained: true needs its weights, which are not in the Hugging Face or "
        f"torch hub cache, and they cannot be downloaded: {why}. Download them on a connected machine "
        f"({where}: model.safetensors) and give the file as `weights: /path/to/model.safetensors` "
        f"(or copy the Hugging Face cache over), or set pretrained: false; {OFFLINE_HELP}"
    )
