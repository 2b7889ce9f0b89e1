"""What the plugin logs, and where: one MLflow run per gancr run directory.

- **Where.** The tracking URI is MLflow's own ``MLFLOW_TRACKING_URI`` (a server, ``sqlite:///mlflow.db``,
  or a local folder ``file:./mlruns`` with ``MLFLOW_ALLOW_FILE_STORE=true``); without it the
  plugin logs nothing, so installing it changes no run until you say where to log. The
  experiment is ``GANCR_MLFLOW_EXPERIMENT`` (default ``gancr``); the MLflow run is named
  after the run directory.
- **When.** The run starts at the first stage (its id is kept in ``<run>/mlflow_run_id``, so
  ``gancr train --resume`` continues the same MLflow run); the spec's fields are its params and
  ``spec.yaml`` its artifact; every step that ``metrics.jsonl`` records (``training.log_every``)
  logs the same metrics at the same step (``/`` in their names written as ``.``: :func:`metric_name`); each checkpoint sets the tag
  ``gancr.checkpoint`` and the metric ``checkpoint_step``; the last step ends the MLflow run
  as FINISHED.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["MlflowLogger", "flatten", "metric_name", "RUN_ID_FILE"]

#: The file in a gancr run directory that keeps its MLflow run's id.
RUN_ID_FILE = "mlflow_run_id"

#: MLflow's limit on a param value's length.
_PARAM_MAX = 500


def metric_name(key: str) -> str:
    """``loss/style/lsgan`` -> ``loss.style.lsgan``: MLflow's file store keeps a metric per file,
    so it cannot hold both ``loss/style`` and ``loss/style/lsgan``."""
    return key.replace("/", ".")


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``("model.generator.encoder.name", "conv")`` ... for every leaf of nested mappings and lists."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list) and data and any(isinstance(v, (Mapping, list)) for v in data):
        for i, value in enumerate(data):
            yield from flatten(value, f"{prefix}.{i}")
    else:
        yield prefix, str(data)[:_PARAM_MAX]


class MlflowLogger:
    """The plugin's state: the MLflow client and the run of each gancr run directory."""

    def __init__(self) -> None:
        self.runs: dict[Path, str] = {}
        self.client: Any = None

    def _client(self) -> Any:
        if self.client is None:
            from mlflow.tracking import MlflowClient

            self.client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
        return self.client

    @staticmethod
    def enabled() -> bool:
        return bool(os.environ.get("MLFLOW_TRACKING_URI"))

    def run_id(self, trainer: Any) -> str | None:
        """The MLflow run of ``trainer``'s run directory: resumed, or created with its params."""
        if not self.enabled():
            return None
        out = Path(trainer.out_dir)
        if out in self.runs:
            return self.runs[out]
        client = self._client()
        saved = out / RUN_ID_FILE
        if saved.is_file():
            run_id = saved.read_text(encoding="utf-8").strip()
            client.update_run(run_id, status="RUNNING")
        else:
            name = os.environ.get("GANCR_MLFLOW_EXPERIMENT", "gancr")
            experiment = client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
            run = client.create_run(experiment_id, run_name=out.name, tags={"gancr.run_dir": str(out.resolve())})
            run_id = run.info.run_id
            from mlflow.entities import Param

            params = [Param(k, v) for k, v in flatten(trainer.spec.to_dict())]
            for start in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
                client.log_batch(run_id, params=params[start : start + 100])
            if (out / "spec.yaml").is_file():
                client.log_artifact(run_id, str(out / "spec.yaml"))
            saved.write_text(run_id + "\n", encoding="utf-8")
        self.runs[out] = run_id
        return run_id

    def stage_start(self, trainer: Any, stage: Any, stage_index: int) -> None:
        run_id = self.run_id(trainer)
        if run_id is not None:
            self._client().set_tag(run_id, "gancr.stage", f"{stage_index + 1} {stage.name}")

    def step_end(self, trainer: Any, step: int, metrics: Mapping[str, float]) -> None:
        run_id = self.run_id(trainer)
        if run_id is None:
            return
        stop = trainer.total_steps if trainer.max_steps is None else min(trainer.total_steps, trainer.max_steps)
        if step % trainer.spec.training.log_every == 0 or step == stop:  # what metrics.jsonl records
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            batch = [Metric(metric_name(k), float(v), now, step) for k, v in metrics.items() if k not in ("step", "time")]
            self._client().log_batch(run_id, metrics=batch)
        if step >= trainer.total_steps:
            self._client().set_terminated(run_id, "FINISHED")

    def checkpoint(self, trainer: Any, step: int, path: Path) -> None:
        run_id = self.run_id(trainer)
        if run_id is None:
            return
        client = self._client()
        client.set_tag(run_id, "gancr.checkpoint", str(path))
        from mlflow.entities import Metric

        client.log_batch(run_id, metrics=[Metric("checkpoint_step", float(step), int(time.time() * 1000), step)])
