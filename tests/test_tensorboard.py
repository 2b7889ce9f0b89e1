"""TensorBoard logs: a run with ``training.tensorboard: true`` writes the same scalars as
``metrics.jsonl`` (CI installs the ``tensorboard`` extra, so this runs there)."""

from __future__ import annotations

import os

import pytest

from gancr.training import Trainer

from trainkit import image_dirs, read_metrics, tiny_spec  # noqa: F401 - fixture

if not os.environ.get("CI"):  # in CI the extra is installed, and a missing one is a failure
    pytest.importorskip("tensorboard")


def test_tensorboard_scalars_are_the_metrics_of_metrics_jsonl(tmp_path, image_dirs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = tiny_spec(*image_dirs, training={"tensorboard": True, "log_every": 1})
    Trainer(spec, tmp_path / "run", quiet=True).fit()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    logged = read_metrics(tmp_path / "run")
    assert [m["step"] for m in logged] == [1, 2, 3, 4]
    tags = set(events.Tags()["scalars"])
    assert {"loss/generator", "loss/discriminator", "loss/reconstruction", "weight/w_c", "lr/generator"} <= tags
    assert "step" not in tags and "time" not in tags
    for key in ("loss/generator", "weight/w_g"):
        assert [(e.step, e.value) for e in events.Scalars(key)] == [(m["step"], pytest.approx(m[key])) for m in logged]
