"""The kill test: ``gancr train`` killed with SIGKILL at 20 random moments, resumed each time, ends
with the generator a straight run gives, bit for bit.

The moments are drawn from a seeded generator, two kinds in turn:

* **during a write**: a plugin installed for the test (an entry point of group ``gancr``)
  counts the bytes the process writes through :mod:`gancr.storage.files` and, at the drawn byte,
  writes that part of the chunk and sends itself SIGKILL, so the process dies in the middle of
  a checkpoint (or of spec.yaml, a sample grid, metrics.jsonl's rewrite);
* **at a random time**: the test sends SIGKILL a random fraction of a second after the process
  wrote a new checkpoint, wherever it is then (a step, the metrics log, a write).

After every kill each checkpoint file in the run loads (a write is never seen half done) and
the run folder's lock is free again; ``--resume`` then continues. At the end the metrics have
every step once, no temporary file is left, and the generator equals the straight run's.

The killed runs are processes forked from one that has imported torch
(:class:`trainkit.GancrForks`): importing it took most of each start, twenty times. Each runs
``gancr.cli.main`` as the console script does and dies as any process does; the last resume
is the installed ``gancr`` command itself.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from gancr.storage import RunDir, load_checkpoint
from gancr.training import Trainer

from faultkit import temporary_files
from trainkit import (
    GancrForks,
    assert_same_tensors,
    gancr_command,
    generator_tensors,
    image_dirs,  # noqa: F401 - fixture
    read_metrics,
    subprocess_env,
    tiny_spec,
)

pytestmark = pytest.mark.slow

KILLS = 20
SEED = 20240611

KILLER = """
import os
import signal
import time

import gancr
import gancr.storage.files

_AT = int(os.environ.get("GANCR_TEST_KILL_AT_BYTE", "-1"))
_written = [0]
_write_chunk = gancr.storage.files._write_chunk


def _dying_write(fh, data):
    view = memoryview(data).cast("B")
    if _written[0] + view.nbytes > _AT:
        _write_chunk(fh, view[: _AT - _written[0]])  # part of the chunk reaches the file ...
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies mid-write
    _written[0] += view.nbytes
    _write_chunk(fh, view)


if _AT >= 0:
    gancr.storage.files._write_chunk = _dying_write


@gancr.hookimpl
def gancr_on_step_end(trainer, step, metrics):
    time.sleep(float(os.environ.get("GANCR_TEST_STEP_SLEEP", "0")))
"""

STEPS = (10, 40)  # separate, joint: enough for 20 kills that each let the run move on a little


@pytest.fixture
def killer(entry_point_plugins) -> Path:
    entry_point_plugins.add("gancr_test_killer", KILLER)
    return entry_point_plugins.root


def _newest(run: Path) -> int:
    found = RunDir(run).checkpoints()
    return found[-1][0] if found else 0


def _every_checkpoint_loads(run: Path) -> None:
    for step, path in RunDir(run).checkpoints():
        assert load_checkpoint(path).step == step, path


def test_twenty_sigkills_then_resume_equal_a_straight_run(tmp_path, image_dirs, killer):
    spec = tiny_spec(*image_dirs, training={
        "stages": [{"name": "separate", "steps": STEPS[0]}, {"name": "joint", "steps": STEPS[1]}],
        "checkpoint": {"every": 1, "keep": 2},
        "sample_every": 7,
        "image_pool": 2,
        "ema": {"decay": 0.9},
    })
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec), encoding="utf-8")
    run = tmp_path / "run"
    rng = random.Random(SEED)
    train = ["train", str(spec_file), "--out", str(run), "--quiet"]
    checkpoint_bytes = None
    kinds = []
    # each killed run is a process forked from one that has imported torch (not 20 imports of torch)
    forks = GancrForks(subprocess_env(PYTHONPATH=str(killer), GANCR_TEST_STEP_SLEEP="0.02"))
    try:
        for i in range(KILLS):
            env = {}
            during_write = i % 2 == 1 and checkpoint_bytes is not None
            if during_write:  # somewhere in the next two and a half checkpoints' bytes
                env["GANCR_TEST_KILL_AT_BYTE"] = str(rng.randrange(int(2.5 * checkpoint_bytes)))
            before = _newest(run)
            proc = forks.start(*train, *(["--resume"] if before else []),
                               stdout=tmp_path / f"kill{i}.log", **env)
            if not during_write:
                deadline = time.monotonic() + 120
                while _newest(run) <= before and proc.poll() is None:
                    assert time.monotonic() < deadline, "no new checkpoint in time"
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.25))
                proc.kill()
            code = proc.wait(timeout=120)
            assert code == -signal.SIGKILL, f"kill {i}: the run ended on its own ({code}): {proc.output()[1]}"
            if during_write:  # it died inside a write: the half-written temporary file is there, never loaded
                cut = temporary_files(run)
                assert cut, f"kill {i}: no write was cut short"
                kinds.append("checkpoint write" if any(".pt." in p.name for p in cut) else "other write")
            else:
                kinds.append("time")
            _every_checkpoint_loads(run)
            if checkpoint_bytes is None and RunDir(run).checkpoints():
                checkpoint_bytes = RunDir(run).checkpoints()[-1][1].stat().st_size
    finally:
        forks.close()
    assert kinds.count("checkpoint write") >= 5, kinds
    assert not (run / "generator.safetensors").exists(), "the run finished before the last kill"

    resumed = subprocess.run([*gancr_command(), *train, "--resume"], env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    total = sum(STEPS)
    assert [m["step"] for m in read_metrics(run)] == list(range(1, total + 1))
    assert not temporary_files(run), "temporary files of killed writes were left behind"

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses
    try:
        Trainer(spec, tmp_path / "straight", quiet=True).fit()
    finally:
        torch.set_num_threads(threads)
    assert_same_tensors(generator_tensors(run / "generator.safetensors"),
                        generator_tensors(tmp_path / "straight" / "generator.safetensors"))
