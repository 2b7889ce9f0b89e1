"""gancr-mlflow logs a real training run to a local MLflow store (offline), resumes it, and stays
silent until a tracking URI is set."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import gancr
from gancr.plugins import get_registry
from gancr.training import Trainer

from gancr_mlflow.logger import RUN_ID_FILE, flatten, metric_name

TINY = {
    "model": {
        "generator": {"encoder": {"name": "conv", "widths": [8, 16]}, "neck": {"name": "resblocks", "blocks": 1}},
        "content_net": {"encoder": {"name": "conv", "widths": [8, 16]}},
        "discriminator": {"name": "patchgan", "layers": 2, "width": 8},
    },
    "training": {
        "stages": [{"name": "separate", "steps": 2}, {"name": "joint", "steps": 2}],
        "image_size": 32, "batch_size": 2, "device": "cpu", "precision": "fp32", "tensorboard": False,
        "sample_every": 1000, "log_every": 1, "checkpoint": {"every": 2, "keep": 3},
    },
}


@pytest.fixture
def spec(tmp_path):
    rng = np.random.default_rng(0)
    for domain in ("content", "style"):
        folder = tmp_path / domain
        folder.mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return {**TINY, "data": {"content": str(tmp_path / "content"), "style": str(tmp_path / "style"), "load_size": 40}}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'mlruns'}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("GANCR_MLFLOW_EXPERIMENT", "gancr-test")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"file:{tmp_path / 'mlruns'}")


def test_registered_through_its_entry_point():
    assert "mlflow" in get_registry().plugins


def test_a_run_is_logged_and_a_resume_continues_it(spec, store, tmp_path):
    out = tmp_path / "run"
    assert Trainer(spec, out, quiet=True, max_steps=2).fit().status == "max_steps"
    run_id = (out / RUN_ID_FILE).read_text().strip()
    assert store.get_run(run_id).info.status == "RUNNING"  # stopped by --max-steps, to be resumed
    assert Trainer(spec, out, quiet=True, resume=True).fit().status == "finished"
    assert (out / RUN_ID_FILE).read_text().strip() == run_id  # the same MLflow run

    run = store.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert store.get_experiment(run.info.experiment_id).name == "gancr-test"
    assert run.data.params["model.generator.encoder.name"] == "conv"
    assert run.data.params["training.stages.1.name"] == "joint"
    assert run.data.tags["gancr.checkpoint"].endswith("step_0000004.pt")
    assert run.data.tags["gancr.stage"] == "2 joint"
    # every metric of metrics.jsonl, at the same steps, with the same values
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == [1, 2, 3, 4]
    for key in ("loss/generator", "loss/style", "loss/style/lsgan", "weight/w_c", "lr/generator"):
        history = sorted(store.get_metric_history(run_id, metric_name(key)), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == [(m["step"], pytest.approx(m[key])) for m in logged], key
    steps = [m.step for m in store.get_metric_history(run_id, "checkpoint_step")]
    assert sorted(steps) == [2, 4]
    assert "spec.yaml" in [a.path for a in store.list_artifacts(run_id)]


def test_nothing_is_logged_without_a_tracking_uri(spec, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    Trainer(spec, tmp_path / "run", quiet=True, max_steps=1).fit()
    assert not (tmp_path / "run" / RUN_ID_FILE).exists()
    assert not (tmp_path / "mlruns").exists()


def test_params_are_the_flattened_spec():
    spec = gancr.load_spec({"losses": {"content": [{"name": "l1", "weight": 2.0}]}})
    params = dict(flatten(spec.to_dict()))
    assert params["losses.content.0.name"] == "l1" and params["losses.content.0.weight"] == "2.0"
    assert params["data.crop_scale"] == "[0.5, 1.0]" or "data.crop_scale" in params
