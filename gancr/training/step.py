"""One training step as a unit: everything it works with is passed in, as timm's ``train_one_epoch``.

:class:`TrainingStep` runs the step of docs/concepts.md on a batch: the generator side (``G``
and ``C`` forward, the stage's losses, one backward pass, their optimisers, the EMA), then the
discriminator's updates on the detached fakes. It declares what it works with:

- :class:`Collaborators`: the three networks, the losses, the optimisers, the gradient
  scaler, the EMA, the image pool, the device augmentation, the learning rates and the
  process group;
- :class:`StepSettings`: the device, the precision and the numbers of the spec's
  ``training`` section that a step reads;
- the stage, a type: :class:`SeparateStage` or :class:`JointStage`.

:class:`~gancr.training.Trainer` builds these from a spec and orchestrates (the data, the step
number, checkpoints, samples, logs); a test or a script can build a step from a trio alone::

    trio, losses = gancr.build(spec), gancr.build_losses(spec)
    step = TrainingStep(Collaborators.for_trio(trio, losses), StepSettings())
    metrics = step(x, s, number=0, stage=SeparateStage())
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

import torch
from torch import Tensor, nn

from gancr._torch_compat import fused_step_unless
from gancr.components.base import Balancer, LossContext, StyleBatch, set_requires_grad, weighted
from gancr.devices import autocast
from gancr.errors import TrainingError
from gancr.training.distributed import Distributed
from gancr.training.history import EMA, ImagePool
from gancr.training.optimizers import LearningRates, make_optimizers
from gancr.trio import Losses, Trio

__all__ = [
    "TrainingStep",
    "Collaborators",
    "StepSettings",
    "Stage",
    "SeparateStage",
    "JointStage",
    "stage_from_spec",
    "nonfinite_flag",
]


# ----------------------------------------------------------------------------------------
# the stages
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeparateStage:
    """Stage 1, ``separate``: ``G`` learns style alone (``w_g * L_g``), ``C`` reconstruction alone."""

    w_g: float = 1.0
    kind: ClassVar[Literal["separate"]] = "separate"

    def combine(self, balancer: Balancer, content: Tensor, style: Tensor, *, last_layer: Tensor | None,
                step: int) -> tuple[Tensor, dict[str, float]]:
        """The generator side's objective besides reconstruction, and the weights to log."""
        return weighted(self.w_g, style), {"w_c": 0.0, "w_g": float(self.w_g)}


@dataclass(frozen=True)
class JointStage:
    """Stage 2, ``joint``: ``G`` and ``C`` learn ``balancer(L_c(x, G(x)), L_g; w_c, w_g)`` together."""

    w_c: float = 1.0
    w_g: float = 1.0
    kind: ClassVar[Literal["joint"]] = "joint"

    def combine(self, balancer: Balancer, content: Tensor, style: Tensor, *, last_layer: Tensor | None,
                step: int) -> tuple[Tensor, dict[str, float]]:
        """The generator side's objective besides reconstruction, and the weights to log."""
        return balancer.combine(content, style, w_c=self.w_c, w_g=self.w_g, last_layer=last_layer, step=step)


Stage = Union[SeparateStage, JointStage]


def stage_from_spec(spec: Any) -> Stage:
    """The stage that an item of the spec's ``training.stages`` names (a stage as it is)."""
    if isinstance(spec, (SeparateStage, JointStage)):
        return spec
    kinds: dict[str, Callable[[Any], Stage]] = {
        SeparateStage.kind: lambda s: SeparateStage(w_g=s.w_g),
        JointStage.kind: lambda s: JointStage(w_c=s.w_c, w_g=s.w_g),
    }
    return kinds[spec.name](spec)


# ----------------------------------------------------------------------------------------
# what a step works with
# ----------------------------------------------------------------------------------------


@dataclass
class Collaborators:
    """Everything one training step works with; a step reads nothing else.

    Args:
        generator: the trio's generator ``G``.
        content_net: the content-retention net ``C``.
        discriminator: the discriminator ``D``.
        losses: the spec's losses and balancer (:func:`gancr.build_losses`).
        optimizers: one per network, by name: ``generator`` (with the losses' and the
            balancer's trainable parameters), ``content_net``, ``discriminator``.
        scaler: the fp16 gradient scaler (a disabled one otherwise).
        ema: the generator's moving average, or None.
        pool: the image pool of past fakes (size 0: off).
        augment: on-device augmentation of the (content, style) batches, or None.
        learning_rates: the learning rates of each step, or None to keep the optimisers' own.
        compiled: ``torch.compile``-d forwards of the networks, by name (the others run eagerly).
        dist: this process's place in a data-parallel run.
    """

    generator: nn.Module
    content_net: nn.Module
    discriminator: nn.Module
    losses: Losses
    optimizers: dict[str, torch.optim.Optimizer]
    scaler: torch.amp.GradScaler = field(default_factory=lambda: torch.amp.GradScaler("cpu", enabled=False))
    ema: EMA | None = None
    pool: ImagePool = field(default_factory=lambda: ImagePool(0))
    augment: tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]] | None = None
    learning_rates: LearningRates | None = None
    compiled: Mapping[str, Callable[[Tensor], Tensor]] = field(default_factory=dict)
    dist: Distributed = field(default_factory=Distributed)

    @classmethod
    def for_trio(cls, trio: Trio, losses: Losses, optimizer: Any = None, device: torch.device | str = "cpu",
                 **others: Any) -> Collaborators:
        """A trio's networks and ``losses`` with Adam optimisers (``optimizer``: the spec's
        ``training.optimizer``, its defaults when None); ``others`` are further fields."""
        if optimizer is None:
            from gancr.spec.sections import OptimizerSpec

            optimizer = OptimizerSpec()
        optimizers = make_optimizers(trio, losses, optimizer, torch.device(device))
        return cls(trio.generator, trio.content_net, trio.discriminator, losses, optimizers, **others)


@dataclass(frozen=True)
class StepSettings:
    """The device and the numbers a step reads (a spec's ``training`` section gives them).

    Args:
        device: where the step runs.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast).
        channels_last: the networks' memory format (augmented batches are put in it).
        train_content_net: whether ``C`` learns (``model.content_net.train``).
        d_steps: discriminator updates per step.
        grad_clip: the largest gradient norm, per network (None: no clipping).
        ema_start: the step from which the EMA averages (before it, it copies).
        max_nonfinite: consecutive non-finite steps before the run stops.
        activation_checkpointing: recompute the generator's activations in the backward pass.
    """

    device: torch.device = torch.device("cpu")
    precision: str = "fp32"
    channels_last: bool = False
    train_content_net: bool = True
    d_steps: int = 1
    grad_clip: float | None = None
    ema_start: int = 0
    max_nonfinite: int = 10
    activation_checkpointing: bool = False

    @classmethod
    def from_spec(cls, spec: Any, device: torch.device, precision: str, channels_last: bool) -> StepSettings:
        """The settings of a :class:`~gancr.spec.Spec` on ``device``."""
        t = spec.training
        return cls(device=device, precision=precision, channels_last=channels_last,
                   train_content_net=spec.model.content_net.train, d_steps=t.d_steps, grad_clip=t.grad_clip,
                   ema_start=t.ema.start_step, max_nonfinite=t.max_nonfinite_steps,
                   activation_checkpointing=t.activation_checkpointing)


def nonfinite_flag(values: Tensor) -> Tensor:
    """A 0-dim bool tensor, true when any of ``values`` is NaN or infinite, computed on their
    device without a host sync: ``x * 0`` is 0 for every finite ``x`` and NaN otherwise, so the
    sum is 0 exactly when all are finite (three operators; ``isfinite(...).all()`` takes six)."""
    return (values * 0).sum() != 0


#: A step whose losses are not read yet: (its number, generator-side keys and values,
#: discriminator keys and values).
_Unread = tuple[int, list[str], Tensor, list[str], Union[Tensor, None]]


# ----------------------------------------------------------------------------------------
# the step
# ----------------------------------------------------------------------------------------


class TrainingStep:
    """One training step on a batch, with what :class:`Collaborators` and :class:`StepSettings` hold.

    A step whose losses are not all finite changes nothing (weights, optimiser states, EMA,
    balancer state) and is reported afterwards. With fused optimisers and no gradient scaler
    (the defaults) that is decided on the device, and a step that does not log reads nothing
    back from it: no host sync, so the host runs ahead of the device; its losses are read with
    the next step that logs (or :meth:`settle`), which reports any step skipped meanwhile.

    Args:
        collaborators: what the step works with.
        settings: the device and the numbers it reads.
        last_checkpoint: the newest intact checkpoint, named when the run stops on
            non-finite losses (default: none).
    """

    def __init__(self, collaborators: Collaborators, settings: StepSettings | None = None, *,
                 last_checkpoint: Callable[[], Path | None] | None = None):
        self.collaborators = c = collaborators
        self.settings = settings or StepSettings()
        self.last_checkpoint = last_checkpoint or (lambda: None)
        self.loss_modules = c.losses.modules()
        self._forward = {name: c.compiled.get(name, getattr(c, name))
                         for name in ("generator", "content_net", "discriminator")}
        self._kept_state = set(self.loss_modules.state_dict())
        self._zero: Tensor | None = None
        self.nonfinite = 0  # consecutive skipped steps
        self._unread: list[_Unread] = []
        self._skipped_unlogged = 0  # steps skipped since the last metrics: ``skipped`` of the next that logs

    # ------------------------------------------------------------------------------------
    # losses
    # ------------------------------------------------------------------------------------

    def _generate(self, x: Tensor) -> Tensor:
        if self.settings.activation_checkpointing and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self._forward["generator"], x, use_reentrant=False)
        return self._forward["generator"](x)

    def generator_losses(self, x: Tensor, s: Tensor, stage: Stage, number: int = 0) -> dict[str, Any]:
        """The generator side of step ``number`` (0-based), without updating anything.

        Returns a dict with tensors ``fake`` (``G(x)``), ``style`` (``L_g``), ``content``
        (``L_c(x, G(x))``, joint stages only), ``reconstruction`` (``L_c(x, C(x))``),
        ``objective`` (what the generator side minimises), per-term tensors under their
        labels, and the balancer's ``weights``.
        """
        c, losses = self.collaborators, self.collaborators.losses
        with autocast(self.settings.device, self.settings.precision):
            fake = self._generate(x)
            out: dict[str, Any] = {"fake": fake}
            batch = StyleBatch(s, fake, self._forward["discriminator"])
            terms = []
            for term in losses.style:
                value = term.loss.generator_loss(batch)
                if value is not None:
                    out[term.label] = value
                    terms.append(weighted(term.weight, value.float()))
            style = out["style"] = self._total(terms)

            context = LossContext(content_net=c.content_net)
            recon_terms = []
            if self.settings.train_content_net:
                recon = self._forward["content_net"](x)
                for term in losses.reconstruction:
                    value = out[term.label] = term.loss(x, recon, context)
                    recon_terms.append(weighted(term.weight, value.float()))
                out["recon"] = recon
            reconstruction = out["reconstruction"] = self._total(recon_terms)

            content, last_layer = None, None
            if isinstance(stage, JointStage):  # L_c(x, G(x)), and what a balancer may weigh it by
                content_terms = []
                for term in losses.content:
                    value = out[term.label] = term.loss(x, fake, context)
                    content_terms.append(weighted(term.weight, value.float()))
                content = out["content"] = self._total(content_terms)
                last_layer = getattr(c.generator, "last_layer", None)
            combined, weights = stage.combine(losses.balancer, content, style,  # type: ignore[arg-type]
                                              last_layer=last_layer, step=number)
        out["objective"] = combined + reconstruction if recon_terms else combined
        out["weights"] = weights
        return out

    def _total(self, terms: list[Tensor]) -> Tensor:
        """The sum of ``terms``, left to right; a zero (made once) when there are none."""
        if terms:
            return sum(terms[1:], terms[0])
        if self._zero is None or self._zero.device != self.settings.device:
            self._zero = torch.zeros((), device=self.settings.device)
        return self._zero

    def discriminator_loss(self, s: Tensor, fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``L_D`` on real style images ``s`` and (detached) fakes, with its terms."""
        with autocast(self.settings.device, self.settings.precision):
            batch = StyleBatch(s, fake, self._forward["discriminator"])
            weighted_terms = []
            terms: dict[str, Tensor] = {}
            for term in self.collaborators.losses.style:
                value = term.loss.discriminator_loss(batch)
                if value is not None:
                    terms[term.label + "/d"] = value
                    weighted_terms.append(weighted(term.weight, value.float()))
        return self._total(weighted_terms), terms

    # ------------------------------------------------------------------------------------
    # updates
    # ------------------------------------------------------------------------------------

    def _set_lr(self, number: int) -> dict[str, float]:
        c = self.collaborators
        if c.learning_rates is None:
            return {f"lr/{name}": opt.param_groups[0]["lr"] for name, opt in c.optimizers.items()}
        lrs = {}
        for name, lr in c.learning_rates.at(number).items():
            for group in c.optimizers[name].param_groups:
                group["lr"] = lr
            lrs[f"lr/{name}"] = lr
        return lrs

    def _update(self, names: list[str], loss: Tensor, bad: Tensor | None = None) -> None:
        """Backward, average gradients across processes, clip, and step the named optimisers.

        ``bad`` (a 0-dim tensor on the device) makes the fused optimisers skip the update on
        the device (their ``found_inf``), so the step needs no host sync.
        """
        c = self.collaborators
        c.scaler.scale(loss).backward()
        stepped = False
        clip = self.settings.grad_clip
        for opt in (c.optimizers[n] for n in names):
            params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
            if not params:
                continue
            c.dist.average_gradients(params)
            if clip is not None:
                c.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, clip)
            if bad is not None:
                fused_step_unless(opt, bad)
            else:
                c.scaler.step(opt)
            stepped = True
        # one update per step of the optimisers (a scaler refuses two steps of one optimiser
        # without an update between them, e.g. d_steps > 1), none when nothing stepped
        if stepped and bad is None:
            c.scaler.update()

    def _loss_state(self) -> list[Tensor]:
        """The buffers of the losses and the balancer that a checkpoint keeps (gradnorm's norms,
        constraint's lambda); constants such as a feature encoder's normalisation are not state."""
        return [b for name, b in self.loss_modules.named_buffers() if name in self._kept_state]

    def skips_on_device(self) -> bool:
        """Whether non-finite steps are skipped on the device (fused optimisers, no scaler).

        Then a step has a single host sync, at its end; otherwise the losses are read before
        the updates, so that a non-finite step can be skipped from the host.
        """
        c = self.collaborators
        return not c.scaler.is_enabled() and all(opt.defaults.get("fused") for opt in c.optimizers.values())

    # ------------------------------------------------------------------------------------
    # non-finite steps
    # ------------------------------------------------------------------------------------

    def _nonfinite(self, values: dict[str, float], where: str, step: int, now: int) -> bool:
        """Count and report a non-finite ``step`` (1-based), read at step ``now``; stop at the limit."""
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if not bad:
            return False
        self.nonfinite += 1
        self._skipped_unlogged += 1
        what = ", ".join(f"{k}={v}" for k, v in bad.items())
        limit = self.settings.max_nonfinite
        if self.nonfinite >= limit:
            last = self.last_checkpoint()
            kept = f"the last checkpoint, {last}, is intact" if last else "no checkpoint was written yet"
            which = f"last, {where}" if step == now else f"the last at step {step}, {where}"
            raise TrainingError(
                f"stopped at step {now}: {self.nonfinite} consecutive steps had non-finite "
                f"losses ({which}: {what}); {kept}. Lower the learning rates, add grad_clip, "
                "or check the data."
            )
        warnings.warn(
            f"step {step}: skipped, non-finite {where} loss ({what}); "
            f"{self.nonfinite} of {limit} allowed in a row",
            RuntimeWarning,
            stacklevel=5,
        )
        return True

    def settle(self, now: int) -> tuple[dict[str, float], dict[str, float]]:
        """Read back the losses of the steps that did not log, in one host sync, and report the
        skipped ones (warnings, :attr:`nonfinite`, the stop at ``max_nonfinite``); ``now`` is the
        number of steps done.

        Returns the last such step's values (generator side, discriminator); checkpoints call
        this, so a checkpoint's count of consecutive skipped steps is exact.
        """
        unread, self._unread = self._unread, []
        if not unread:
            return {}, {}
        flat = torch.cat([t for r in unread for t in (r[2], r[4]) if t is not None]).tolist()
        at = 0
        values: dict[str, float] = {}
        d_values: dict[str, float] = {}
        for step, keys, _, d_keys, _ in unread:
            values = dict(zip(keys, flat[at:at + len(keys)]))
            d_values = dict(zip(d_keys, flat[at + len(keys):at + len(keys) + len(d_keys)]))
            at += len(keys) + len(d_keys)
            skipped = self._nonfinite(values, "generator/content-net", step, now)
            if not skipped and not (d_values and self._nonfinite(d_values, "discriminator", step, now)):
                self.nonfinite = 0
        return values, d_values

    # ------------------------------------------------------------------------------------
    # one step
    # ------------------------------------------------------------------------------------

    def _augment(self, x: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        content, style = self.collaborators.augment  # type: ignore[misc]
        x, s = content(x), style(s)
        if self.settings.channels_last:
            x, s = (t.contiguous(memory_format=torch.channels_last) for t in (x, s))
        return x, s

    def __call__(self, x: Tensor, s: Tensor, *, number: int, stage: Stage, log: bool = True) -> dict[str, float]:
        """Step ``number`` (0-based) of ``stage`` on content images ``x`` and style images ``s``
        (on the device); returns its metrics.

        With ``log=False`` and skipping on the device (:meth:`skips_on_device`), the metrics are
        the learning rates only: the losses are read with the next step that logs.
        """
        c = self.collaborators
        if c.augment is not None:
            x, s = self._augment(x, s)
        lrs = self._set_lr(number)
        # training mode is set when the step's networks are made, and here again only when
        # something (a user) left a module in eval: each .train() walks every submodule, 1-2 %
        # of a small CPU step. A loss's frozen encoder keeps itself in eval through its own train().
        for module in (c.generator, c.content_net, self.loss_modules):
            if not module.training:
                module.train()
        on_device = self.skips_on_device()
        terms, g_keys, g_stacked, g_bad, values = self._generator_side(x, s, stage, number, on_device)
        skipped = not on_device and any(not math.isfinite(v) for v in values.values())
        d_keys: list[str] = []
        d_stacked: Tensor | None = None
        d_values: dict[str, float] = {}
        d_skipped = False
        if c.losses.adversarial and not skipped:
            d_keys, d_stacked, d_values, d_skipped = self._discriminator_side(s, terms["fake"], g_bad, number,
                                                                              on_device)
        if on_device:  # losses and the non-finite check stay on the device until a step logs
            self._unread.append((number + 1, g_keys, g_stacked, d_keys, d_stacked))
            if log or len(self._unread) >= 1024:  # the one host sync: every unread value at once
                values, d_values = self.settle(number + 1)
        elif not skipped and not d_skipped:
            self.nonfinite = 0
        if not log:
            return lrs
        return self._metrics(values, d_values, terms["weights"], lrs)

    def _generator_side(self, x: Tensor, s: Tensor, stage: Stage, number: int,
                        on_device: bool) -> tuple[dict[str, Any], list[str], Tensor, Tensor, dict[str, float]]:
        """Losses, backward and updates of ``G`` and ``C`` (and the EMA); returns the terms, the
        scalar keys and their values stacked, the non-finite flag, and the values read on the
        host (none ``on_device``: they are read when a step logs). A step with a non-finite
        value read on the host was skipped."""
        c = self.collaborators
        set_requires_grad(c.discriminator, False)
        # D's gradients are cleared before its own update, and an untrained content net has none
        for name in ("generator", "content_net") if self.settings.train_content_net else ("generator",):
            c.optimizers[name].zero_grad(set_to_none=True)
        # the losses may update their own state (gradnorm's norms, constraint's lambda):
        # a skipped step must leave none of it behind
        loss_state = self._loss_state()
        saved_state = [b.clone() for b in loss_state]
        terms = self.generator_losses(x, s, stage, number)
        keys = [k for k, v in terms.items() if isinstance(v, Tensor) and v.dim() == 0]
        with torch.no_grad():
            stacked = c.dist.average(torch.stack([terms[k].float() for k in keys]))
            bad = nonfinite_flag(stacked)
        skipped = False  # known at the end of the step when on the device
        values: dict[str, float] = {}
        if on_device:
            self._update(["generator", "content_net"], terms["objective"], bad=bad.float())
        else:
            values = dict(zip(keys, stacked.tolist()))
            skipped = self._nonfinite(values, "generator/content-net", number + 1, number + 1)
            if not skipped:
                self._update(["generator", "content_net"], terms["objective"])
        with torch.no_grad():
            if skipped:
                for buffer, saved in zip(loss_state, saved_state):
                    buffer.copy_(saved)
                return terms, keys, stacked, bad, values
            if c.ema is not None:
                start = self.settings.ema_start
                c.ema.update(c.generator, decay=0.0 if number < start else c.ema.decay_at(number - start),
                             skip=bad if on_device else None)
            if on_device:
                for buffer, saved in zip(loss_state, saved_state):
                    torch.where(bad, saved, buffer, out=buffer)
        return terms, keys, stacked, bad, values

    def _discriminator_side(self, s: Tensor, fake: Tensor, g_bad: Tensor, number: int,
                            on_device: bool) -> tuple[list[str], Tensor | None, dict[str, float], bool]:
        """``d_steps`` updates of ``D`` on ``s`` and the (pooled, detached) fakes; returns the
        loss keys, their values stacked (and read, when not ``on_device``), and whether skipped."""
        c = self.collaborators
        set_requires_grad(c.discriminator, True)  # not a frozen encoder inside it
        fake = fake.detach()
        fake = c.pool.query(fake.nan_to_num() if on_device else fake)
        real = s.detach().requires_grad_(True) if c.losses.needs_real_grad else s
        keys: list[str] = []
        stacked: Tensor | None = None
        values: dict[str, float] = {}
        for _ in range(self.settings.d_steps):
            c.optimizers["discriminator"].zero_grad(set_to_none=True)
            total, terms = self.discriminator_loss(real, fake)
            keys = ["discriminator", *terms]
            with torch.no_grad():
                stacked = c.dist.average(torch.stack([total, *[v.float() for v in terms.values()]]))
                bad = g_bad | nonfinite_flag(stacked)
            if on_device:
                self._update(["discriminator"], total, bad=bad.float())
                continue
            values = dict(zip(keys, stacked.tolist()))
            if self._nonfinite(values, "discriminator", number + 1, number + 1):
                return keys, stacked, values, True
            self._update(["discriminator"], total)
        return keys, stacked, values, False

    def _metrics(self, values: dict[str, float], d_values: dict[str, float], weights: dict[str, float],
                 lrs: dict[str, float]) -> dict[str, float]:
        """The metrics of a step that logs: the aggregate losses, every term, the weights, the rates."""
        metrics = {
            "loss/generator": values.get("objective", float("nan")),
            "loss/style": values.get("style", float("nan")),
            "loss/reconstruction": values.get("reconstruction", float("nan")),
        }
        if "content" in values:
            metrics["loss/content"] = values["content"]
        if d_values:
            metrics["loss/discriminator"] = d_values["discriminator"]
        for k, v in {**values, **d_values}.items():
            if "/" in k:
                metrics[f"loss/{k}"] = v
        metrics.update({f"weight/{k}": float(v) for k, v in weights.items()})
        metrics.update(lrs)
        metrics["skipped"], self._skipped_unlogged = float(self._skipped_unlogged), 0
        return metrics
