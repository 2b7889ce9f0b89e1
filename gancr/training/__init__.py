"""The two-stage multi-task trainer.

- :mod:`~gancr.training.trainer`: :class:`Trainer` (what a step works with, made from a spec;
  the loop, samples, checkpoints);
- :mod:`~gancr.training.step`: :class:`TrainingStep`, one step's losses and updates, with its
  collaborators passed in explicitly; the stages as types;
- :mod:`~gancr.training.optimizers`: the optimisers and their learning-rate schedule;
- :mod:`~gancr.training.history`: the EMA of the generator, the image pool of past fakes;
- :mod:`~gancr.training.metrics_log`: ``metrics.jsonl``, TensorBoard, the progress bar;
- :mod:`~gancr.training.resume`: the random states a checkpoint holds, the spec a resume may change;
- :mod:`~gancr.training.distributed`: data-parallel training under ``torchrun``;
- :mod:`~gancr.training.preflight`: what training would fail on at once (``gancr validate``).
"""

from gancr.errors import TrainingError
from gancr.training.step import Collaborators, JointStage, SeparateStage, StepSettings, TrainingStep
from gancr.training.trainer import FitResult, Trainer

__all__ = ["Trainer", "FitResult", "TrainingError", "TrainingStep", "Collaborators", "StepSettings",
           "SeparateStage", "JointStage"]
