"""The gancr plugin ``mlflow``: logs every training run to MLflow while ``MLFLOW_TRACKING_URI`` is set.

gancr loads this module through the entry point ``mlflow`` of group ``gancr`` (pyproject.toml)
and calls the hooks below on the training process (rank 0 under torchrun).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gancr

from gancr_mlflow.logger import MlflowLogger

#: The gancr plugin API versions this plugin supports (a PEP 440 specifier).
GANCR_PLUGIN_API = ">=1,<2"

_LOGGER = MlflowLogger()


@gancr.hookimpl
def gancr_on_stage_start(trainer: Any, stage: Any, stage_index: int) -> None:
    _LOGGER.stage_start(trainer, stage, stage_index)


@gancr.hookimpl
def gancr_on_step_end(trainer: Any, step: int, metrics: dict[str, float]) -> None:
    _LOGGER.step_end(trainer, step, metrics)


@gancr.hookimpl
def gancr_on_checkpoint(trainer: Any, step: int, path: Path) -> None:
    _LOGGER.checkpoint(trainer, step, path)
