"""``gancr train`` in subprocesses: ``--max-steps`` then ``--resume`` matches a straight run bit
for bit; SIGKILL at any moment leaves loadable checkpoints and a run that resumes; Ctrl-C
(SIGINT), SIGTERM and SIGHUP save a checkpoint and exit with status 128 + the signal and a message.

A plugin package installed for the test (an entry point of group ``gancr``) sleeps in
``gancr_on_step_end`` for ``GANCR_TEST_STEP_SLEEP`` seconds, so a subprocess is reliably
still training when the test signals it, without burning CPU.

The subprocesses are forked from one that has imported torch (:class:`trainkit.GancrForks`,
one for the module): each runs ``gancr.cli.main`` as the console script does, and receives its
signals as any process does; the torch import was most of each start.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from gancr.training import Trainer
from gancr.storage import RunDir, load_checkpoint

from conftest import EntryPointPlugins
from trainkit import (
    ForkedCommand,
    GancrForks,
    assert_same_tensors,
    generator_tensors,
    image_dirs,  # noqa: F401 - fixture
    read_metrics,
    subprocess_env,
    tiny_spec,
)

pytestmark = pytest.mark.slow

SLOW_STEPS = """
import os
import time

import gancr


@gancr.hookimpl
def gancr_on_step_end(trainer, step, metrics):
    time.sleep(float(os.environ.get("GANCR_TEST_STEP_SLEEP", "0")))
"""


def _spec_file(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def _resume_spec(image_dirs) -> dict:
    return tiny_spec(*image_dirs, training={
        "stages": [{"name": "separate", "steps": 3}, {"name": "joint", "steps": 3}],
        "balancer": {"name": "gradnorm"},
        "image_pool": 2,
        "ema": {"decay": 0.9},
        "schedule": {"name": "cosine"},
        "checkpoint": {"every": 2, "keep": 2},
    })


@pytest.fixture(scope="module")
def gancr(tmp_path_factory) -> Iterator[GancrForks]:
    """Runs ``gancr`` commands in subprocesses that see an installed plugin package that
    sleeps ``GANCR_TEST_STEP_SLEEP`` seconds after every step (0 unless a command sets it)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        site = EntryPointPlugins(tmp_path_factory.mktemp("site"), monkeypatch)
        site.add("gancr_test_slow_steps", SLOW_STEPS)
        server = GancrForks(subprocess_env(PYTHONPATH=str(site.root)))
        try:
            yield server
        finally:
            server.close()
            site.cleanup()


def _train(gancr: GancrForks, tmp_path: Path, name: str, *args: str | Path, **env: str) -> ForkedCommand:
    """``gancr train ARGS --quiet`` started, its output in ``tmp_path/name.out`` and ``.err``."""
    return gancr.start("train", *args, "--quiet", stdout=tmp_path / f"{name}.out", stderr=tmp_path / f"{name}.err",
                       **env)


def test_max_steps_then_resume_matches_a_straight_run(tmp_path, image_dirs, gancr):
    spec = _spec_file(tmp_path, _resume_spec(image_dirs))
    a, b = tmp_path / "a", tmp_path / "b"
    first = _train(gancr, tmp_path, "first", spec, "--out", a, "--max-steps", "3")
    assert first.wait(timeout=120) == 0, first.output()[1]
    straight = _train(gancr, tmp_path, "straight", spec, "--out", b)
    assert straight.wait(timeout=120) == 0, straight.output()[1]
    out = first.output()[0]
    assert "stopped at step 3 of 6 (--max-steps)" in out and "--resume" in out
    assert not (a / "generator.safetensors").exists()
    assert [s for s, _ in RunDir(a).checkpoints()] == [2, 3]

    resumed = _train(gancr, tmp_path, "resumed", spec, "--out", a, "--resume")
    assert resumed.wait(timeout=120) == 0, resumed.output()[1]
    assert f"resuming from {a / 'checkpoints' / 'step_0000003.pt'} (step 3)" in resumed.output()[0]
    assert_same_tensors(generator_tensors(a / "generator.safetensors"), generator_tensors(b / "generator.safetensors"))
    strip = lambda m: {k: v for k, v in m.items() if k not in ("time", "images_per_s")}  # noqa: E731
    assert [strip(m) for m in read_metrics(a)] == [strip(m) for m in read_metrics(b)]


def _long_spec(tmp_path: Path, image_dirs) -> Path:
    return _spec_file(tmp_path, tiny_spec(*image_dirs, training={
        "stages": [{"name": "separate", "steps": 4}, {"name": "joint", "steps": 16}],
        "checkpoint": {"every": 3, "keep": 2},
    }))


def _start(gancr: GancrForks, spec: Path, run: Path, tmp_path: Path) -> tuple[ForkedCommand, Path, Path]:
    proc = _train(gancr, tmp_path, "slow", spec, "--out", run, GANCR_TEST_STEP_SLEEP="0.1")
    return proc, proc.stdout, proc.stderr


def _wait_for_checkpoint(proc: ForkedCommand, run: Path, err: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not RunDir(run).checkpoints():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (status {proc.returncode}) before its first checkpoint: {err.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint appeared in time")
        time.sleep(0.01)
    assert proc.poll() is None, "the run must still be training when it is signalled"


def test_sigkill_leaves_loadable_checkpoints_and_resume_finishes(tmp_path, image_dirs, gancr):
    spec, run = _long_spec(tmp_path, image_dirs), tmp_path / "run"
    proc, _, err = _start(gancr, spec, run, tmp_path)
    _wait_for_checkpoint(proc, run, err)
    time.sleep(0.15)  # somewhere in a later step
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL

    found = RunDir(run).checkpoints()
    assert found and found[-1][0] < 20
    for step, path in found:
        assert load_checkpoint(path).step == step

    resumed = _train(gancr, tmp_path, "resumed", spec, "--out", run, "--resume")
    assert resumed.wait(timeout=120) == 0, resumed.output()[1]
    assert re.search(r"resuming from .*step_\d+\.pt \(step \d+\)", resumed.output()[0])
    assert [m["step"] for m in read_metrics(run)] == list(range(1, 21))
    # and the result is the straight run's, bit for bit (on one thread, as the subprocesses)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(yaml.safe_load(spec.read_text()), tmp_path / "straight", quiet=True).fit()
    finally:
        torch.set_num_threads(threads)
    assert_same_tensors(generator_tensors(run / "generator.safetensors"),
                        generator_tensors(tmp_path / "straight" / "generator.safetensors"))


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_signal_saves_a_checkpoint_and_exits_128_plus_its_number(tmp_path, image_dirs, gancr, signum, status):
    """Ctrl-C, a scheduler's SIGTERM and a closed terminal's SIGHUP all stop after the step, with a checkpoint."""
    spec, run = _long_spec(tmp_path, image_dirs), tmp_path / "run"
    proc, out, err = _start(gancr, spec, run, tmp_path)
    _wait_for_checkpoint(proc, run, err)
    time.sleep(0.05)
    proc.send_signal(signum)
    assert proc.wait(timeout=60) == status
    message = err.read_text()
    assert "Traceback" not in message
    match = re.search(r"interrupted at step (\d+); checkpoint (\S+)\. Continue with: gancr train .* --resume", message)
    assert match, message
    step, path = int(match.group(1)), Path(match.group(2))
    assert 3 <= step < 20
    assert path == run / "checkpoints" / f"step_{step:07d}.pt"
    assert load_checkpoint(path).step == step
    assert [m["step"] for m in read_metrics(run)] == list(range(1, step + 1))
    assert not (run / "generator.safetensors").exists()
    if signum != signal.SIGINT:
        return  # the resume that follows is the same for every signal: once is enough

    resumed = _train(gancr, tmp_path, "resumed", spec, "--out", run, "--resume")
    assert resumed.wait(timeout=120) == 0, resumed.output()[1]
    assert f"resuming from {path} (step {step})" in resumed.output()[0]
    assert [m["step"] for m in read_metrics(run)] == list(range(1, 21))
    assert (run / "generator.safetensors").is_file()
