"""``gancr bench speed``, the check scripts and the figures of docs/performance.md (issue 13), on
the CPU: tiny specs against a tiny hand-written step, so that a session with a GPU finds
commands that work and a generator that turns their JSON into the page."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gancr.bench import figures, speed
from gancr.cli import main

from trainkit import REPO, image_dirs, tiny_spec  # noqa: F401 - image_dirs is a fixture

#: A hand-written step of the tiny spec's size (what benchmarks/reference_<spec>.py provides).
TINY_REFERENCE = '''
import torch
from torch import nn


def make_step(device, *, precision="fp32", channels_last=False, compile=False, optimizer=None):
    G = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)).to(device)
    D = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 4, 1, 1)).to(device)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, **(optimizer or {}))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, **(optimizer or {}))
    g, d = (torch.compile(G, mode=None if compile is True else compile), torch.compile(D, mode=None if compile is True
            else compile)) if compile else (G, D)

    def step(x, s):
        opt_g.zero_grad(set_to_none=True)
        fake = g(x)
        loss_g = (d(fake) - 1).square().mean() + (fake - x).abs().mean()
        loss_g.backward()
        opt_g.step()
        opt_d.zero_grad(set_to_none=True)
        loss_d = (d(s) - 1).square().mean() + d(fake.detach()).square().mean()
        loss_d.backward()
        opt_d.step()
        return loss_g.detach(), loss_d.detach()

    return step
'''


@pytest.fixture
def tiny_bench(tmp_path, image_dirs):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(*image_dirs, training={"log_every": 3})), encoding="utf-8")
    reference = tmp_path / "reference_tiny.py"
    reference.write_text(TINY_REFERENCE, encoding="utf-8")
    return spec, reference


def _bench(spec: Path, reference: Path, out: Path, *extra: str) -> dict:
    argv = ["bench", "speed", "--spec", str(spec), "--reference", str(reference), "--device", "cpu", "--batch", "1",
            "--size", "32", "--warmup", "1", "--repeats", "5", "--steps", "1", "--latency-sizes", "",
            "--json", str(out), *extra]
    assert main(argv) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def test_the_speed_benchmark_gives_each_ratio_per_interleaved_repeat(tiny_bench, tmp_path, capsys):
    spec, reference = tiny_bench
    result = _bench(spec, reference, tmp_path / "run.json")
    out = capsys.readouterr().out
    assert [r["name"] for r in result["rows"]] == ["gancr", "hand-written, plain", "hand-written, gancr's settings"]
    for name in ("hand-written, plain", "hand-written, gancr's settings"):
        spread = result["ratio_spread"][name]
        assert len(spread["per_repeat"]) == 5 and spread["min"] <= spread["median"] <= spread["max"]
        assert f"gancr / {name}: {result['ratios'][name]:.3f}x; per repeat: median {spread['median']:.3f}x, " \
               f"min {spread['min']:.3f}x, max {spread['max']:.3f}x over 5" in out
    assert result["log_every"] == 3 and result["date"].startswith("20")
    assert result["reference_settings"] == {"precision": "fp32", "channels_last": False, "compile": False,
                                            "optimizer": {"fused": True}}
    # the recorded command is the run's own, and repeats it
    argv = shlex.split(result["command"])
    assert argv[:3] == ["gancr", "bench", "speed"] and "--json" not in argv
    assert _bench(spec, reference, tmp_path / "again.json", *argv[3:])["command"] == result["command"]


def test_each_repeat_starts_with_another_side(tiny_bench, tmp_path, monkeypatch):
    from gancr.bench import timing

    calls = []

    def record(step, device, **kwargs):
        calls.append(step)
        return 0.01

    monkeypatch.setattr(timing, "time_step", record)
    _bench(*tiny_bench, tmp_path / "run.json")
    assert len(calls) == 15  # 5 repeats of 3 sides
    first = calls[:3]
    assert len(set(map(id, first))) == 3
    for r in range(5):
        assert calls[3 * r:3 * r + 3] == first[r % 3:] + first[:r % 3]


def test_a_compiled_run_is_timed_against_the_hand_written_step_compiled_the_same_way(tiny_bench, tmp_path,
                                                                                     monkeypatch):
    """Both sides go through ``torch.compile`` in gancr's mode (here traced by dynamo alone:
    generating kernels takes minutes on the CPU; benchmarks/gpu_check.sh compiles for real)."""
    import torch

    compiled, real = [], torch.compile

    def recording(model, *args, mode=None, **kwargs):
        compiled.append((getattr(model, "__qualname__", type(model).__name__), mode))
        return real(model, *args, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", recording)
    spec, reference = tiny_bench
    result = _bench(spec, reference, tmp_path / "run.json", "--set", "training.compile=reduce-overhead",
                    "--reference-modes", "matched", "--repeats", "2")
    assert result["compile"] == "reduce-overhead" and result["reference_settings"]["compile"] == "reduce-overhead"
    assert [r["name"] for r in result["rows"]] == ["gancr", "hand-written, gancr's settings"]
    assert result["ratios"]["hand-written, gancr's settings"] > 0 and figures.mode(result) == "CUDA graphs"
    names = [name for name, _ in compiled]  # gancr's trio (and losses), then the hand-written G and D
    assert names[:3] == ["Generator", "ContentNet", "PatchGAN"] and names.count("Sequential") == 2
    assert {mode for _, mode in compiled} == {"reduce-overhead"}


# ----------------------------------------------------------------------------------------
# the check scripts, their commands parsed (DRY=1) on the CPU
# ----------------------------------------------------------------------------------------


def _planned(name: str, out: Path, *parts: str) -> list[tuple[int | None, argparse.Namespace]]:
    """The speed runs a check script would make (``DRY=1``): (time limit, parsed options) each."""
    env = {**os.environ, "DRY": "1", "OUT": str(out), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / name), *parts], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    parser = argparse.ArgumentParser()
    speed.add_arguments(parser)
    runs = []
    for line in done.stdout.splitlines():
        words = shlex.split(line)
        if "gancr.bench.speed" in words:
            limit = int(words[1]) if words[0] == "timeout" else None
            runs.append((limit, parser.parse_args(words[words.index("gancr.bench.speed") + 1:])))
    assert not list(out.rglob("*.json"))  # a dry run writes nothing
    return runs


def test_the_gpu_check_times_every_mode_against_the_hand_written_step_within_one_session(tmp_path):
    eager, compiled = _planned("gpu_check.sh", tmp_path, "eager"), _planned("gpu_check.sh", tmp_path, "compiled")
    painting = (REPO / "examples" / "painting.yaml").is_file()
    assert [Path(a.json).stem for _, a in eager] == ["cyclegan_b16", "cyclegan_b1", "quickstart_b16",
                                                     *(["painting_b16"] if painting else [])]
    assert [Path(a.json).stem for _, a in compiled] == ["cyclegan_b1_graphs", "cyclegan_b16_compiled"]
    for _, a in eager + compiled:
        assert Path(a.json).parent == tmp_path / "dry-run" and a.device == "cuda" and a.size == 256
        assert a.repeats >= 5 and "matched" in a.reference_modes  # every mode has a ratio
        assert (REPO / a.spec).is_file()
    assert [a.overrides for _, a in compiled] == [["training.compile=reduce-overhead"], ["training.compile=true"]]
    # the time limits: the whole check and a rerun of its longer part fit a 15-minute session
    assert sum(limit for limit, _ in eager) <= 180 and sum(limit for limit, _ in compiled) <= 300


def test_the_cpu_check_runs_both_specs_at_batch_1_and_4_with_5_repeats(tmp_path):
    runs = [a for _, a in _planned("cpu_check.sh", tmp_path)]
    expected = ["quickstart_b1", "cyclegan_b1", "quickstart_b4", "cyclegan_b4"]
    if (REPO / "examples" / "painting.yaml").is_file():
        expected.append("painting_b4")
    assert [Path(a.json).stem for a in runs] == expected
    assert all(a.device == "cpu" and a.repeats >= 5 and a.reference_modes == "plain,matched" for a in runs)
    assert {(Path(a.spec).stem, a.batch) for a in runs} >= {(s, b) for s in ("quickstart", "cyclegan_like")
                                                            for b in (1, 4)}
    env = {**os.environ, "DRY": "1", "OUT": str(tmp_path), "REPEATS": "3"}
    refused = subprocess.run(["bash", str(REPO / "benchmarks" / "cpu_check.sh")], env=env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and "REPEATS must be 5 or more" in refused.stderr


# ----------------------------------------------------------------------------------------
# the figures of docs/performance.md
# ----------------------------------------------------------------------------------------


def _result(device: str, name: str, date: str | None, compile_=False, ratios=(1.02, 0.97, 1.05)) -> dict:
    row = {"seconds_per_step": 0.1, "images_per_s": 10.0, "ops_per_step": 1000, "first_step_s": 2.0}
    result = {"spec": "examples/cyclegan_like.yaml", "device": device, "device_name": name, "torch": "2.14.1",
              "batch": 4, "size": 64, "compile": compile_,
              "rows": [{**row, "name": "gancr"}, {**row, "name": "hand-written, gancr's settings", "ops_per_step": 990}],
              "ratios": {"hand-written, gancr's settings": 1.0}}
    if date:
        result.update(date=date, command=f"gancr bench speed --spec examples/cyclegan_like.yaml --device {device}",
                      ratio_spread={"hand-written, gancr's settings": {"median": sorted(ratios)[1], "min": min(ratios),
                                                                       "max": max(ratios), "per_repeat": list(ratios)}})
    return result


def test_the_figures_say_which_rows_are_current_and_which_are_stale(tmp_path):
    files = {"old_b16.json": _result("cuda", "NVIDIA H100", None),  # written before dates were recorded
             "nvidia-h200/cyclegan_b16.json": _result("cuda", "NVIDIA H200", "2026-12-01T10:00:00+00:00"),
             "nvidia-h200/cyclegan_b16_compiled.json": _result("cuda", "NVIDIA H200", "2026-12-01T10:05:00+00:00",
                                                               compile_=True),
             "nvidia-a100/cyclegan_b16.json": _result("cuda", "NVIDIA A100", "2026-11-02T10:00:00+00:00"),
             "cpu/quickstart_b4.json": _result("cpu", "AMD EPYC (2 threads)", "2026-11-30T03:00:00+00:00")}
    for name, result in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(json.dumps(result))
    block = figures.markdown(figures.load(sorted(tmp_path.rglob("*.json"))), root=tmp_path)
    sections = {s.split("\n", 1)[0]: s for s in block.split("### ")[1:]}
    heads = list(sections)
    assert heads[0].startswith("NVIDIA H200 (torch 2.14.1), 2026-12-01: current")
    assert any(h.startswith("AMD EPYC (2 threads) (torch 2.14.1), 2026-11-30: current") for h in heads)
    assert any(h.startswith("NVIDIA A100") and h.endswith(": stale") and "Older than the newest CUDA figures"
               in sections[h] for h in heads)
    assert any(h.startswith("NVIDIA H100") and h.endswith("date not recorded: stale") for h in heads)
    h200 = sections[heads[0]]
    assert "| cyclegan_b16_compiled | cyclegan_like, 64, 4 | compiled |" in h200
    assert "1.02x (0.97-1.05)" in h200 and "1000 / 990" in h200 and "2.0 / 2.0" in h200
    assert h200.count("gancr bench speed --spec") == 2  # every command, to repeat the rows
    assert block.startswith(figures.BEGIN) and block.rstrip().endswith(figures.END)


def test_performance_md_is_generated_from_the_figures():
    text = (REPO / "docs" / "performance.md").read_text(encoding="utf-8")
    assert figures.current_block(text) == figures.markdown(), \
        "docs/performance.md's figures are stale; run: python -m gancr.bench.figures --write"


def test_the_figures_command_prints_a_summary_and_rewrites_the_page(tmp_path, monkeypatch, capsys):
    (tmp_path / "cpu").mkdir()
    path = tmp_path / "cpu" / "cyclegan_b4.json"
    path.write_text(json.dumps(_result("cpu", "AMD EPYC (2 threads)", "2026-11-30T03:00:00+00:00")))
    assert figures.main(["--summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("AMD EPYC (2 threads), torch 2.14.1") and "1.02x (0.97-1.05)" in out
    page = tmp_path / "performance.md"
    page.write_text(f"# Performance\n\nbefore\n\n{figures.BEGIN}\nold\n{figures.END}\n\nafter\n", encoding="utf-8")
    monkeypatch.setattr(figures, "FIGURES", tmp_path)
    monkeypatch.setattr(figures, "PERFORMANCE_MD", page)
    assert figures.main(["--write"]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Performance\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert figures.current_block(text) == figures.markdown() and "cyclegan_b4" in text


def test_figures_needs_no_torch():
    code = "import sys, gancr.bench.figures; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
