"""Where and how models run: the device, the precision, autocast, eval mode for a while, and memory.

Training, inference, evaluation and the command line share these, so ``auto`` means the
same everywhere: CUDA when present, bf16 autocast on a CUDA device that supports it.

The device rule: every public entry point that runs a model takes ``device="auto"`` by default
(``Trainer`` through ``training.device``, ``stylize``, ``load_generator``, ``load_content_net``,
``evaluate``, ``gancr bench``, and their commands' ``--device``): CUDA when present, else the
CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device`` choose one.

Memory: PyTorch reports an allocation it cannot make as ``RuntimeError: [enforce fail at
alloc_cpu.cpp] ... DefaultCPUAllocator: can't allocate memory``, ``torch.OutOfMemoryError``
(CUDA) or Python's ``MemoryError``; each reaches a user as a traceback from deep inside torch.
gancr checks sizes it can know in advance against :func:`available_memory`, and turns the
failures it cannot foresee into :class:`~gancr.errors.ResourceError` with :func:`memory_error`.

Nothing here imports torch until it is called (``gancr --help`` and the storage package use it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gancr.errors import GancrError, ResourceError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "resolve_device",
    "resolve_precision",
    "autocast",
    "eval_mode",
    "available_memory",
    "is_allocation_error",
    "memory_error",
    "activation_bytes",
    "check_training_memory",
]


def resolve_device(name: str | torch.device = "auto", what: str = "device") -> torch.device:
    """``auto`` is CUDA when present, else the CPU; otherwise any torch device string (or a
    ``torch.device``). ``what`` names the setting in messages (``training.device``, ``--device``)."""
    import torch

    if isinstance(name, torch.device):
        device = name
    elif name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise GancrError(f"{what}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GancrError(f"{what} is {str(name)!r} but no CUDA device is available; use auto or cpu")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` is bf16 on a CUDA device that supports it, else fp32."""
    import torch

    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp32"
    if name == "fp16" and device.type != "cuda":
        raise GancrError("training.precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
    return name


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``bf16`` or ``fp16`` on ``device``; nothing for ``fp32``."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def eval_mode(*modules: Any) -> Iterator[None]:
    """Within the block: the modules in eval mode, no gradients; afterwards each module's mode is back.

    Arguments that are not ``nn.Module`` (plain callables, None) are left alone.

    Example:
        >>> import torch
        >>> net = torch.nn.Dropout()
        >>> with eval_mode(net):
        ...     net.training
        False
        >>> net.training
        True
    """
    import torch

    saved = [(m, m.training) for m in modules if isinstance(m, torch.nn.Module)]
    for m, _ in saved:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in saved:
            m.train(mode)


# ----------------------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------------------

_ALLOCATION_TEXT = ("can't allocate memory", "out of memory", "cannot allocate memory", "std::bad_alloc",
                    "Tried to allocate", "not enough memory", "CUDNN_STATUS_ALLOC_FAILED")


def available_memory(device: Any = "cpu") -> int | None:
    """Bytes that can be allocated now on ``device`` (the CPU: ``MemAvailable``), or None if unknown."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        try:
            free, _ = torch.cuda.mem_get_info(device)
            # memory PyTorch holds in its cache is free for PyTorch too
            return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def is_allocation_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation that failed (CPU or GPU)."""
    if isinstance(exc, MemoryError):
        return True
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc) for t in _ALLOCATION_TEXT)


def memory_error(exc: BaseException, doing: str, lower: str, device: Any = "cpu") -> ResourceError:
    """``doing`` needs more memory than is free; lower ``lower`` (a setting, named as the user writes it)."""
    from gancr.storage.files import human_size

    free = available_memory(device)
    asked = ""
    text = str(exc)
    for marker in ("allocate ", "alloc "):
        if marker in text:  # "... can't allocate memory: you tried to allocate 123456 bytes"
            tail = text.split(marker)[-1].split()[0] if text.split(marker)[-1].split() else ""
            if tail.isdigit():
                asked = f"it asked for {human_size(int(tail))}"
            break
    facts = ", ".join(x for x in (asked, f"{human_size(free)} is free" if free is not None else "") if x)
    where = "GPU memory" if getattr(device, "type", str(device)).startswith("cuda") else "memory"
    return ResourceError(
        f"{doing} needs more {where} than is available" + (f" ({facts})" if facts else "")
        + f"; lower {lower}"
    )


def activation_bytes(module: Any, *, training: bool, size: int = 64) -> float:
    """About how many bytes of activations ``module`` needs per input pixel (per image).

    Measured on one ``size x size`` image, on the module's device, from the outputs of its
    layers: in training every output is kept for the backward pass (the sum of their
    sizes, each tensor counted once); in inference (no gradients) a few layers' outputs are
    alive at once, plus the encoder's features a U-Net decoder keeps (four times the largest
    output, plus the encoder's outputs). An estimate to compare with :func:`available_memory`
    before a big allocation, not an exact account.
    """
    import torch

    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    sizes: dict[int, int] = {}
    alive: list[Any] = []  # kept so that no two outputs share an address by reuse

    def record(_: Any, __: Any, out: Any) -> None:
        for t in out if isinstance(out, (list, tuple)) else [out]:
            if isinstance(t, torch.Tensor):
                alive.append(t)
                sizes[t.data_ptr()] = max(sizes.get(t.data_ptr(), 0), t.numel() * t.element_size())

    leaves = [m for m in module.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(record) for m in leaves]
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(torch.zeros(1, 3, size, size, device=device))
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    total = float(sum(sizes.values()))
    if not training:
        features = 0.0
        encoder = getattr(module, "encoder", None)
        if encoder is not None:
            with torch.no_grad():
                features = float(sum(f.numel() * f.element_size()
                                     for f in encoder(torch.zeros(1, 3, size, size, device=device))))
        total = 4.0 * max(sizes.values(), default=0) + features
    return total / (size * size)


def check_training_memory(trio: Any, batch: int, image_size: int, device: Any) -> None:
    """Refuse a training step that clearly cannot fit: when the activations of the trio's
    networks alone, for batches of ``batch`` crops of ``image_size`` px, exceed the free memory."""
    from gancr.storage.files import human_size

    size = min(image_size, max(64, 2 * int(getattr(trio.generator, "reduction", 1))))
    try:
        per_pixel = (activation_bytes(trio.generator, training=True, size=size)
                     + activation_bytes(trio.content_net, training=True, size=size)
                     + 2 * activation_bytes(trio.discriminator, training=True, size=size))
    except Exception:  # noqa: BLE001 - a part that cannot be probed this way is simply not checked
        return
    need = per_pixel * batch * image_size**2
    free = available_memory(device)
    if free is not None and need > free:
        raise ResourceError(
            f"a training step on batches of {batch} crops of {image_size} px needs about "
            f"{human_size(need)} of memory for its activations, and {human_size(free)} is free; lower "
            "training.batch_size or training.image_size"
        )
