"""The two-stage multi-task trainer, in process: stage semantics, balancers, trainable loss
parameters, EMA and the image pool, resume, non-finite losses, and data edge cases.

Every run is tiny (see ``trainkit``); components that only a test needs (a loss that turns
NaN, a loss with a trainable parameter) are registered with ``gancr.registered_plugin`` for
the duration of the test.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from pydantic import Field
from torch import nn

import gancr
from gancr.cli import main
from gancr.components.base import ContentLoss, StyleLoss
from gancr.data import DataError, DataWarning
from gancr.errors import GancrError
from gancr.registry import ComponentParams
from gancr.storage import RunDir, load_checkpoint
from gancr.training import Trainer, TrainingError

from trainkit import (
    TINY_MODEL,
    assert_same_tensors,
    changed,
    generator_tensors,
    image_dirs,  # noqa: F401 - fixture
    params,
    read_metrics,
    tiny_spec,
    write_folder,
    write_image,
)

# ----------------------------------------------------------------------------------------
# components registered by the tests
# ----------------------------------------------------------------------------------------


class NaNParams(ComponentParams):
    start: int = Field(1, ge=1, description="first call (1-based) that returns NaN")
    stop: int | None = Field(None, description="first call that is finite again (None: never)")


def _nan_now(module: nn.Module) -> bool:
    module.calls += 1
    return module.start <= module.calls and (module.stop is None or module.calls < module.stop)


class NaNContent(ContentLoss):
    """L1, but NaN from its ``start``-th call on (until ``stop``); joint stages only."""

    reconstruction = False  # called once per joint step

    def __init__(self, start: int = 1, stop: int | None = None):
        super().__init__()
        self.start, self.stop, self.calls = start, stop, 0

    def forward(self, x, y, context=None):
        value = F.l1_loss(y, x)
        return value * float("nan") if _nan_now(self) else value


class NaNStyle(StyleLoss):
    """A style statistic (mean brightness) that turns NaN from its ``start``-th call on."""

    adversarial = False

    def __init__(self, start: int = 1, stop: int | None = None):
        super().__init__()
        self.start, self.stop, self.calls = start, stop, 0

    def generator_loss(self, batch):
        value = (batch.fake.mean() - batch.real.mean()).abs()
        return value * float("nan") if _nan_now(self) else value


class LearnedScale(ContentLoss):
    """``exp(s) * L1`` with a trainable ``s``: a loss component with a parameter."""

    reconstruction = False

    def __init__(self):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(()))

    def forward(self, x, y, context=None):
        return self.log_scale.exp() * F.l1_loss(y, x)


class TrainingTestComponents:
    @gancr.hookimpl
    def gancr_register_components(self, registry):
        registry.register("content_loss", "nan_after", NaNContent, params=NaNParams)
        registry.register("style_loss", "nan_style", NaNStyle, params=NaNParams)
        registry.register("content_loss", "learned_scale", LearnedScale)


@pytest.fixture
def test_components():
    with gancr.registered_plugin(TrainingTestComponents(), "test-training-components"):
        yield


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)


def _moving(loss: torch.Tensor, parameters: list[torch.Tensor]) -> list[int]:
    """Indices of the parameters that get a non-zero gradient from ``loss``."""
    grads = torch.autograd.grad(loss, parameters, allow_unused=True, retain_graph=True)
    return [i for i, g in enumerate(grads) if g is not None and bool(g.abs().sum() > 0)]


def _trainer(spec: dict, out: Path, **kwargs) -> Trainer:
    return Trainer(spec, out, quiet=True, **kwargs)


# ----------------------------------------------------------------------------------------
# stage semantics
# ----------------------------------------------------------------------------------------


def test_stage_1_separates_style_and_reconstruction(tmp_path, image_dirs):
    trainer = _trainer(tiny_spec(*image_dirs), tmp_path / "run")
    G, C = list(trainer.generator.parameters()), list(trainer.content_net.parameters())
    stage = trainer.spec.training.stages[0]
    assert stage.name == "separate"
    x, s = _batch()
    terms = trainer.generator_losses(x, s, stage)

    assert "content" not in terms and terms["weights"]["w_c"] == 0.0
    assert terms["reconstruction"].item() > 0 and terms["style"].item() > 0
    # the content net learns nothing from style; the generator nothing from reconstruction
    assert _moving(terms["style"], C) == []
    assert _moving(terms["reconstruction"], G) == []
    # ... and each learns its own task
    assert len(_moving(terms["style"], G)) == len(G)
    assert len(_moving(terms["reconstruction"], C)) == len(C)
    torch.testing.assert_close(terms["objective"], stage.w_g * terms["style"] + terms["reconstruction"])

    # one real step moves all three networks
    before = {n: params(m) for n, m in (("G", trainer.generator), ("C", trainer.content_net), ("D", trainer.discriminator))}
    metrics = trainer.train_step(x, s)
    assert metrics["stage"] == 1 and metrics["skipped"] == 0.0 and "loss/discriminator" in metrics
    assert changed(before["G"], trainer.generator)
    assert changed(before["C"], trainer.content_net)
    assert changed(before["D"], trainer.discriminator)


def test_a_step_is_built_from_a_trio_and_runs_without_a_trainer():
    """The step is a unit (issue 20): its collaborators are passed in, its stage is a type."""
    from gancr.training.step import Collaborators, JointStage, SeparateStage, StepSettings, TrainingStep

    spec = gancr.load_spec({"model": TINY_MODEL, "training": {"image_size": 32}, "losses": {
        "content": [{"name": "l1"}, {"name": "l1", "weight": 0.5}, {"name": "content_net"}],
        "style": [{"name": "lsgan"}]}})
    torch.manual_seed(0)
    trio, losses = gancr.build(spec), gancr.build_losses(spec)
    step = TrainingStep(Collaborators.for_trio(trio, losses), StepSettings())
    nets = {"G": trio.generator, "C": trio.content_net, "D": trio.discriminator}
    before = {name: params(net) for name, net in nets.items()}
    x, s = _batch()

    metrics = step(x, s, number=0, stage=SeparateStage(w_g=2.0))
    assert "loss/content" not in metrics and (metrics["weight/w_c"], metrics["weight/w_g"]) == (0.0, 2.0)
    # every term under the label build_losses gave it; reconstruction uses the pixel losses only
    assert {k for k in metrics if k.startswith("loss/reconstruction/")} == {
        "loss/reconstruction/l1", "loss/reconstruction/l1.1"}
    metrics = step(x, s, number=1, stage=JointStage(w_c=0.5, w_g=1.5))
    assert (metrics["weight/w_c"], metrics["weight/w_g"]) == (0.5, 1.5) and metrics["skipped"] == 0.0
    assert {"loss/content/l1", "loss/content/l1.1", "loss/content/content_net", "loss/style/lsgan",
            "loss/style/lsgan/d", "loss/discriminator"} <= set(metrics)
    assert all(changed(before[name], net) for name, net in nets.items())
    assert step(x, s, number=2, stage=JointStage(), log=False).keys() == {
        "lr/generator", "lr/content_net", "lr/discriminator"}  # losses stay on the device until a step logs
    assert math.isfinite(step.settle(3)[0]["objective"]) and step.nonfinite == 0


def test_a_step_puts_modules_left_in_eval_back_in_training_mode(tmp_path, image_dirs):
    # train_step sets the modes only when a module is not training: a user's .eval() between
    # steps must still be undone, down to every submodule
    trainer = _trainer(tiny_spec(*image_dirs), tmp_path / "run")
    trainer.train_step(*_batch())
    trainer.generator.eval()
    trainer.content_net.eval()
    trainer.train_step(*_batch(1))
    for net in (trainer.generator, trainer.content_net):
        assert all(m.training for m in net.modules())


def test_stage_2_trains_generator_and_content_net_jointly(tmp_path, image_dirs):
    spec = tiny_spec(*image_dirs, losses={"content": [{"name": "l1"}, {"name": "content_net", "weight": 0.5}]},
                     training={"stages": [{"name": "separate", "steps": 1}, {"name": "joint", "steps": 2, "w_c": 0.7, "w_g": 1.3}]})
    trainer = _trainer(spec, tmp_path / "run")
    G, C = list(trainer.generator.parameters()), list(trainer.content_net.parameters())
    stage = trainer.spec.training.stages[1]
    x, s = _batch(1)
    terms = trainer.generator_losses(x, s, stage)

    # the reconstruction term is still there, and it is C's alone
    assert terms["reconstruction"].item() > 0 and "reconstruction/l1" in terms
    assert _moving(terms["reconstruction"], G) == [] and _moving(terms["reconstruction"], C)
    # the content loss reaches G, and C through its features (the content_net term)
    assert "content/l1" in terms and "content/content_net" in terms
    assert len(_moving(terms["content"], G)) == len(G)
    assert _moving(terms["content/content_net"], C)
    assert _moving(terms["style"], C) == []
    assert terms["weights"] == {"w_c": 0.7, "w_g": 1.3}
    torch.testing.assert_close(
        terms["objective"], 0.7 * terms["content"] + 1.3 * terms["style"] + terms["reconstruction"]
    )

    trainer.step = 1  # the first step of stage 2
    before = {n: params(m) for n, m in (("G", trainer.generator), ("C", trainer.content_net), ("D", trainer.discriminator))}
    metrics = trainer.train_step(x, s)
    assert metrics["stage"] == 2 and metrics["skipped"] == 0.0
    assert "loss/content" in metrics and metrics["loss/reconstruction"] > 0
    assert metrics["weight/w_c"] == 0.7 and metrics["weight/w_g"] == 1.3
    for name in "GCD":
        assert changed(before[name], {"G": trainer.generator, "C": trainer.content_net, "D": trainer.discriminator}[name]), name


def test_a_discriminator_on_a_frozen_encoder_trains_its_heads_only(tmp_path, image_dirs):
    """The trainer switches D's gradients off for G's update and on for D's own: a frozen
    encoder inside D (``projected``) stays frozen through both, so its weights never move and get
    no gradients, while its heads learn."""
    spec = tiny_spec(*image_dirs, training={"stages": [{"name": "separate", "steps": 1}, {"name": "joint", "steps": 2}]})
    spec["model"]["discriminator"] = {"name": "projected", "encoder": {"name": "vgg16", "layer": "relu1_2"}, "width": 8}
    trainer = _trainer(spec, tmp_path / "run")
    D = trainer.discriminator
    encoder = {k: v.clone() for k, v in D.encoder.state_dict().items()}
    heads = params(D.heads)
    for step in range(3):
        trainer.train_step(*_batch(step))
    assert all(torch.equal(v, D.encoder.state_dict()[k]) for k, v in encoder.items())
    assert all(not p.requires_grad and p.grad is None for p in D.encoder.parameters())
    assert changed(heads, D.heads) and all(p.requires_grad for p in D.heads.parameters())


def test_stage_1_with_a_shared_encoder_trains_it_on_both_tasks(tmp_path, image_dirs):
    spec = tiny_spec(*image_dirs, model={"content_net": {"share_encoder": True, "encoder": None}})
    trainer = _trainer(spec, tmp_path / "run")
    assert trainer.trio.shares_encoder
    terms = trainer.generator_losses(*_batch(), trainer.spec.training.stages[0])
    encoder = list(trainer.generator.encoder.parameters())
    rest = [*trainer.generator.neck.parameters(), *trainer.generator.decoder.parameters()]
    assert _moving(terms["reconstruction"], encoder)  # hard parameter sharing
    assert _moving(terms["reconstruction"], rest) == []  # the neck and decoder learn style only
    assert _moving(terms["style"], list(trainer.content_net.decoder.parameters())) == []
    # the shared encoder is optimised once, by the generator's optimiser
    ids = lambda name: {id(p) for g in trainer.optimizers[name].param_groups for p in g["params"]}  # noqa: E731
    assert {id(p) for p in encoder} <= ids("generator") and not {id(p) for p in encoder} & ids("content_net")


def test_content_net_train_false_trains_no_content_net(tmp_path, image_dirs):
    spec = tiny_spec(*image_dirs, model={"content_net": {"train": False}})
    trainer = _trainer(spec, tmp_path / "run")
    before = params(trainer.content_net)
    result = trainer.fit()
    assert result.status == "finished"
    assert not changed(before, trainer.content_net)
    metrics = read_metrics(tmp_path / "run")
    assert [m["loss/reconstruction"] for m in metrics] == [0.0] * 4
    assert all("loss/reconstruction/l1" not in m for m in metrics)

    # a content loss in the content net's features needs a trained content net
    spec = tiny_spec(*image_dirs, model={"content_net": {"train": False}},
                     losses={"content": [{"name": "l1"}, {"name": "content_net"}]})
    with pytest.raises(GancrError, match=r"content_net\.train is false.*content_net"):
        _trainer(spec, tmp_path / "run2")


# ----------------------------------------------------------------------------------------
# balancers, through real steps and metrics.jsonl
# ----------------------------------------------------------------------------------------


def _joint(metrics: list[dict]) -> list[dict]:
    return [m for m in metrics if m["stage"] == 2]


def test_fixed_balancer_keeps_its_weights(tmp_path, image_dirs):
    stages = [{"name": "separate", "steps": 1, "w_g": 0.9}, {"name": "joint", "steps": 3, "w_c": 0.7, "w_g": 1.3}]
    _trainer(tiny_spec(*image_dirs, training={"stages": stages}), tmp_path / "a").fit()
    metrics = read_metrics(tmp_path / "a")
    assert (metrics[0]["weight/w_c"], metrics[0]["weight/w_g"]) == (0.0, 0.9)  # stage 1: style only
    assert [(m["weight/w_c"], m["weight/w_g"]) for m in _joint(metrics)] == [(0.7, 1.3)] * 3

    # the balancer's own weights win over the stage's
    spec = tiny_spec(*image_dirs, training={"stages": stages, "balancer": {"name": "fixed", "w_c": 2.5}})
    _trainer(spec, tmp_path / "b").fit()
    assert [(m["weight/w_c"], m["weight/w_g"]) for m in _joint(read_metrics(tmp_path / "b"))] == [(2.5, 1.3)] * 3


def test_uncertainty_balancer_learns_its_log_variances(tmp_path, image_dirs):
    stages = [{"name": "separate", "steps": 1}, {"name": "joint", "steps": 4, "w_c": 2.0, "w_g": 1.0}]
    spec = tiny_spec(*image_dirs, training={"stages": stages, "balancer": {"name": "uncertainty"},
                                            "optimizer": {"lr": {"generator": 0.01}}})
    trainer = _trainer(spec, tmp_path / "run")
    log_var = trainer.losses.balancer.log_var
    assert any(p is log_var for g in trainer.optimizers["generator"].param_groups for p in g["params"])
    trainer.fit()
    joint = _joint(read_metrics(tmp_path / "run"))
    s_c = [m["weight/log_var_c"] for m in joint]
    assert s_c[0] == 0.0 and len(set(s_c)) == len(s_c)  # it moves every step
    for m in joint:  # the logged weights are the effective ones, w * exp(-s)
        assert m["weight/w_c"] == pytest.approx(2.0 * math.exp(-m["weight/log_var_c"]), rel=1e-5)
        assert m["weight/w_g"] == pytest.approx(1.0 * math.exp(-m["weight/log_var_g"]), rel=1e-5)
    # Kendall et al.: s_c moves towards log(w_c * L_c), where the weighted loss balances 1
    target = math.log(2.0 * joint[0]["loss/content"])
    assert (s_c[-1] - s_c[0]) * target > 0
    saved = trainer.checkpoint().losses[_key(trainer, "log_var")]
    assert log_var.detach()[0].item() == saved[0].item() != 0.0  # what a checkpoint keeps


def _key(trainer: Trainer, suffix: str) -> str:
    return next(k for k in trainer.loss_modules.state_dict() if k.endswith(suffix))


def test_gradnorm_lowers_the_weight_of_the_loss_with_the_larger_gradient(tmp_path, image_dirs):
    stages = [{"name": "separate", "steps": 1}, {"name": "joint", "steps": 3, "w_c": 1.0, "w_g": 1.0}]
    spec = tiny_spec(*image_dirs, losses={"content": [{"name": "l1", "weight": 1000.0}]},
                     training={"stages": stages, "balancer": {"name": "gradnorm", "momentum": 0.5}})
    _trainer(spec, tmp_path / "run").fit()
    joint = _joint(read_metrics(tmp_path / "run"))
    assert len(joint) == 3
    for m in joint:
        g_c, g_g = m["weight/grad_norm_c"], m["weight/grad_norm_g"]
        assert g_c > 10 * g_g > 0  # content pushes the last layer much harder ...
        assert m["weight/w_c"] < 1.0 < m["weight/w_g"]  # ... so its weight drops relative to style
        # after weighting, both push equally hard
        assert m["weight/w_c"] * g_c == pytest.approx(m["weight/w_g"] * g_g, rel=1e-6)


def test_constraint_raises_w_c_above_the_target_and_lowers_it_below(tmp_path, image_dirs):
    stages = [{"name": "separate", "steps": 1}, {"name": "joint", "steps": 8, "w_c": 0.5, "w_g": 1.0}]
    spec = tiny_spec(*image_dirs, training={
        "stages": stages, "balancer": {"name": "constraint", "target": 0.001, "step_size": 1.0}})
    trainer = _trainer(spec, tmp_path / "run", max_steps=5)
    assert trainer.fit().status == "max_steps"
    joint = _joint(read_metrics(tmp_path / "run"))
    assert all(m["loss/content"] > 0.001 for m in joint)
    w_c = [m["weight/w_c"] for m in joint]
    assert w_c[0] == 0.5 and all(b > a for a, b in zip(w_c, w_c[1:]))  # content lost: w_c rises

    trainer.losses.balancer.target = 10.0  # now the content loss is far below the target
    trainer.max_steps = None
    assert trainer.fit().status == "finished"
    joint = _joint(read_metrics(tmp_path / "run"))
    w_c = [m["weight/w_c"] for m in joint]
    assert len(w_c) == 8
    assert w_c[4] > w_c[5] and w_c[5:] == [0.5] * 3  # back down, to the stage's w_c (lambda >= 0)
    assert [m["weight/lambda"] for m in joint[5:]] == [0.0] * 3


# ----------------------------------------------------------------------------------------
# trainable loss parameters, EMA, image pool
# ----------------------------------------------------------------------------------------


def test_loss_components_with_parameters_are_optimised(tmp_path, image_dirs, test_components):
    spec = tiny_spec(*image_dirs, losses={"content": [{"name": "l1"}, {"name": "learned_scale"}]})
    trainer = _trainer(spec, tmp_path / "run", max_steps=2)
    loss = next(t.loss for t in trainer.losses.content if isinstance(t.loss, LearnedScale))
    assert any(p is loss.log_scale for g in trainer.optimizers["generator"].param_groups for p in g["params"])
    trainer.fit()
    assert loss.log_scale.item() == 0.0  # stage 1 does not use content losses
    trainer.max_steps = None
    trainer.fit()
    assert loss.log_scale.item() < 0.0  # minimising exp(s) * L1 lowers s
    state = load_checkpoint(RunDir(tmp_path / "run").checkpoints()[-1][1])
    assert float(state.losses[_key(trainer, "log_scale")]) == loss.log_scale.item()


def test_the_ema_decay_warms_up_so_a_short_run_is_not_its_random_start():
    from torch import nn

    from gancr.training.history import EMA

    ema = EMA(nn.Linear(2, 2), decay=0.999)
    assert [round(ema.decay_at(n), 4) for n in (0, 80, 890, 9000)] == [0.1, 0.9, 0.99, 0.999]
    assert EMA(nn.Linear(2, 2), decay=0.5).decay_at(100) == 0.5


def test_ema_differs_from_the_raw_weights(tmp_path, image_dirs):
    trainer = _trainer(tiny_spec(*image_dirs, training={"ema": {"decay": 0.5}}), tmp_path / "run")
    initial = params(trainer.generator)
    trainer.fit()
    ema, raw = list(trainer.ema.module.parameters()), list(trainer.generator.parameters())
    assert any(not torch.equal(e, r) for e, r in zip(ema, raw))
    assert changed(initial, trainer.ema.module)  # it follows the training
    assert trainer.inference_generator() is trainer.ema.module
    tensors = generator_tensors(tmp_path / "run" / "generator.safetensors")
    keys = [k.split("/", 1)[1] for k in tensors if k.startswith("ema/")]
    assert keys and any(not torch.equal(tensors[f"ema/{k}"], tensors[f"generator/{k}"]) for k in keys)

    # no EMA: inference uses the raw weights, and the file has none
    trainer = _trainer(tiny_spec(*image_dirs, training={"ema": {"enabled": False}}), tmp_path / "plain")
    trainer.fit()
    assert trainer.ema is None and trainer.inference_generator() is trainer.generator
    assert not any(k.startswith("ema/") for k in generator_tensors(tmp_path / "plain" / "generator.safetensors"))


def test_image_pool_feeds_the_discriminator_past_fakes(tmp_path, image_dirs):
    trainer = _trainer(tiny_spec(*image_dirs, training={"image_pool": 2}), tmp_path / "run")
    calls = []
    query = trainer.pool.query

    def spy(fakes):
        out = query(fakes)
        calls.append((fakes.clone(), out.clone()))
        return out

    trainer.pool.query = spy
    trainer.fit()
    assert len(calls) == 4 and len(trainer.pool.images) == 2
    fresh = [(o == f).flatten(1).all(1).tolist() for f, o in calls]
    assert fresh[0] == [True, True]  # filling the pool: the new fakes
    assert not all(all(f) for f in fresh[1:])  # later: some past fakes


# ----------------------------------------------------------------------------------------
# resume, in process
# ----------------------------------------------------------------------------------------


def _resume_spec(image_dirs) -> dict:
    return tiny_spec(*image_dirs, training={
        "stages": [{"name": "separate", "steps": 3}, {"name": "joint", "steps": 3, "w_c": 1.5}],
        "balancer": {"name": "uncertainty"},
        "image_pool": 2,
        "d_steps": 2,
        "ema": {"decay": 0.9},
        "schedule": {"name": "linear", "decay_start": 0.3},
        "checkpoint": {"every": 2, "keep": 5},
    })


def _losses(run: Path) -> list[dict]:
    return [{k: v for k, v in m.items() if k.startswith(("loss/", "weight/", "lr/", "step"))} for m in read_metrics(run)]


def test_resume_is_bit_identical_in_process(tmp_path, image_dirs):
    spec = _resume_spec(image_dirs)
    first = _trainer(spec, tmp_path / "a", max_steps=3)
    result = first.fit()
    assert (result.status, result.step, result.generator) == ("max_steps", 3, None)
    assert [s for s, _ in RunDir(tmp_path / "a").checkpoints()] == [2, 3]

    resumed = _trainer(spec, tmp_path / "a", resume=True)
    assert resumed.step == 3 and resumed.resumed_from.name == "step_0000003.pt"
    # the image pool comes back as it was
    assert len(resumed.pool.images) == len(first.pool.images) == 2
    assert all(torch.equal(a, b) for a, b in zip(resumed.pool.images, first.pool.images))
    assert resumed.fit().status == "finished"

    straight = _trainer(spec, tmp_path / "b")
    straight.fit()
    assert_same_tensors(generator_tensors(tmp_path / "a" / "generator.safetensors"),
                        generator_tensors(tmp_path / "b" / "generator.safetensors"))
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    assert resumed.losses.balancer.log_var[0].item() == straight.losses.balancer.log_var[0].item()


def test_the_device_augmentation_trains_and_resumes_bit_for_bit(tmp_path, image_dirs):
    # data.augment_on: device crops, flips and rotates the hue on the training device, drawing from
    # torch's global generator, which a checkpoint keeps: a resumed run still repeats a straight one
    spec = _resume_spec(image_dirs)
    spec["data"].update(augment_on="device", style_hue=0.2, style_border=0.1)
    first = _trainer(spec, tmp_path / "a", max_steps=3)
    assert first.dataset.style_border == 0.1  # the spec's data section reaches the dataset
    assert first.fit().status == "max_steps"
    assert _trainer(spec, tmp_path / "a", resume=True).fit().status == "finished"
    _trainer(spec, tmp_path / "b").fit()
    assert_same_tensors(generator_tensors(tmp_path / "a" / "generator.safetensors"),
                        generator_tensors(tmp_path / "b" / "generator.safetensors"))
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def test_resume_skips_a_corrupt_newest_checkpoint(tmp_path, image_dirs):
    spec = _resume_spec(image_dirs)
    _trainer(spec, tmp_path / "a", max_steps=3).fit()
    newest = tmp_path / "a" / "checkpoints" / "step_0000003.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # as if cut short (never happens: writes are atomic)
    with pytest.warns(UserWarning, match="skipping checkpoint step_0000003.pt"):
        resumed = _trainer(spec, tmp_path / "a", resume=True)
    assert resumed.step == 2
    resumed.fit()
    _trainer(spec, tmp_path / "b").fit()
    assert_same_tensors(generator_tensors(tmp_path / "a" / "generator.safetensors"),
                        generator_tensors(tmp_path / "b" / "generator.safetensors"))
    steps = [m["step"] for m in read_metrics(tmp_path / "a")]
    assert steps == [1, 2, 3, 4, 5, 6]  # the log was cut back to the checkpoint


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, image_dirs):
    with pytest.raises(gancr.CheckpointError, match="no complete checkpoint"):
        _trainer(tiny_spec(*image_dirs), tmp_path / "empty", resume=True)


# ----------------------------------------------------------------------------------------
# non-finite losses
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["content", "style"])
def test_nonfinite_losses_skip_steps_then_stop(tmp_path, image_dirs, test_components, kind):
    losses = (
        {"content": [{"name": "l1"}, {"name": "nan_after", "start": 4}]} if kind == "content"
        else {"style": [{"name": "lsgan"}, {"name": "nan_style", "start": 4}]}
    )
    label = "content/nan_after" if kind == "content" else "style/nan_style"
    spec = tiny_spec(*image_dirs, losses=losses, training={
        "stages": [{"name": "joint", "steps": 10}], "max_nonfinite_steps": 3,
        "checkpoint": {"every": 2, "keep": 5}})
    trainer = _trainer(spec, tmp_path / "run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TrainingError) as info:
            trainer.fit()
    skipped = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(skipped) == 2 and all(label in m and "skipped" in m for m in skipped), skipped
    assert skipped[0].startswith("step 4:") and skipped[1].startswith("step 5:")
    message = str(info.value)
    assert "stopped at step 6" in message and "3 consecutive" in message and label in message
    assert "step_0000004.pt" in message  # it says which checkpoint is intact

    metrics = read_metrics(tmp_path / "run")
    assert [m["skipped"] for m in metrics] == [0.0, 0.0, 0.0, 1.0, 1.0]
    # every earlier checkpoint is still there, loads, and holds finite weights
    found = RunDir(tmp_path / "run").checkpoints()
    assert [s for s, _ in found] == [2, 4]
    for _, path in found:
        state = load_checkpoint(path)
        weights = [*state.generator.values(), *state.content_net.values(), *state.discriminator.values()]
        assert all(torch.isfinite(v).all() for v in weights if v.is_floating_point())
    assert all(torch.isfinite(p).all() for p in trainer.generator.parameters())  # nothing was applied


def test_the_command_reports_nonfinite_losses_without_a_traceback(tmp_path, image_dirs, test_components, capsys):
    spec = tiny_spec(*image_dirs, losses={"content": [{"name": "l1"}, {"name": "nan_after", "start": 1}]},
                     training={"stages": [{"name": "joint", "steps": 5}], "max_nonfinite_steps": 2})
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec), encoding="utf-8")
    code = main(["train", str(spec_file), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    warning, error = err.split("\ngancr train: error: ")
    assert warning.startswith("gancr: warning: step 1: skipped")  # the command prints warnings as one line
    assert error.startswith("stopped at step 2: 2 consecutive steps had non-finite losses")
    assert "content/nan_after=nan" in err and "no checkpoint was written yet" in err


@pytest.mark.parametrize("balancer", ["fixed", "uncertainty", "gradnorm", "constraint"])
def test_a_skipped_step_leaves_no_trace_in_the_balancer(tmp_path, image_dirs, test_components, balancer):
    spec = tiny_spec(*image_dirs, losses={"content": [{"name": "l1"}, {"name": "nan_after", "start": 2, "stop": 3}]},
                     training={"stages": [{"name": "joint", "steps": 5}], "balancer": {"name": balancer}})
    with pytest.warns(RuntimeWarning, match="step 2: skipped, non-finite"):
        result = _trainer(spec, tmp_path / "run").fit()
    assert result.status == "finished"
    metrics = read_metrics(tmp_path / "run")
    assert [m["skipped"] for m in metrics] == [0.0, 1.0, 0.0, 0.0, 0.0]
    for m in metrics[2:]:
        bad = {k: v for k, v in m.items() if not math.isfinite(v)}
        assert not bad, f"step {m['step']}: {bad}"


def test_the_gradient_scaler_copes_with_several_d_steps_and_skipped_steps(tmp_path, image_dirs, test_components):
    """fp16 training (CUDA) runs through a GradScaler; the same scaler, enabled on the CPU,
    checks how the trainer drives it: one update after each optimiser step, none after a
    step that was skipped."""
    spec = tiny_spec(*image_dirs, losses={"content": [{"name": "l1"}, {"name": "nan_after", "start": 2, "stop": 3}]},
                     training={"stages": [{"name": "separate", "steps": 1}, {"name": "joint", "steps": 3}],
                               "d_steps": 2, "checkpoint": {"every": 2, "keep": 3}})
    trainer = _trainer(spec, tmp_path / "run")
    trainer.training_step.collaborators.scaler = torch.amp.GradScaler("cpu", enabled=True)
    assert trainer.scaler.is_enabled()  # what the step uses is what the checkpoint keeps
    before = params(trainer.discriminator)
    with pytest.warns(RuntimeWarning, match="step 3: skipped"):
        assert trainer.fit().status == "finished"
    assert [m["skipped"] for m in read_metrics(tmp_path / "run")] == [0.0, 0.0, 1.0, 0.0]
    assert changed(before, trainer.discriminator)
    assert load_checkpoint(RunDir(tmp_path / "run").checkpoint_file(4)).scaler["scale"] > 0


# ----------------------------------------------------------------------------------------
# data edge cases, through training
# ----------------------------------------------------------------------------------------


def test_a_corrupt_file_is_skipped_with_a_warning_naming_it(tmp_path, image_dirs):
    content = write_folder(tmp_path / "content", 3)
    (content / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    with pytest.warns(DataWarning) as caught:
        result = _trainer(tiny_spec(content, image_dirs[1]), tmp_path / "run").fit()
    assert result.status == "finished"
    messages = [str(w.message) for w in caught]
    assert any("broken.png" in m for m in messages), messages
    assert any("skipped 1 unreadable image(s)" in m for m in messages)


def test_an_empty_folder_is_an_error_naming_it(tmp_path, image_dirs, capsys):
    empty = tmp_path / "no-images-here"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="no-images-here"):
        _trainer(tiny_spec(empty, image_dirs[1]), tmp_path / "run").fit()

    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec(image_dirs[0], empty)), encoding="utf-8")
    code = main(["train", str(spec_file), "--out", str(tmp_path / "run2"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no images" in err and str(empty) in err and "Traceback" not in err


def test_grayscale_and_rgba_inputs_train(tmp_path, image_dirs):
    content = tmp_path / "mixed"
    write_image(content / "gray.png", 36, 50, seed=1, mode="L")
    write_image(content / "rgba.png", 44, 40, seed=2, mode="RGBA")
    write_image(content / "rgb.jpg", 40, 40, seed=3)
    style = tmp_path / "gray-style"
    write_image(style / "a.png", 40, 48, seed=4, mode="L", flat=True)
    trainer = _trainer(tiny_spec(content, style), tmp_path / "run")
    assert trainer.fit().status == "finished"
    assert len(trainer.dataset.content_paths) == 3
    for k in range(6):
        sample = trainer.dataset[k]
        assert sample["content"].shape == sample["style"].shape == (3, 32, 32)
    assert all(math.isfinite(m["loss/generator"]) for m in read_metrics(tmp_path / "run"))


def test_run_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from gancr.storage.files import atomic_write_text

    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "spec.yaml", "a: 1\n")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
