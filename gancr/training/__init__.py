"""The two-stage multi-task trainer, its balancers' wiring, checkpoints and run files."""

from gancr.training.trainer import FitResult, Trainer, TrainingError

__all__ = ["Trainer", "FitResult", "TrainingError"]
