"""Data-parallel training under torchrun: 2 CPU processes (gloo) against 1 with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from gancr.cli import main
from gancr.training import Trainer
from gancr.training.distributed import Distributed, from_environment
from gancr.data.dataset import StepBatches
from trainkit import TINY_MODEL

SPEC = {
    "model": TINY_MODEL,
    "losses": {"content": [{"name": "l1"}, {"name": "content_net"}], "style": [{"name": "lsgan"}]},
    "training": {
        "stages": [{"name": "separate", "steps": 2}, {"name": "joint", "steps": 2}],
        "batch_size": 4, "image_size": 32, "ema": {"enabled": False}, "tensorboard": False,
        "checkpoint": {"every": 2, "keep": 3}, "sample_every": 100, "log_every": 2,
    },
}

#: Two processes average two half-batch gradients; one process takes the mean over the whole
#: batch. The sums differ only in floating-point order, but Adam's first steps (about
#: lr * sign(grad)) can turn a rounding difference in a gradient near zero into 2 * lr, once
#: per step. So: every weight within steps * 2 * lr, and 99% of them within 1e-5.
STEPS, LR = 4, 2e-4
TOLERANCE = STEPS * 2 * LR


def test_rank_takes_its_share_of_each_global_batch():
    one = list(StepBatches(3, 5, 4))
    r0 = list(StepBatches(3, 5, 4, rank=0, world_size=2))
    r1 = list(StepBatches(3, 5, 4, rank=1, world_size=2))
    assert one == [[12, 13, 14, 15], [16, 17, 18, 19]]
    assert [a + b for a, b in zip(r0, r1)] == one


def test_environment_and_batch_checks(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert from_environment() == Distributed()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    d = from_environment()
    assert (d.rank, d.world_size, d.enabled, d.is_main) == (2, 4, True, False)
    assert d.local_batch(8) == 2
    with pytest.raises(Exception, match="must be divisible by the number of processes"):
        d.local_batch(6)


def _train(args: list[str], tmp: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env_extra}
    env.pop("WORLD_SIZE", None)
    return subprocess.run(args, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, builtin_cache_dir, monkeypatch):
    from safetensors.torch import load_file

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    cache = {"GANCR_CACHE_DIR": str(builtin_cache_dir)}  # the built-in images, made once for the session
    monkeypatch.setenv("GANCR_CACHE_DIR", str(builtin_cache_dir))
    # one process: in this one (on one thread, as the subprocesses)
    assert Trainer(SPEC, tmp_path / "one", quiet=True).fit().status == "finished"
    two = _train([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
                  "-m", "gancr", "train", str(spec), "--out", "two", "--quiet"], tmp_path, cache)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(tmp_path / "one" / "generator.safetensors")
    b = load_file(tmp_path / "two" / "generator.safetensors")
    assert a.keys() == b.keys()
    diffs = torch.cat([(a[k].float() - b[k].float()).abs().flatten() for k in a])
    assert diffs.max().item() <= TOLERANCE, diffs.max().item()
    assert torch.quantile(diffs, 0.99).item() < 1e-5
    # the losses logged by rank 0 are the mean over both processes: equal to one process's
    first_one = (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()[0]
    first_two = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[0]
    import json

    l1, l2 = json.loads(first_one), json.loads(first_two)
    for key in ("loss/generator", "loss/style", "loss/reconstruction", "loss/discriminator"):
        assert abs(l1[key] - l2[key]) < 1e-5, key
    # only rank 0 wrote the run: one metrics line per step that logs (2 and 4), checkpoints at 2 and 4
    assert [json.loads(line)["step"] for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()] == [2, 4]
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["step_0000002.pt", "step_0000004.pt"]


@pytest.mark.slow
def test_resume_with_a_different_world_size(tmp_path, builtin_cache_dir, monkeypatch, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    cache = {"GANCR_CACHE_DIR": str(builtin_cache_dir)}  # the built-in images, made once for the session
    first = _train([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29534",
                    "-m", "gancr", "train", str(spec), "--out", "run", "--quiet", "--max-steps", "2"], tmp_path, cache)
    assert first.returncode == 0, first.stderr[-3000:]
    # one process resumes it: the command, in this process
    monkeypatch.setenv("GANCR_CACHE_DIR", str(builtin_cache_dir))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--quiet", "--resume"]) == 0
    assert "resuming from" in capsys.readouterr().out
    state = torch.load(tmp_path / "run" / "checkpoints" / "step_0000004.pt", weights_only=True)
    assert state["step"] == 4
