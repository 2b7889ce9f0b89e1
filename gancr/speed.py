"""``gancr bench speed``: gancr's training step against a hand-written PyTorch reference.

Both sides run in the same process on the same device with the same random batch already
on the device: gancr's :class:`~gancr.training.Trainer` step (every loss of the spec, all
optimiser steps) and a plain-PyTorch step of the same architecture and losses written
without gancr (``benchmarks/reference_<spec stem>.py``, a ``make_step(device)`` function).
Warm-up steps are excluded; each figure is the median of repeated timings, with the device
synchronised (CUDA events on CUDA).
"""

from __future__ import annotations

import importlib.util
import json
import math
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import contextlib

import torch

from gancr._torch_compat import TorchDispatchMode, dynamo_disabled

__all__ = ["bench_speed", "time_step", "count_ops", "step_flops", "find_reference", "format_table", "PEAK_BF16"]

#: Dense bf16 peak of known cards, FLOP/s (the fraction of it is reported on CUDA).
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(step: Callable[[], Any], device: torch.device, *, warmup: int = 3, repeats: int = 5,
              steps: int = 5) -> float:
    """Median seconds per call of ``step`` over ``repeats`` timings of ``steps`` calls each."""
    for _ in range(warmup):
        step()
    _sync(device)
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


def find_reference(spec_path: str | Path, reference: str | Path | None = None) -> Path | None:
    """``benchmarks/reference_<stem>.py`` for a spec file, or the given path."""
    if reference is not None:
        return Path(reference)
    stem = Path(spec_path).stem
    for base in (Path.cwd(), Path(spec_path).resolve().parent.parent, Path(__file__).resolve().parent.parent):
        candidate = base / "benchmarks" / f"reference_{stem}.py"
        if candidate.is_file():
            return candidate
    return None


def _load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"gancr_reference_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _step_peak_memory(step: Callable[[], Any], device: torch.device) -> float | None:
    """Peak device memory of one step, MiB (CUDA only: the CPU has no per-step counter)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def _process_peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB


def _gancr_step(spec_path: str, device: torch.device, batch: int, size: int, overrides: list[str]) -> tuple[Callable[[], Any], Any]:
    from gancr.training import Trainer

    sets = [f"training.batch_size={batch}", f"training.image_size={size}", f"training.device={device}",
            "training.tensorboard=false", *overrides]
    trainer = Trainer(spec_path, "/nonexistent-bench-run", quiet=True, overrides=sets)
    # time the last stage (for two-stage specs, the joint one: the heavier)
    trainer.step = sum(s.steps for s in trainer.spec.training.stages[:-1])
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g).to(device)
    s = torch.rand(batch, 3, size, size, generator=g).to(device)
    x, s = trainer._to_device(x), trainer._to_device(s)
    first = trainer.step

    def step() -> Any:
        trainer.step = first  # stay in the timed stage, at a fixed learning rate
        return trainer.train_step(x, s)

    return step, trainer


def _reference_step(path: Path, device: torch.device, batch: int, size: int,
                    options: dict[str, Any] | None = None) -> Callable[[], Any]:
    module = _load_module(path)
    torch.manual_seed(0)
    fn = module.make_step(device, **(options or {}))
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g).to(device)
    s = torch.rand(batch, 3, size, size, generator=g).to(device)
    return lambda: fn(x, s)


@torch.no_grad()
def _latency(generator: torch.nn.Module, device: torch.device, size: int, mode: str) -> float:
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


def bench_speed(spec_path: str, *, device: str = "auto", batch: int = 1, size: int = 256,
                reference: str | None = None, overrides: list[str] | None = None, warmup: int = 3,
                repeats: int = 5, steps: int = 5, latency_sizes: tuple[int, ...] = (512, 1024),
                latency_modes: tuple[str, ...] | None = None,
                reference_modes: tuple[str, ...] = ("plain", "matched")) -> dict[str, Any]:
    """Time gancr's training step and the reference's; returns a dict of figures."""
    from gancr.devices import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    result: dict[str, Any] = {"spec": str(spec_path), "device": str(dev), "batch": batch, "size": size,
                              "torch": torch.__version__}
    result["device_name"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name()
    rows = []
    g_step, trainer = _gancr_step(spec_path, dev, batch, size, list(overrides or []))
    sides: list[tuple[str, Callable[[], Any]]] = [("gancr", g_step)]
    ref_path = find_reference(spec_path, reference)
    if ref_path is not None:
        t = trainer.spec.training
        matched = {"precision": trainer.precision, "channels_last": trainer.channels_last, "compile": t.compile,
                   "optimizer": {"fused": True}}
        if "plain" in reference_modes:
            sides.append(("hand-written, plain", _reference_step(ref_path, dev, batch, size)))
        if "matched" in reference_modes:
            sides.append(("hand-written, gancr's settings", _reference_step(ref_path, dev, batch, size, matched)))
        result["reference"] = str(ref_path)
    # first calls (compilation, autotuning), then warm-up, then interleaved timings, so that
    # a drifting machine (thermal state, other load) weighs on every side alike
    firsts = []
    for _, step in sides:
        t0 = time.perf_counter()
        step()
        _sync(dev)
        firsts.append(time.perf_counter() - t0)
    for _, step in sides:
        for _ in range(warmup):
            step()
    timings: list[list[float]] = [[] for _ in sides]
    for _ in range(repeats):
        for i, (_, step) in enumerate(sides):
            timings[i].append(time_step(step, dev, warmup=0, repeats=1, steps=steps))
    peak_bf16 = next((v for k, v in PEAK_BF16.items() if k in result["device_name"]), None)
    for (name, step), first, times in zip(sides, firsts, timings):
        seconds = statistics.median(times)
        with dynamo_disabled():  # count what the step computes, not what a compiled graph fuses
            flops, ops = step_flops(step), count_ops(step)
        row = {"name": name, "seconds_per_step": seconds, "images_per_s": batch / seconds,
               "flops_per_step": flops, "tflops": flops / seconds / 1e12, "ops_per_step": ops,
               "peak_memory_mib": _step_peak_memory(step, dev), "first_step_s": first,
               "spread": (min(times), max(times))}
        if peak_bf16 is not None:
            row["fraction_of_bf16_peak"] = flops / seconds / peak_bf16
        rows.append(row)
    result["rows"] = rows
    result["process_peak_rss_mib"] = _process_peak_rss()
    result["ratios"] = {r["name"]: rows[0]["images_per_s"] / r["images_per_s"] for r in rows[1:]}
    result["precision"] = trainer.precision
    result["channels_last"] = trainer.channels_last
    result["compile"] = trainer.spec.training.compile
    modes = latency_modes or (("fp32", "bf16", "compiled") if dev.type == "cuda" else ("fp32",))
    latency = {}
    gen = trainer.inference_generator()
    for s in latency_sizes:
        for mode in modes:
            try:
                latency[f"{s}px {mode}"] = _latency(gen, dev, s, mode) * 1000
            except Exception as exc:  # noqa: BLE001 - report, don't abort the benchmark
                latency[f"{s}px {mode}"] = f"failed: {type(exc).__name__}"
    result["inference_ms"] = latency
    return result


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return f"cpu ({torch.get_num_threads()} threads)"


def format_table(result: dict[str, Any]) -> str:
    """The side-by-side table printed by ``gancr bench speed``."""
    lines = [f"{result['spec']} on {result['device_name']} ({result['device']}), batch {result['batch']}, "
             f"{result['size']}x{result['size']}, torch {result['torch']}; gancr: precision {result['precision']}, "
             f"channels_last {result['channels_last']}, compile {result['compile']}"]
    header = ("", "img/s", "ms/step", "GFLOP/step", "TFLOP/s", "ops/step", "peak MiB", "first step s")
    rows = [header]
    for r in result["rows"]:
        peak = r["peak_memory_mib"]
        rows.append((r["name"], f"{r['images_per_s']:.2f}", f"{r['seconds_per_step'] * 1000:.1f}",
                     f"{r['flops_per_step'] / 1e9:.1f}", f"{r['tflops']:.3f}", str(r["ops_per_step"]),
                     "-" if peak is None else f"{peak:.0f}", f"{r['first_step_s']:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    if result["device"] == "cpu":
        lines.append(f"peak memory: the CPU has no per-step counter; the whole process peaked at "
                     f"{result['process_peak_rss_mib']:.0f} MiB RSS")
    for name, ratio in result.get("ratios", {}).items():
        lines.append(f"gancr / {name}: {ratio:.3f}x")
    for r in result["rows"]:
        if "fraction_of_bf16_peak" in r:
            lines.append(f"{r['name']}: {100 * r['fraction_of_bf16_peak']:.1f}% of the card's bf16 peak")
    if result.get("inference_ms"):
        lines.append("inference latency, batch 1: " + ", ".join(
            f"{k} {v:.1f} ms" if isinstance(v, float) else f"{k} {v}" for k, v in result["inference_ms"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/speed.py`` and ``gancr bench speed`` share this."""
    import argparse

    from gancr.bench import add_speed_arguments

    p = argparse.ArgumentParser(prog="gancr bench speed", description=__doc__.splitlines()[0])
    add_speed_arguments(p)
    return run(p.parse_args(argv))


def run(args: Any) -> int:
    sizes = tuple(int(s) for s in args.latency_sizes.split(",") if s.strip())
    result = bench_speed(args.spec, device=args.device, batch=args.batch, size=args.size, reference=args.reference,
                         overrides=args.overrides, warmup=args.warmup, repeats=args.repeats, steps=args.steps,
                         latency_sizes=sizes,
                         latency_modes=tuple(m.strip() for m in args.latency_modes.split(",") if m.strip())
                         if args.latency_modes else None,
                         reference_modes=tuple(m.strip() for m in args.reference_modes.split(",") if m.strip()))
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
