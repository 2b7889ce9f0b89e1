"""One training step: the generator side's losses, the discriminator's, and the updates.

:class:`TrainingStep` is a part of :class:`~gancr.training.Trainer`, kept in its own module:
its methods use the trainer's attributes (the trio, the losses, the optimisers, the
precision, the process group) that :class:`~gancr.training.Trainer` sets up.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor

from gancr._torch_compat import fused_step_unless
from gancr.components.base import LossContext, StyleBatch, weighted
from gancr.errors import TrainingError
from gancr.spec import StageSpec
from gancr.storage import RunDir
from gancr.training.parts import lr_factor

__all__ = ["TrainingStep", "nonfinite_flag"]


def nonfinite_flag(values: Tensor) -> Tensor:
    """A 0-dim bool tensor, true when any of ``values`` is NaN or infinite, computed on their
    device without a host sync: ``x * 0`` is 0 for every finite ``x`` and NaN otherwise, so the
    sum is 0 exactly when all are finite (three operators; ``isfinite(...).all()`` takes six)."""
    return (values * 0).sum() != 0


class TrainingStep:
    """The losses and updates of one step (a part of :class:`~gancr.training.Trainer`)."""

    # attributes set by Trainer.__init__
    spec: Any
    run: RunDir
    step: int
    nonfinite: int
    _unread: list[tuple[int, list[str], Tensor, list[str], Tensor | None]]  # steps whose losses are not read yet
    _skipped_unlogged: int  # steps skipped since the last metrics: ``skipped`` of the next step that logs

    # ------------------------------------------------------------------------------------
    # losses of one step
    # ------------------------------------------------------------------------------------

    def _generate(self, x: Tensor) -> Tensor:
        if self.generator_checkpointing and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self._g_forward, x, use_reentrant=False)
        return self._g_forward(x)

    def generator_losses(self, x: Tensor, s: Tensor, stage: StageSpec) -> dict[str, Any]:
        """The generator side of one step, without updating anything.

        Returns a dict with tensors ``fake`` (``G(x)``), ``style`` (``L_g``), ``content``
        (``L_c(x, G(x))``, joint stages only), ``reconstruction`` (``L_c(x, C(x))``),
        ``objective`` (what the generator side minimises), per-term tensors under their
        labels, and the balancer's ``weights``.
        """
        with self._autocast():
            fake = self._generate(x)
            batch = StyleBatch(s, fake, self._d_forward)
            out: dict[str, Any] = {"fake": fake}
            terms = []
            for label, (w, loss) in zip(self.style_labels, self.losses.style):
                value = loss.generator_loss(batch)
                if value is not None:
                    out[label] = value
                    terms.append(weighted(w, value.float()))
            style = out["style"] = self._total(terms)

            terms = []
            context = LossContext(content_net=self.content_net)
            if self.train_content_net:
                recon = self._c_forward(x)
                for label, (w, loss) in zip(self.reconstruction_labels, self.losses.reconstruction):
                    value = loss(x, recon, context)
                    out[label] = value
                    terms.append(weighted(w, value.float()))
                out["recon"] = recon
            reconstruction = out["reconstruction"] = self._total(terms)

            if stage.name == "joint":
                content = []
                for label, (w, loss) in zip(self.content_labels, self.losses.content):
                    value = loss(x, fake, context)
                    out[label] = value
                    content.append(weighted(w, value.float()))
                out["content"] = self._total(content)
                combined, weights = self.losses.balancer.combine(
                    out["content"], style, w_c=stage.w_c, w_g=stage.w_g,
                    last_layer=self.generator.last_layer, step=self.step,
                )
            else:
                combined, weights = weighted(stage.w_g, style), {"w_c": 0.0, "w_g": float(stage.w_g)}
        out["objective"] = combined + reconstruction if terms else combined
        out["weights"] = weights
        return out

    def _total(self, terms: list[Tensor]) -> Tensor:
        """The sum of ``terms``, left to right; a zero (made once) when there are none."""
        if terms:
            return sum(terms[1:], terms[0])
        zero = getattr(self, "_zero", None)
        if zero is None or zero.device != self.device:
            zero = self._zero = torch.zeros((), device=self.device)
        return zero

    def discriminator_loss(self, s: Tensor, fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``L_D`` on real style images ``s`` and (detached) fakes, with its terms."""
        with self._autocast():
            batch = StyleBatch(s, fake, self._d_forward)
            weighted_terms = []
            terms: dict[str, Tensor] = {}
            for label, (w, loss) in zip(self.style_labels, self.losses.style):
                value = loss.discriminator_loss(batch)
                if value is not None:
                    terms[label + "/d"] = value
                    weighted_terms.append(weighted(w, value.float()))
        return self._total(weighted_terms), terms

    # ------------------------------------------------------------------------------------
    # one step
    # ------------------------------------------------------------------------------------

    def _set_lr(self) -> dict[str, float]:
        factor = lr_factor(self.spec.training.schedule, self.step, self.total_steps)
        lrs = {}
        for name, opt in self.optimizers.items():
            lr = self.base_lr[name] * factor
            for group in opt.param_groups:
                group["lr"] = lr
            lrs[f"lr/{name}"] = lr
        return lrs

    def _update(self, names: list[str], loss: Tensor, bad: Tensor | None = None) -> None:
        """Backward, average gradients across processes, clip, and step the named optimisers.

        ``bad`` (a 0-dim bool tensor on the device) makes the fused optimisers skip the
        update on the device (their ``found_inf``), so the step needs no host sync.
        """
        opts = [self.optimizers[n] for n in names]
        self.scaler.scale(loss).backward()
        stepped = False
        clip = self.spec.training.grad_clip
        for opt in opts:
            params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
            if not params:
                continue
            self.dist.average_gradients(params)
            if clip is not None:
                self.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, clip)
            if bad is not None:
                fused_step_unless(opt, bad)
            else:
                self.scaler.step(opt)
            stepped = True
        # one update per step of the optimisers (a scaler refuses two steps of one optimiser
        # without an update between them, e.g. d_steps > 1), none when nothing stepped
        if stepped and bad is None:
            self.scaler.update()

    def _loss_state(self) -> list[Tensor]:
        """The buffers of the losses and the balancer that a checkpoint keeps (gradnorm's norms,
        constraint's lambda); constants such as a feature encoder's normalisation are not state."""
        kept = getattr(self, "_loss_state_names", None)
        if kept is None:
            kept = self._loss_state_names = set(self.loss_modules.state_dict())
        return [b for name, b in self.loss_modules.named_buffers() if name in kept]

    def _skips_on_device(self) -> bool:
        """Whether non-finite steps are skipped on the device (fused optimisers, no scaler).

        Then a step has a single host sync, at its end; otherwise the losses are read before
        the updates, so that a non-finite step can be skipped from the host.
        """
        return not self.scaler.is_enabled() and all(
            opt.defaults.get("fused") for opt in self.optimizers.values()
        )

    def _nonfinite(self, values: dict[str, float], where: str, step: int, now: int) -> bool:
        """Count and report a non-finite ``step`` (1-based), read at step ``now``; stop at the limit."""
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if not bad:
            return False
        self.nonfinite += 1
        self._skipped_unlogged += 1
        what = ", ".join(f"{k}={v}" for k, v in bad.items())
        limit = self.spec.training.max_nonfinite_steps
        if self.nonfinite >= limit:
            last = self.run.newest_checkpoint()
            kept = f"the last checkpoint, {last.path}, is intact" if last else "no checkpoint was written yet"
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
            stacklevel=4,
        )
        return True

    def settle(self, now: int | None = None) -> tuple[dict[str, float], dict[str, float]]:
        """Read back the losses of the steps that did not log, in one host sync, and report the
        skipped ones (warnings, :attr:`nonfinite`, the stop at ``max_nonfinite_steps``).

        Returns the last such step's values (generator side, discriminator); checkpoints call
        this, so a checkpoint's count of consecutive skipped steps is exact.
        """
        unread, self._unread = self._unread, []
        if not unread:
            return {}, {}
        now = self.step if now is None else now
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

    def train_step(self, x: Tensor, s: Tensor, *, log: bool = True) -> dict[str, float]:
        """One step at ``self.step`` (generator side, then the discriminator); returns metrics.

        A step whose losses are not all finite changes nothing (weights, optimiser states,
        EMA, balancer state) and is reported afterwards; see :meth:`_nonfinite`. With fused
        optimisers and no gradient scaler (the defaults) that is decided on the device, and a
        step with ``log=False`` reads nothing back from it: no host sync, so the host runs
        ahead of the device. Its metrics are then the step, the stage and the learning rates;
        its losses are read with the next step that logs (or :meth:`settle`), which reports
        any step skipped meanwhile and counts it in ``skipped``.
        """
        stage = self.spec.training.stages[self.stage_index(self.step)]
        lrs = self._set_lr()
        # training mode is set when the trainer is made, and here again only when something
        # (a user) left a module in eval: each .train() walks every submodule, 1-2 % of a
        # small CPU step. A loss's frozen encoder keeps itself in eval through its own train().
        for module in (self.generator, self.content_net, self.loss_modules):
            if not module.training:
                module.train()
        on_device = self._skips_on_device()

        # -- generator and content net --
        self.discriminator.requires_grad_(False)
        # D's gradients are cleared before its own update, and an untrained content net has none
        for name in ("generator", "content_net") if self.train_content_net else ("generator",):
            self.optimizers[name].zero_grad(set_to_none=True)
        # the losses may update their own state (gradnorm's norms, constraint's lambda):
        # a skipped step must leave none of it behind
        loss_state = self._loss_state()
        saved_state = [b.clone() for b in loss_state]
        parts = self.generator_losses(x, s, stage)
        scalar_keys = [k for k, v in parts.items() if isinstance(v, Tensor) and v.dim() == 0]
        with torch.no_grad():
            g_stacked = self.dist.average(torch.stack([parts[k].float() for k in scalar_keys]))
            g_bad = nonfinite_flag(g_stacked)
        if on_device:
            skipped = False  # known at the end of the step
            self._update(["generator", "content_net"], parts["objective"], bad=g_bad.float())
        else:
            values = dict(zip(scalar_keys, g_stacked.tolist()))
            skipped = self._nonfinite(values, "generator/content-net", self.step + 1, self.step + 1)
            if not skipped:
                self._update(["generator", "content_net"], parts["objective"])
        if not skipped:
            if self.ema is not None:
                start = self.spec.training.ema.start_step
                self.ema.update(self.generator, decay=0.0 if self.step < start else None,
                                skip=g_bad if on_device else None)
            if on_device:
                with torch.no_grad():
                    for buffer, saved in zip(loss_state, saved_state):
                        torch.where(g_bad, saved, buffer, out=buffer)
        else:
            with torch.no_grad():
                for buffer, saved in zip(loss_state, saved_state):
                    buffer.copy_(saved)

        # -- discriminator --
        d_keys: list[str] = []
        d_stacked: Tensor | None = None
        d_values: dict[str, float] = {}
        d_skipped = False
        if self.adversarial and not skipped:
            self.discriminator.requires_grad_(True)
            fake = parts["fake"].detach()
            fake = self.pool.query(fake.nan_to_num() if on_device else fake)
            real = s.detach().requires_grad_(True) if self.needs_real_grad else s
            for _ in range(self.spec.training.d_steps):
                self.optimizers["discriminator"].zero_grad(set_to_none=True)
                d_total, d_terms = self.discriminator_loss(real, fake)
                d_keys = ["discriminator", *d_terms]
                with torch.no_grad():
                    d_stacked = self.dist.average(torch.stack([d_total, *[v.float() for v in d_terms.values()]]))
                    bad = g_bad | nonfinite_flag(d_stacked)
                if on_device:
                    self._update(["discriminator"], d_total, bad=bad.float())
                else:
                    d_values = dict(zip(d_keys, d_stacked.tolist()))
                    d_skipped = self._nonfinite(d_values, "discriminator", self.step + 1, self.step + 1)
                    if d_skipped:
                        break
                    self._update(["discriminator"], d_total)
        number = self.step + 1
        if on_device:  # losses and the non-finite check stay on the device until a step logs
            self._unread.append((number, scalar_keys, g_stacked, d_keys, d_stacked))
            if log or len(self._unread) >= 1024:  # the one host sync: every unread value at once
                values, d_values = self.settle(number)
        elif not skipped and not d_skipped:
            self.nonfinite = 0
        self.step += 1
        metrics: dict[str, float] = {"step": number, "stage": self.stage_index(number - 1) + 1}
        if not log:
            return {**metrics, **lrs}
        metrics.update({
            "loss/generator": values.get("objective", float("nan")),
            "loss/style": values.get("style", float("nan")),
            "loss/reconstruction": values.get("reconstruction", float("nan")),
        })
        if "content" in values:
            metrics["loss/content"] = values["content"]
        if d_values:
            metrics["loss/discriminator"] = d_values["discriminator"]
        for k, v in {**values, **d_values}.items():
            if "/" in k:
                metrics[f"loss/{k}"] = v
        metrics.update({f"weight/{k}": float(v) for k, v in parts["weights"].items()})
        metrics.update(lrs)
        metrics["skipped"], self._skipped_unlogged = float(self._skipped_unlogged), 0
        return metrics
