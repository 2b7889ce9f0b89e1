"""Timing a step on a device: medians of synchronised timings, operator and FLOP counts, peak memory."""

from __future__ import annotations

import contextlib
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gancr._torch_compat import TorchDispatchMode

__all__ = [
    "sync",
    "time_step",
    "count_ops",
    "step_flops",
    "step_peak_memory",
    "process_peak_rss",
    "latency",
    "cpu_name",
]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(step: Callable[[], Any], device: torch.device, *, warmup: int = 3, repeats: int = 5,
              steps: int = 5) -> float:
    """Median seconds per call of ``step`` over ``repeats`` timings of ``steps`` calls each."""
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(steps):
                step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000 / steps)
        else:
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.count += 1
        return func(*args, **(kwargs or {}))


def count_ops(step: Callable[[], Any]) -> int:
    """Operators dispatched to the backend in one call of ``step`` (each is a kernel launch)."""
    with _OpCounter() as counter:
        step()
    return counter.count


def step_flops(step: Callable[[], Any]) -> int:
    """FLOPs of one call of ``step`` (forward and backward), by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())



def step_peak_memory(step: Callable[[], Any], device: torch.device) -> float | None:
    """Peak device memory of one step, MiB (CUDA only: the CPU has no per-step counter)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def process_peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB



@torch.no_grad()
def latency(generator: torch.nn.Module, device: torch.device, size: int, mode: str) -> float:
    x = torch.rand(1, 3, size, size, device=device)
    net = generator.eval()
    weight = next((p for p in net.parameters() if p.dim() == 4), None)
    if weight is not None and not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)  # the input in the weights' layout
    if mode == "compiled":
        net = torch.compile(net)
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if mode == "bf16" else contextlib.nullcontext()
    with ctx:
        return time_step(lambda: net(x), device, warmup=2, repeats=3, steps=2 if device.type == "cpu" else 10)



def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return f"cpu ({torch.get_num_threads()} threads)"
