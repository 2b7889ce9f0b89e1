"""``gancr bench speed``: gancr's training step against a hand-written PyTorch reference.

Both sides run in the same process on the same device with the same random batch already
on the device: gancr's :class:`~gancr.training.Trainer` step (every loss of the spec, all
optimiser steps) and a plain-PyTorch step of the same architecture and losses written
without gancr (``benchmarks/reference_<spec stem>.py``, a ``make_step(device)`` function).
Warm-up steps are excluded; each figure is the median of repeated timings, with the device
synchronised (CUDA events on CUDA), and the sides' timings are interleaved: each ratio is
also given per repeat (median, smallest, largest). gancr's step reads its losses back every
``training.log_every`` steps, as in training; the hand-written step "with gancr's settings"
has its precision, memory format, fused optimiser and ``torch.compile`` mode, so compiled and
CUDA-graph runs have a ratio too.

This module imports no torch until a benchmark runs (``gancr --help`` builds its parser);
the timing itself is :mod:`gancr.bench.timing`.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gancr.storage.files import atomic_write_text, output_argument
from gancr.text import text_table

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["bench_speed", "find_reference", "format_table", "ratio_spread", "command", "PEAK_BF16", "add_arguments", "run", "main"]

#: Dense bf16 peak of known cards, FLOP/s (the fraction of it is reported on CUDA).
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def find_reference(spec_path: str | Path, reference: str | Path | None = None) -> Path | None:
    """``benchmarks/reference_<stem>.py`` for a spec file, or the given path."""
    if reference is not None:
        return Path(reference)
    stem = Path(spec_path).stem
    checkout = Path(__file__).resolve().parents[2]  # gancr/bench/speed.py -> the source checkout
    for base in (Path.cwd(), Path(spec_path).resolve().parent.parent, checkout):
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


def _gancr_step(spec_path: str, device: torch.device, batch: int, size: int, overrides: list[str]) -> tuple[Callable[[], Any], Any]:
    import torch

    from gancr.training import Trainer

    sets = [f"training.batch_size={batch}", f"training.image_size={size}", f"training.device={device}",
            "training.tensorboard=false", *overrides]
    trainer = Trainer(spec_path, "/nonexistent-bench-run", quiet=True, overrides=sets)
    # time the last stage (for two-stage specs, the joint one: the heavier)
    trainer.step = sum(s.steps for s in trainer.spec.training.stages[:-1])
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g).to(device)
    s = torch.rand(batch, 3, size, size, generator=g).to(device)
    x, s = trainer.to_device(x), trainer.to_device(s)
    first = trainer.step
    calls = 0

    def step() -> Any:
        nonlocal calls
        calls += 1
        trainer.step = first  # stay in the timed stage, at a fixed learning rate
        # the losses are read back (a host sync) every log_every steps, as in training
        return trainer.train_step(x, s, log=calls % trainer.spec.training.log_every == 0)

    return step, trainer


def _reference_step(path: Path, device: torch.device, batch: int, size: int,
                    options: dict[str, Any] | None = None) -> Callable[[], Any]:
    import torch

    module = _load_module(path)
    torch.manual_seed(0)
    fn = module.make_step(device, **(options or {}))
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g).to(device)
    s = torch.rand(batch, 3, size, size, generator=g).to(device)
    return lambda: fn(x, s)


def bench_speed(spec_path: str, *, device: str = "auto", batch: int = 1, size: int = 256,
                reference: str | None = None, overrides: list[str] | None = None, warmup: int = 3,
                repeats: int = 5, steps: int = 5, latency_sizes: tuple[int, ...] = (512, 1024),
                latency_modes: tuple[str, ...] | None = None,
                reference_modes: tuple[str, ...] = ("plain", "matched")) -> dict[str, Any]:
    """Time gancr's training step and the reference's; returns a dict of figures."""
    import torch

    from gancr.bench.timing import cpu_name, process_peak_rss
    from gancr.devices import resolve_device

    dev = resolve_device(device, "--device")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    result: dict[str, Any] = {"spec": str(spec_path), "device": str(dev), "batch": batch, "size": size,
                              "torch": torch.__version__}
    result["device_name"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
    result["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
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
            result["reference_settings"] = matched
        result["reference"] = str(ref_path)
    firsts, timings = _time_sides(sides, dev, warmup, repeats, steps)
    rows = _rows(sides, firsts, timings, dev, batch, result["device_name"])
    result["rows"] = rows
    result["process_peak_rss_mib"] = process_peak_rss()
    result["ratios"] = {r["name"]: rows[0]["images_per_s"] / r["images_per_s"] for r in rows[1:]}
    result["ratio_spread"] = {name: ratio_spread(times, timings[0]) for (name, _), times in zip(sides[1:], timings[1:])}
    result["precision"] = trainer.precision
    result["channels_last"] = trainer.channels_last
    result["compile"] = trainer.spec.training.compile
    result["log_every"] = trainer.spec.training.log_every
    modes = latency_modes or (("fp32", "bf16", "compiled") if dev.type == "cuda" else ("fp32",))
    result["inference_ms"] = _latencies(trainer.inference_generator(), dev, latency_sizes, modes)
    return result


def _time_sides(sides: list[tuple[str, Callable[[], Any]]], dev: torch.device, warmup: int, repeats: int,
                steps: int) -> tuple[list[float], list[list[float]]]:
    """Each side's first call (seconds) and its timings, interleaved.

    First calls (compilation, autotuning), then warm-up, then interleaved timings, so that a
    drifting machine (thermal state, other load) weighs on every side alike.
    """
    from gancr.bench.timing import sync, time_step

    firsts = []
    for _, step in sides:
        t0 = time.perf_counter()
        step()
        sync(dev)
        firsts.append(time.perf_counter() - t0)
    for _, step in sides:
        for _ in range(warmup):
            step()
    timings: list[list[float]] = [[] for _ in sides]
    for r in range(repeats):
        # the order turns each repeat, so that whatever the position costs (running right after
        # another side, with its caches and clocks) falls on every side alike
        for i in [(r + k) % len(sides) for k in range(len(sides))]:
            timings[i].append(time_step(sides[i][1], dev, warmup=0, repeats=1, steps=steps))
    return firsts, timings


def _rows(sides: list[tuple[str, Callable[[], Any]]], firsts: list[float], timings: list[list[float]],
          dev: torch.device, batch: int, device_name: str) -> list[dict[str, Any]]:
    """One row of figures per side: time, throughput, FLOPs, operators, memory."""
    from gancr._torch_compat import dynamo_disabled
    from gancr.bench.timing import count_ops, step_flops, step_peak_memory

    peak_bf16 = next((v for k, v in PEAK_BF16.items() if k in device_name), None)
    rows = []
    for (name, step), first, times in zip(sides, firsts, timings):
        seconds = statistics.median(times)
        with dynamo_disabled():  # count what the step computes, not what a compiled graph fuses
            flops, ops = step_flops(step), count_ops(step)
        row = {"name": name, "seconds_per_step": seconds, "images_per_s": batch / seconds,
               "flops_per_step": flops, "tflops": flops / seconds / 1e12, "ops_per_step": ops,
               "peak_memory_mib": step_peak_memory(step, dev), "first_step_s": first,
               "spread": (min(times), max(times))}
        if peak_bf16 is not None:
            row["fraction_of_bf16_peak"] = flops / seconds / peak_bf16
        rows.append(row)
    return rows


def _latencies(generator: Any, dev: torch.device, sizes: tuple[int, ...], modes: tuple[str, ...]) -> dict[str, Any]:
    """Inference milliseconds per size and mode (or why a mode failed)."""
    from gancr.bench.timing import latency

    latencies: dict[str, Any] = {}
    for s in sizes:
        for mode in modes:
            try:
                latencies[f"{s}px {mode}"] = latency(generator, dev, s, mode) * 1000
            except Exception as exc:  # noqa: BLE001 - report, don't abort the benchmark
                latencies[f"{s}px {mode}"] = f"failed: {type(exc).__name__}"
    return latencies


def ratio_spread(side_times: list[float], gancr_times: list[float]) -> dict[str, Any]:
    """gancr / a side in each interleaved repeat (its seconds over gancr's): median, min, max."""
    ratios = [side / ours for side, ours in zip(side_times, gancr_times)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "per_repeat": ratios}


def format_table(result: dict[str, Any]) -> str:
    """The side-by-side table printed by ``gancr bench speed``."""
    lines = [f"{result['spec']} on {result['device_name']} ({result['device']}), batch {result['batch']}, "
             f"{result['size']}x{result['size']}, torch {result['torch']}; gancr: precision {result['precision']}, "
             f"channels_last {result['channels_last']}, compile {result['compile']}"]
    header = ("", "img/s", "ms/step", "GFLOP/step", "TFLOP/s", "ops/step", "peak MiB", "first step s")
    rows = []
    for r in result["rows"]:
        peak = r["peak_memory_mib"]
        rows.append((r["name"], f"{r['images_per_s']:.2f}", f"{r['seconds_per_step'] * 1000:.1f}",
                     f"{r['flops_per_step'] / 1e9:.1f}", f"{r['tflops']:.3f}", str(r["ops_per_step"]),
                     "-" if peak is None else f"{peak:.0f}", f"{r['first_step_s']:.1f}"))
    lines += text_table(header, rows, right=range(1, len(header)))
    if result["device"] == "cpu":
        lines.append(f"peak memory: the CPU has no per-step counter; the whole process peaked at "
                     f"{result['process_peak_rss_mib']:.0f} MiB RSS")
    for name, ratio in result.get("ratios", {}).items():
        spread = result.get("ratio_spread", {}).get(name)
        per_repeat = "" if spread is None else (
            f"; per repeat: median {spread['median']:.3f}x, min {spread['min']:.3f}x, max {spread['max']:.3f}x "
            f"over {len(spread['per_repeat'])}")
        lines.append(f"gancr / {name}: {ratio:.3f}x{per_repeat}")
    for r in result["rows"]:
        if "fraction_of_bf16_peak" in r:
            lines.append(f"{r['name']}: {100 * r['fraction_of_bf16_peak']:.1f}% of the card's bf16 peak")
    if result.get("inference_ms"):
        lines.append("inference latency, batch 1: " + ", ".join(
            f"{k} {v:.1f} ms" if isinstance(v, float) else f"{k} {v}" for k, v in result["inference_ms"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/speed.py`` and ``gancr bench speed`` share this."""
    p = argparse.ArgumentParser(prog="gancr bench speed", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: Any) -> int:
    """``gancr bench speed``: time, print the table (and write JSON)."""
    sizes = tuple(int(s) for s in args.latency_sizes.split(",") if s.strip())
    result = bench_speed(args.spec, device=args.device, batch=args.batch, size=args.size, reference=args.reference,
                         overrides=args.overrides, warmup=args.warmup, repeats=args.repeats, steps=args.steps,
                         latency_sizes=sizes,
                         latency_modes=tuple(m.strip() for m in args.latency_modes.split(",") if m.strip())
                         if args.latency_modes else None,
                         reference_modes=tuple(m.strip() for m in args.reference_modes.split(",") if m.strip()))
    result["command"] = command(args)
    print(format_table(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2, default=str) + "\n")
    return 0


def command(args: Any) -> str:
    """The ``gancr bench speed`` command line of ``args`` (without ``--json``), to repeat a run."""
    parts = ["gancr", "bench", "speed", "--spec", str(args.spec), "--device", args.device, "--batch", str(args.batch),
             "--size", str(args.size)]
    if args.reference:
        parts += ["--reference", str(args.reference)]
    for override in args.overrides:
        parts += ["--set", override]
    parts += ["--warmup", str(args.warmup), "--repeats", str(args.repeats), "--steps", str(args.steps),
              "--reference-modes", args.reference_modes, "--latency-sizes", args.latency_sizes]
    if args.latency_modes:
        parts += ["--latency-modes", args.latency_modes]
    return shlex.join(parts)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``gancr bench speed``."""
    p.add_argument("--spec", required=True, help="a spec file (benchmarks/reference_<stem>.py is its reference)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--reference", default=None, help="a reference module with make_step(device)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=5, help="steps per timing")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--latency-sizes", default="512,1024", help="comma-separated; empty for none")
    p.add_argument("--latency-modes", default=None,
                   help="comma-separated among fp32, bf16, compiled (default: all three on CUDA, fp32 on the CPU)")
    p.add_argument("--reference-modes", default="plain,matched",
                   help="hand-written variants: plain (fp32 eager, default optimiser) and/or matched "
                        "(gancr's precision, channels_last, torch.compile mode and fused optimiser)")
    output_argument(p, "--json", default=None, help="also write the figures to this file")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
