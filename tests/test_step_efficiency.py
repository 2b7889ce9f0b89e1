"""The training step's cost against the same step written by hand (issue 13): operators per
step within 2% of the hand-written step's (benchmarks/reference_<spec>.py); no host sync on
the steps that do not log, a non-finite one still skipped on the device and reported at the
next step that logs; and the same numbers as the step written out plainly (bit for bit on
the CPU), so that the trainer's bookkeeping (per-loss weights, logged values, non-finite
checks, EMA, the image pool) costs neither time nor results."""

from __future__ import annotations

import importlib.util
import math
import traceback
import warnings

import pytest
import torch

from gancr._torch_compat import TorchDispatchMode

from gancr.bench.speed import find_reference
from gancr.bench.timing import count_ops
from gancr.components.base import LossContext, StyleBatch, set_requires_grad
from gancr.training import Trainer, TrainingError
from gancr.training.optimizers import lr_factor

from test_training import TrainingTestComponents
from trainkit import EXAMPLES, SHRINK, TINY_OVERRIDES, image_dirs, read_metrics, tiny_spec  # noqa: F401 - image_dirs is a fixture

#: the examples' architectures (layers, blocks, losses), small images
SMALL = ["training.image_size=32", "training.batch_size=2", "training.device=cpu", "training.precision=fp32",
         "training.tensorboard=false"]

#: Per spec: narrower layers for both sides, as (overrides, the reference's make_step options).
#: The operator count does not depend on the widths; the time of a bf16 step on the CPU does.
NARROW = {
    "cyclegan_like.yaml": (["model.generator.encoder.widths=[8, 16, 32]", "model.discriminator.width=8"], {"width": 8}),
}


def _batch(seed: int, n: int = 2, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.rand(n, 3, size, size, generator=g)


def _reference(spec: str, trainer: Trainer):
    path = find_reference(EXAMPLES / spec)
    module_spec = importlib.util.spec_from_file_location(f"reference_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.make_step(trainer.device, precision=trainer.precision, channels_last=trainer.channels_last,
                            optimizer={"fused": True}, **NARROW.get(spec, ([], {}))[1])


@pytest.mark.parametrize("settings", [  # the second: the CUDA defaults, on the CPU (slow there: bf16 convolutions)
    pytest.param([], id="fp32"),
    pytest.param(["training.precision=bf16", "training.channels_last=true"], id="bf16-channels-last",
                 marks=pytest.mark.slow),
])
@pytest.mark.parametrize("spec", ["cyclegan_like.yaml", "quickstart.yaml"])
def test_a_step_dispatches_at_most_2_percent_more_operators_than_by_hand(tmp_path, spec, settings):
    trainer = Trainer(EXAMPLES / spec, tmp_path / "run", quiet=True,
                      overrides=[*SMALL, *NARROW.get(spec, ([], {}))[0], "training.image_pool=2", *settings])
    trainer.step = sum(s.steps for s in trainer.spec.training.stages[:-1])  # the last (joint) stage
    first = trainer.step
    reference = _reference(spec, trainer)
    x, s = _batch(0)

    def ours():
        trainer.step = first
        trainer.train_step(x, s, log=False)

    for _ in range(2):  # the image pool of 2 fills (one batch), then draws; the optimisers' states exist
        ours()
        reference(x, s)
    gancr_ops, hand_ops = count_ops(ours), count_ops(lambda: reference(x, s))
    assert gancr_ops <= 1.02 * hand_ops, f"{spec}: gancr {gancr_ops} operators per step, by hand {hand_ops}"


# ----------------------------------------------------------------------------------------
# host syncs
# ----------------------------------------------------------------------------------------


class DeviceReads(TorchDispatchMode):
    """Every read of tensor data by the host, which on a GPU waits for the device (a host sync):
    operators whose result depends on the data (``item``, ``float()``, ``bool()``, ``nonzero``,
    boolean masks: torch tags them) and ``tolist``, ``numpy``, ``cpu``. Tensors that
    ``torch.rand`` or ``torch.randint`` make without a device (the image pool's draws) are on
    the host on every machine: reading them is no sync, and is counted apart."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        super().__init__()
        self.device: list[str] = []  # what was read, and where
        self.host_draws = 0
        self._host: dict[int, torch.Tensor] = {}  # id -> tensor (kept alive, so ids stay unique)

        def drawing(fn):
            def draw(*args, **kwargs):
                t = fn(*args, **kwargs)
                if kwargs.get("device") is None:
                    self._host[id(t)] = t
                return t
            return draw

        def reading(name):
            fn = getattr(torch.Tensor, name)

            def read(t, *args, **kwargs):
                self._read(name, [t])
                return fn(t, *args, **kwargs)
            return read

        for name in ("rand", "randint"):
            monkeypatch.setattr(torch, name, drawing(getattr(torch, name)))
        for name in ("tolist", "numpy", "cpu", "__array__"):
            monkeypatch.setattr(torch.Tensor, name, reading(name))

    def _read(self, what: str, tensors: list[torch.Tensor]) -> None:
        if tensors and all(id(t) in self._host for t in tensors):
            self.host_draws += 1
            return
        ours = [f for f in traceback.extract_stack() if "/gancr/" in f.filename and "test" not in f.filename]
        self.device.append(f"{what} at {ours[-1].filename}:{ours[-1].lineno}" if ours else what)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if torch.Tag.data_dependent_output in func.tags or torch.Tag.dynamic_output_shape in func.tags:
            self._read(str(func), [a for a in args if isinstance(a, torch.Tensor)])
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("spec", ["cyclegan_like.yaml", "quickstart.yaml"])
def test_steps_that_do_not_log_read_nothing_back_from_the_device(tmp_path, monkeypatch, spec):
    overrides = [*TINY_OVERRIDES, *SHRINK.get(spec, []), "training.image_pool=2", "training.stages.0.steps=1"]
    trainer = Trainer(EXAMPLES / spec, tmp_path / "run", quiet=True, overrides=overrides)
    assert trainer.ema is not None or spec == "cyclegan_like.yaml"
    for i in range(2):  # the pool fills, the optimisers' states exist
        trainer.train_step(*_batch(i), log=False)
    reads = DeviceReads(monkeypatch)
    with reads:
        for i in range(3):
            trainer.train_step(*_batch(i), log=False)
    assert reads.device == [] and reads.host_draws > 0  # the pool drew on the host, and nothing else was read
    with reads:
        metrics = trainer.train_step(*_batch(3), log=True)
    assert len(reads.device) == 1, reads.device  # a step that logs reads every value of the 4 steps at once
    assert metrics["step"] == 6 and metrics["skipped"] == 0.0 and "loss/discriminator" in metrics


def test_a_nonfinite_step_that_does_not_log_is_skipped_on_the_device_and_reported_at_the_next_log(
        tmp_path, image_dirs):
    spec = tiny_spec(*image_dirs, losses={"content": [{"name": "l1"}, {"name": "nan_after", "start": 2, "stop": 3}]},
                     training={"stages": [{"name": "joint", "steps": 6}], "log_every": 3})
    with gancr_plugin():
        trainer = Trainer(spec, tmp_path / "run", quiet=True)
        trainer.train_step(*_batch(0), log=False)
        before = _state(trainer)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing is read, so nothing is reported yet
            trainer.train_step(*_batch(1), log=False)  # step 2: NaN
        assert all(torch.equal(before[k], v) for k, v in _state(trainer).items())  # skipped: nothing changed
        with pytest.warns(RuntimeWarning, match=r"step 2: skipped, non-finite generator/content-net loss "
                                                r"\(.*content/nan_after=nan"):
            metrics = trainer.train_step(*_batch(2), log=True)
        assert metrics["step"] == 3 and metrics["skipped"] == 1.0 and trainer.nonfinite == 0
        assert any(not torch.equal(before[k], v) for k, v in _state(trainer).items())  # step 3 was not skipped


def test_a_run_that_logs_every_3_steps_writes_those_lines_and_counts_the_skipped_step(tmp_path, image_dirs):
    spec = tiny_spec(*image_dirs, losses={"content": [{"name": "l1"}, {"name": "nan_after", "start": 2, "stop": 3}]},
                     training={"stages": [{"name": "joint", "steps": 7}], "log_every": 3})
    with gancr_plugin(), pytest.warns(RuntimeWarning, match="step 2: skipped, non-finite"):
        assert Trainer(spec, tmp_path / "run", quiet=True).fit().status == "finished"
    metrics = read_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics] == [3, 6, 7]  # every third step, and the last
    assert [m["skipped"] for m in metrics] == [1.0, 0.0, 0.0]  # step 2's skip, reported with step 3
    assert all(math.isfinite(m["loss/generator"]) and m["images_per_s"] > 0 for m in metrics)


def test_nonfinite_steps_read_late_still_stop_the_run_at_the_limit(tmp_path, image_dirs):
    spec = tiny_spec(*image_dirs, losses={"content": [{"name": "l1"}, {"name": "nan_after", "start": 2}]},
                     training={"stages": [{"name": "joint", "steps": 9}], "log_every": 5, "max_nonfinite_steps": 3})
    with gancr_plugin():
        trainer = Trainer(spec, tmp_path / "run", quiet=True)
        trainer.train_step(*_batch(0), log=False)
        after_step_1 = _state(trainer)
        with warnings.catch_warnings(record=True) as caught, pytest.raises(TrainingError) as info:
            warnings.simplefilter("always")
            for i in range(1, 9):
                trainer.train_step(*_batch(i), log=(i + 1) % 5 == 0)
    # steps 2-5 were skipped on the device; step 5 logs, reads them, and stops at the third
    assert str(info.value).startswith("stopped at step 5: 3 consecutive steps had non-finite losses "
                                      "(the last at step 4, generator/content-net: content/nan_after=nan")
    assert [str(w.message)[:7] for w in caught if w.category is RuntimeWarning] == ["step 2:", "step 3:"]
    assert all(torch.equal(after_step_1[k], v) for k, v in _state(trainer).items())  # nothing applied since


def gancr_plugin():
    import gancr

    return gancr.registered_plugin(TrainingTestComponents(), "test-training-components")


# ----------------------------------------------------------------------------------------
# the same numbers as the step written out plainly
# ----------------------------------------------------------------------------------------


def _plain_step(trainer: Trainer, x: torch.Tensor, s: torch.Tensor) -> tuple[float, float]:
    """One step as docs/concepts.md defines it (fixed balancer, fused Adam, EMA, image pool),
    written out with the trainer's own modules and none of its bookkeeping."""
    t = trainer.spec.training
    stage = t.stages[trainer.stage_index(trainer.step)]
    lr = t.optimizer.lr
    base = {"generator": lr.generator, "content_net": lr.content_net, "discriminator": lr.discriminator}
    for name, opt in trainer.optimizers.items():
        for group in opt.param_groups:
            group["lr"] = base[name] * lr_factor(t.schedule, trainer.step, trainer.total_steps)
    G, C, D = trainer.generator, trainer.content_net, trainer.discriminator
    G.train(), C.train(), trainer.loss_modules.train()
    set_requires_grad(D, False)
    for opt in trainer.optimizers.values():
        opt.zero_grad(set_to_none=True)
    fake = G(x)
    batch, context = StyleBatch(s, fake, D), LossContext(content_net=C)
    style = sum(w * v for w, v in ((w, loss.generator_loss(batch)) for w, loss, _ in trainer.losses.style) if v is not None)
    reconstruction = 0
    if trainer.train_content_net:
        recon = C(x)
        reconstruction = sum(w * loss(x, recon, context) for w, loss, _ in trainer.losses.reconstruction)
    if stage.name == "joint":
        content = sum(w * loss(x, fake, context) for w, loss, _ in trainer.losses.content)
        objective = stage.w_c * content + stage.w_g * style + reconstruction
    else:
        objective = stage.w_g * style + reconstruction
    objective.backward()
    trainer.optimizers["generator"].step()
    trainer.optimizers["content_net"].step()
    if trainer.ema is not None:
        n = trainer.step - t.ema.start_step  # the average's updates so far: its decay warms up
        decay = 0.0 if n < 0 else min(t.ema.decay, (1 + n) / (10 + n))
        with torch.no_grad():
            for e, p in zip(trainer.ema.module.parameters(), G.parameters()):
                e.add_((p - e) * (1 - decay))
    set_requires_grad(D, True)  # its own layers: a frozen encoder in it stays frozen
    fakes = trainer.pool.query(fake.detach())
    for _ in range(t.d_steps):
        trainer.optimizers["discriminator"].zero_grad(set_to_none=True)
        batch = StyleBatch(s, fakes, D)
        d_loss = sum(w * v for w, v in ((w, loss.discriminator_loss(batch)) for w, loss, _ in trainer.losses.style)
                     if v is not None)
        d_loss.backward()
        trainer.optimizers["discriminator"].step()
    trainer.step += 1
    return float(objective.detach()), float(d_loss.detach())


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    state = {f"trio.{k}": v for k, v in trainer.trio.state_dict().items()}
    if trainer.ema is not None:
        state.update({f"ema.{k}": v for k, v in trainer.ema.module.state_dict().items()})
    for name, opt in trainer.optimizers.items():
        for i, values in opt.state_dict()["state"].items():
            state.update({f"{name}.{i}.{k}": v for k, v in values.items()})
    return {k: v.detach().clone() for k, v in state.items()}


@pytest.mark.parametrize("spec", ["cyclegan_like.yaml", "quickstart.yaml"])
def test_the_step_gives_the_numbers_of_the_plain_step_bit_for_bit(tmp_path, spec):
    overrides = [*TINY_OVERRIDES, *SHRINK.get(spec, []), "training.image_pool=2", "training.log_every=3"]
    if spec == "cyclegan_like.yaml":
        overrides += ["model.generator.encoder.widths=[8, 16, 16]", "model.generator.neck.blocks=2"]
    ours = Trainer(EXAMPLES / spec, tmp_path / "ours", quiet=True, overrides=overrides)
    plain = Trainer(EXAMPLES / spec, tmp_path / "plain", quiet=True, overrides=overrides)
    random_state = torch.get_rng_state()  # the image pool draws from it: both sides start alike
    logs = [i % 3 == 2 for i in range(5)]  # steps that log and steps that do not; both stages of the quickstart
    metrics = [ours.train_step(*_batch(i), log=log) for i, log in enumerate(logs)]
    torch.set_rng_state(random_state)
    losses = [_plain_step(plain, *_batch(i)) for i in range(5)]
    logged = [((m["loss/generator"], m["loss/discriminator"]), l) for m, l, log in zip(metrics, losses, logs) if log]
    assert logged and all(a == b for a, b in logged), logged
    a, b = _state(ours), _state(plain)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different
