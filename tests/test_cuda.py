"""The fast paths on a real CUDA device: bf16 autocast, fp16 with a scaler, channels_last,
torch.compile, device-side augmentation. Skipped without CUDA; run by benchmarks/gpu_check.sh."""

from __future__ import annotations

import pytest
import torch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

SPEC = {
    "model": {
        "generator": {"encoder": {"name": "conv", "widths": [16, 32, 64]}, "neck": {"name": "resblocks", "blocks": 2},
                      "decoder": {"name": "upsample_conv"}},
        "content_net": {"encoder": {"name": "conv", "widths": [16, 32]}},
        "discriminator": {"name": "patchgan", "layers": 2, "width": 16},
    },
    "losses": {"content": [{"name": "l1"}, {"name": "ssim"}, {"name": "content_net"}],
               "style": [{"name": "lsgan"}, {"name": "r1", "gamma": 1.0}]},
    "training": {"stages": [{"name": "separate", "steps": 2}, {"name": "joint", "steps": 3}],
                 "batch_size": 4, "image_size": 64, "tensorboard": False, "device": "cuda"},
}


def _trainer(tmp_path, *overrides):
    from gancr.training import Trainer

    return Trainer(SPEC, tmp_path / "run", quiet=True, overrides=list(overrides))


def _steps(trainer, n=3):
    x = torch.rand(4, 3, 64, 64, device="cuda")
    s = torch.rand(4, 3, 64, 64, device="cuda")
    before = [p.detach().clone() for p in trainer.generator.parameters()]
    metrics = [trainer.train_step(trainer.to_device(x), trainer.to_device(s)) for _ in range(n)]
    moved = any(not torch.equal(b, p) for b, p in zip(before, trainer.generator.parameters()))
    return metrics, moved


def test_defaults_on_cuda_are_bf16_and_channels_last(tmp_path):
    trainer = _trainer(tmp_path)
    assert trainer.device.type == "cuda"
    assert trainer.precision == "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    assert trainer.channels_last
    w = next(p for p in trainer.generator.parameters() if p.dim() == 4)
    assert w.is_contiguous(memory_format=torch.channels_last)
    assert trainer.optimizers["generator"].defaults.get("fused") is True
    metrics, moved = _steps(trainer)
    assert moved and all(m["skipped"] == 0 for m in metrics)
    assert all(torch.isfinite(torch.tensor(m["loss/generator"])) for m in metrics)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_other_precisions(tmp_path, precision):
    trainer = _trainer(tmp_path, f"training.precision={precision}")
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    metrics, moved = _steps(trainer)
    assert moved


def test_compiled_step_matches_eager_closely(tmp_path):
    eager = _trainer(tmp_path / "e", "training.precision=fp32", "training.channels_last=false")
    compiled = _trainer(tmp_path / "c", "training.precision=fp32", "training.channels_last=false", "training.compile=true")
    x = torch.rand(4, 3, 64, 64, device="cuda")
    s = torch.rand(4, 3, 64, 64, device="cuda")
    stage = eager.spec.training.stages[1]
    with torch.no_grad():
        a = eager.generator_losses(x, s, stage)["objective"]
        b = compiled.generator_losses(x, s, stage)["objective"]
    assert torch.allclose(a, b, rtol=1e-3, atol=1e-4)
    _, moved = _steps(compiled, 2)
    assert moved


def test_device_augmentation_and_a_short_fit(tmp_path):
    from gancr.data import DeviceAugment

    aug = DeviceAugment(32, (0.5, 1.0), True, 0.2).cuda()
    out = aug(torch.randint(0, 255, (4, 3, 48, 48), dtype=torch.uint8, device="cuda"))
    assert out.shape == (4, 3, 32, 32) and out.is_cuda and 0 <= out.min() and out.max() <= 1
    pytest.importorskip("skimage")
    trainer = _trainer(tmp_path, "data.augment_on=device", "training.image_size=32")
    result = trainer.fit()
    assert result.status == "finished" and (tmp_path / "run" / "generator.safetensors").exists()


def test_inference_on_cuda_matches_cpu(tmp_path):
    from gancr import build

    trio = build({"model": SPEC["model"], "training": {"image_size": 64}}).eval()
    x = torch.rand(1, 3, 70, 90)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions differ from fp32 by ~1e-3
    try:
        with torch.no_grad():
            cpu = trio.generator(x)
            gpu = trio.generator.cuda()(x.cuda()).cpu()
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    assert torch.allclose(cpu, gpu, atol=1e-4)


def test_stylize_picks_the_faster_precision_and_keeps_the_result(tmp_path):
    from gancr import build
    from gancr.inference import fastest_precision, stylize_tensor

    trio = build({"model": SPEC["model"], "training": {"image_size": 64}}).eval().cuda()
    x = torch.rand(3, 96, 128)
    chosen = fastest_precision(trio.generator, x.cuda())
    assert chosen in ("fp32", "bf16")
    auto = stylize_tensor(trio.generator, x, precision="auto")
    fp32 = stylize_tensor(trio.generator, x, precision="fp32")
    assert auto.shape == x.shape and auto.device == x.device and torch.allclose(auto, fp32, atol=2e-2)
