"""A run folder (:class:`RunDir`): where each of its files is, its newest loadable checkpoint, its
weights read once (:func:`read_run`).

:class:`~gancr.training.Trainer` writes a run folder::

    RUN/spec.yaml                   the resolved spec
    RUN/metrics.jsonl               one line of metrics per logged step
    RUN/checkpoints/step_N.pt       the newest few checkpoints (everything a resume needs)
    RUN/samples/step_N.png          sample grids
    RUN/generator.safetensors       at the end: the generator (and EMA) and content-net weights, with the spec
    RUN/tensorboard/                TensorBoard scalars, when enabled
    RUN/.gancr.lock                 held by the process that trains in it

Every file is written to a temporary name in the same folder and renamed into place
(:mod:`gancr.storage.files`), so a run killed at any moment leaves the last complete
checkpoint loadable; checkpoints and generator files carry a checksum of their content,
verified on load, so a resume falls back to the checkpoint before a damaged one.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gancr.errors import CheckpointError, GancrError
from gancr.storage.files import LOCK_NAME, RunLock, atomic_write_text, remove_orphans
from gancr.storage.integrity import looks_like_safetensors
from gancr.storage.records import (
    Checkpoint,
    InferenceWeights,
    load_checkpoint,
    read_generator_file,
    save_checkpoint,
    save_generator,
)

__all__ = ["RunDir", "FoundCheckpoint", "read_run", "RUN_FILES"]

_CHECKPOINT_NAME = re.compile(r"^step_(\d+)\.pt$")

#: What a run writes into its folder (``checkpoints/`` and ``samples/`` count by their files).
RUN_FILES = ("spec.yaml", "metrics.jsonl", "generator.safetensors", "checkpoints", "samples", "stylized",
             "tensorboard")


@dataclass(frozen=True)
class FoundCheckpoint:
    """A checkpoint file and its record, as :meth:`RunDir.newest_checkpoint` found it."""

    path: Path
    checkpoint: Checkpoint


class RunDir:
    """A run folder: the paths of its files, and reading and writing them.

    Args:
        path: the folder (it need not exist yet).

    Example:
        >>> run = RunDir("runs/quick")
        >>> run.checkpoint_file(40).as_posix()
        'runs/quick/checkpoints/step_0000040.pt'
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    # -- where things are ----------------------------------------------------------------

    @property
    def spec_file(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def generator_file(self) -> Path:
        return self.path / "generator.safetensors"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def stylized_dir(self) -> Path:
        """Where ``gancr train`` writes its demo stylisations."""
        return self.path / "stylized"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_NAME

    def checkpoint_file(self, step: int) -> Path:
        return self.checkpoints_dir / f"step_{step:07d}.pt"

    def sample_file(self, step: int) -> Path:
        return self.samples_dir / f"step_{step:07d}.png"

    def samples(self) -> list[Path]:
        """The sample grids, oldest first."""
        return sorted(self.samples_dir.glob("step_*.png"))

    # -- the spec ------------------------------------------------------------------------

    def write_spec(self, yaml_text: str) -> Path:
        return atomic_write_text(self.spec_file, yaml_text)

    def spec(self) -> dict[str, Any]:
        """The resolved spec of ``spec.yaml``, as plain data (not validated).

        Raises:
            GancrError: no spec.yaml, or it is not a readable YAML mapping (the reason is named).
        """
        import yaml

        if not self.spec_file.is_file():
            raise GancrError(f"{self.path} has no spec.yaml")
        try:
            data = yaml.safe_load(self.spec_file.read_text(encoding="utf-8", errors="replace"))
        except (OSError, yaml.YAMLError, RecursionError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise GancrError(f"{self.spec_file} is not a readable spec: {reason}") from None
        if not isinstance(data, dict):
            raise GancrError(f"{self.spec_file} holds a {type(data).__name__}, not a spec")
        return data

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of the checkpoint files, by their names, oldest first (not read)."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for p in self.checkpoints_dir.iterdir():
            m = _CHECKPOINT_NAME.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def newest_checkpoint(self, map_location: Any = "cpu") -> FoundCheckpoint | None:
        """The newest checkpoint that loads (damaged ones are skipped with a warning), or None.

        This is what a resume continues from, what inference reads of an unfinished run, and
        what messages call "intact".
        """
        for _, path in reversed(self.checkpoints()):
            try:
                return FoundCheckpoint(path, load_checkpoint(path, map_location=map_location))
            except CheckpointError as exc:
                warnings.warn(f"skipping checkpoint {path.name}: {exc}", stacklevel=2)
        return None

    def save_checkpoint(self, record: Checkpoint) -> Path:
        """Write ``checkpoints/step_<N>.pt`` atomically (see :func:`gancr.storage.records.save_checkpoint`)."""
        return save_checkpoint(self.checkpoint_file(record.step), record)

    def prune_checkpoints(self, keep: int) -> list[Path]:
        """Delete all but the newest ``keep`` checkpoint files; returns the deleted paths."""
        found = self.checkpoints()
        removed = []
        for _, path in found[:-keep] if keep > 0 else found:
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    # -- the generator file and the run's weights -----------------------------------------

    def save_generator(self, weights: InferenceWeights) -> Path:
        return save_generator(self.generator_file, weights)

    def weights(self) -> InferenceWeights:
        """The run's weights for inference: ``generator.safetensors`` when training finished, else
        its newest checkpoint that loads.

        Raises:
            CheckpointError: neither is there, or the file is unreadable or unsafe.
        """
        if self.generator_file.is_file():
            return read_generator_file(self.generator_file)
        found = self.newest_checkpoint()
        if found is None:
            raise CheckpointError(f"{self.path} holds neither generator.safetensors nor a checkpoint in checkpoints/")
        return found.checkpoint.inference_weights(found.path)

    # -- the folder ----------------------------------------------------------------------

    def lock(self) -> RunLock:
        """Hold the folder for this process (:class:`~gancr.storage.files.RunLock`)."""
        return RunLock(self.path)

    def remove_orphans(self) -> list[Path]:
        """Delete the temporary files of writes that a kill cut short (only in a locked folder)."""
        return [p for folder in (self.path, self.checkpoints_dir, self.samples_dir) for p in remove_orphans(folder)]

    def files(self) -> list[Path]:
        """The run's files and non-empty folders here (:data:`RUN_FILES`; empty when none)."""
        found = []
        for name in RUN_FILES:
            p = self.path / name
            if p.is_file() or (p.is_dir() and any(p.iterdir())):
                found.append(p)
        return found

    def clear(self) -> list[Path]:
        """Delete the run's files (:meth:`files`; anything else stays); returns them."""
        removed = self.files()
        for p in removed:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        return removed


def read_run(path: str | os.PathLike[str]) -> InferenceWeights:
    """The weights and spec of a run directory, ``generator.safetensors`` or checkpoint, read once.

    A run directory gives its ``generator.safetensors`` when training finished, else its
    newest checkpoint that loads (:meth:`RunDir.weights`); the file read is the result's ``path``.

    Raises:
        CheckpointError: nothing to read there, an unreadable or unsafe file, or no spec in it.
    """
    p = Path(path)
    if p.is_dir():
        return RunDir(p).weights()
    if not p.is_file():
        raise CheckpointError(f"no run directory, generator file or checkpoint at {p}")
    if p.suffix == ".safetensors" or looks_like_safetensors(p):
        return read_generator_file(p)
    return load_checkpoint(p).inference_weights(p)
