"""The trainer's CUDA-only paths that once failed: the uncertainty balancer's weights on the
GPU, resuming on the GPU (random states loaded onto it), fp16's gradient scaler with several
discriminator steps, a skipped step, and a resume. Skipped without CUDA (run by
benchmarks/gpu_check.sh)."""

from __future__ import annotations

import pytest
import torch

import gancr
from gancr.training import Trainer

from test_training import TrainingTestComponents
from trainkit import image_dirs, read_metrics, tiny_spec  # noqa: F401 - image_dirs is a fixture

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _spec(image_dirs, **training):
    return tiny_spec(*image_dirs, training={"device": "cuda", "precision": "auto", "image_pool": 2,
                                            "checkpoint": {"every": 2, "keep": 5}, **training})


@pytest.mark.parametrize("balancer", ["uncertainty", "gradnorm", "constraint"])
def test_balancers_on_cuda(tmp_path, image_dirs, balancer):
    trainer = Trainer(_spec(image_dirs, balancer={"name": balancer}), tmp_path / "run", quiet=True)
    assert trainer.fit().status == "finished"
    assert all(m["skipped"] == 0.0 for m in read_metrics(tmp_path / "run"))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_resume_on_cuda(tmp_path, image_dirs, precision):
    spec = _spec(image_dirs, precision=precision, balancer={"name": "uncertainty"})
    assert Trainer(spec, tmp_path / "run", quiet=True, max_steps=3).fit().status == "max_steps"
    resumed = Trainer(spec, tmp_path / "run", quiet=True, resume=True)
    assert resumed.step == 3 and resumed.fit().status == "finished"
    assert [m["step"] for m in read_metrics(tmp_path / "run")] == [1, 2, 3, 4]


def test_fp16_with_several_d_steps_and_a_skipped_step(tmp_path, image_dirs):
    spec = _spec(image_dirs, precision="fp16", d_steps=2)
    spec["losses"]["content"].append({"name": "nan_after", "start": 1, "stop": 2})
    with gancr.registered_plugin(TrainingTestComponents(), "test-training-components"):
        trainer = Trainer(spec, tmp_path / "run", quiet=True)
        with pytest.warns(RuntimeWarning, match="step 3: skipped"):
            assert trainer.fit().status == "finished"
    assert trainer.precision == "fp16" and trainer.scaler.is_enabled()
    assert [m["skipped"] for m in read_metrics(tmp_path / "run")] == [0.0, 0.0, 1.0, 0.0]
