"""What a run reports while it trains: ``metrics.jsonl``, TensorBoard scalars, the progress bar."""

from __future__ import annotations

import json
import math
from typing import Any

from gancr.progress import Progress
from gancr.storage import RunDir
from gancr.storage.files import atomic_write_text, write_error

__all__ = ["MetricsLog", "postfix", "trim_metrics"]


class MetricsLog:
    """The metrics a run reports during one :meth:`~gancr.training.Trainer.fit` (``metrics.jsonl``,
    TensorBoard, the progress display); nothing at all when not ``enabled`` (processes other
    than rank 0). Not the run folder: that is :class:`gancr.storage.RunDir`.

    Args:
        run: the run directory (``metrics.jsonl`` and ``tensorboard/`` go there).
        training: the spec's ``training`` section (read, never changed: a resumed run compares
            it with the checkpoint's). With ``tensorboard: true`` but TensorBoard not installed,
            only ``metrics.jsonl`` is written.
        enabled: whether this process logs.
        quiet: no progress display.
        total, initial: the progress display's last and first step (a bar on a terminal, else
            one plain line every few steps: :class:`gancr.progress.Progress`).
    """

    def __init__(self, run: RunDir, training: Any, *, enabled: bool, quiet: bool, total: int, initial: int):
        self.run, self.training, self.enabled = run, training, enabled
        self.bar = Progress(total, "train", "step", initial=initial, enabled=enabled and not quiet)
        try:
            self.file = open(run.metrics_file, "a", encoding="utf-8") if enabled else None
        except OSError as exc:
            self.bar.close()
            raise write_error(exc, run.metrics_file) from None
        self.tensorboard: Any = None
        self.tensorboard_missing = False
        self.shown = ""  # the progress display's losses, until the first step that logs

    def stage(self, text: str) -> None:
        """Show the stage on the progress display."""
        self.bar.set_description(text)

    def write(self, metrics: dict[str, float]) -> None:
        """Append one step's metrics to ``metrics.jsonl`` (and TensorBoard, when installed)."""
        if self.file is None:
            return
        try:
            self.file.write(json.dumps(metrics) + "\n")
            self.file.flush()
        except OSError as exc:
            raise write_error(exc, self.run.metrics_file,
                              kept="the lines written before are kept, and so are the checkpoints") from None
        if not self.training.tensorboard or self.tensorboard_missing:
            return
        if self.tensorboard is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.tensorboard_missing = True  # as documented: TensorBoard logs when installed
                return
            self.tensorboard = SummaryWriter(str(self.run.tensorboard_dir))
        for key, value in metrics.items():
            if key not in ("step", "time") and math.isfinite(value):
                self.tensorboard.add_scalar(key, value, int(metrics["step"]))

    def advance(self, metrics: dict[str, float], rate: float | None) -> None:
        """One step more on the progress bar, with the losses of the last step that logged them
        (``training.log_every``) and the throughput."""
        if "loss/generator" in metrics:
            self.shown = postfix(metrics, rate)
        self.bar.update(1, self.shown)

    def close(self) -> None:
        for thing in (self.file, self.bar, self.tensorboard):
            if thing is not None:
                thing.close()


def postfix(metrics: dict[str, float], rate: float | None) -> str:
    """``G 0.812, content 0.104, rec 0.051, D 0.498, 12.3 img/s``: the progress bar's text."""
    parts = [f"G {metrics['loss/generator']:.3f}"]
    if "loss/content" in metrics:
        parts.append(f"content {metrics['loss/content']:.3f}")
    parts.append(f"rec {metrics['loss/reconstruction']:.3f}")
    if "loss/discriminator" in metrics:
        parts.append(f"D {metrics['loss/discriminator']:.3f}")
    if rate is not None:
        parts.append(f"{rate:.1f} img/s")
    return ", ".join(parts)


def trim_metrics(run: RunDir, step: int) -> None:
    """Drop logged steps after ``step`` (a resumed checkpoint's) so ``metrics.jsonl`` stays consistent."""
    path = run.metrics_file
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))
