"""The two-stage multi-task trainer: it builds what a step works with from a spec, and runs the loop.

Stage ``separate`` (stage 1): the content net ``C`` learns reconstruction alone,
``L_rec = L_c(x, C(x))``; the generator ``G`` learns style alone, ``w_g * L_g``; the
discriminator ``D`` learns against ``G``.

Stage ``joint`` (stage 2): ``G`` and ``C`` learn together on
``balancer(L_c(x, G(x)), L_g) + L_rec``: the content losses compare the input with its
stylisation (the content net's features included), the balancer weighs them against style
(``w_c * L_c + w_g * L_g`` for ``fixed``), and ``C`` keeps its reconstruction loss so its
features cannot collapse. ``D`` keeps its own updates.

One step is :class:`~gancr.training.step.TrainingStep`, which receives its collaborators
(networks, losses, optimisers, scaler, EMA, image pool, augmentation) explicitly; the
:class:`Trainer` makes them from the spec and orchestrates: data, step numbers, stages,
checkpoints, samples and logs. All randomness is in torch's generators and the data is a
pure function of the step, so a resumed run reproduces a straight one bit for bit on the CPU.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from gancr.builder import build, build_losses
from gancr.data.dataset import StepBatches
from gancr.devices import (
    autocast,
    check_training_memory,
    eval_mode,
    is_allocation_error,
    memory_error,
    resolve_device,
    resolve_precision,
)
from gancr.errors import CheckpointError, GancrError, ResourceError, WriteError
from gancr.plugins import call_hook
from gancr.spec import Spec, load_spec
from gancr.storage import Checkpoint, InferenceWeights, RunDir, RunLock, check_output
from gancr.storage.records import NETS
from gancr.training.resume import check_resumed_spec, get_rng_state, set_rng_state
from gancr.training.distributed import from_environment
from gancr.training.history import EMA, ImagePool
from gancr.training.optimizers import LearningRates, make_optimizers
from gancr.training.preflight import check_content_net_use
from gancr.training.metrics_log import MetricsLog, trim_metrics
from gancr.training.signals import StopSignals
from gancr.training.step import Collaborators, Stage, StepSettings, TrainingStep, stage_from_spec
from gancr.trio import Losses, Trio

__all__ = ["Trainer", "FitResult"]

Status = Literal["finished", "max_steps", "interrupted"]


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` did: the last step, why it stopped, and where things are."""

    step: int
    status: Status
    out_dir: Path
    checkpoint: Path | None
    generator: Path | None
    signal: int | None = None  #: the signal that interrupted the run (SIGINT, SIGTERM, SIGHUP), if one did


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains the trio of a spec; writes a run directory.

    Args:
        spec: a :class:`Spec`, a mapping, or a YAML/JSON path.
        out_dir: the run directory (``spec.yaml``, ``checkpoints/``, ``samples/``,
            ``metrics.jsonl``, ``generator.safetensors``).
        resume: continue from the newest complete checkpoint in ``out_dir``.
        overwrite: start a new run in an ``out_dir`` that holds another run's files,
            deleting them (checkpoints, generator, metrics, samples, spec); without it (or
            ``resume``) such a folder is an error, so no run is replaced by mistake.
        max_steps: stop after this global step with a checkpoint (a later ``resume``
            continues).
        quiet: no progress display.
        overrides: ``path.to.field=value`` strings applied to the spec.
        dataset: a dataset to use instead of the spec's ``data`` (``dataset[k]`` gives
            ``{"content", "style"}`` tensors for global sample number ``k``).

    Example:
        >>> trainer = Trainer("examples/quickstart.yaml", "runs/quick")  # doctest: +SKIP
        >>> trainer.fit().status  # doctest: +SKIP
        'finished'
    """

    def __init__(
        self,
        spec: Spec | dict[str, Any] | str | Path,
        out_dir: str | Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        max_steps: int | None = None,
        quiet: bool = False,
        overrides: list[str] | tuple[str, ...] = (),
        dataset: Any = None,
    ):
        self.spec: Spec = spec if isinstance(spec, Spec) and not overrides else load_spec(spec, overrides)
        self.run = RunDir(out_dir)  # where every file of the run goes
        self.overwrite, self.max_steps, self.quiet = overwrite, max_steps, quiet
        self.dist = from_environment()
        self._lock: RunLock | None = None
        self._check_folder(resume)  # before anything slow
        t = self.spec.training
        self.device = self.dist.init(resolve_device(t.device, "training.device"))
        self.local_batch = self.dist.local_batch(t.batch_size)
        self.precision = resolve_precision(t.precision, self.device)
        self.channels_last = t.channels_last if t.channels_last != "auto" else self.device.type == "cuda"
        _seed_everything(t.seed)
        self.trio, self.losses = self._build()
        self.stages: list[Stage] = [stage_from_spec(s) for s in t.stages]
        self.stage_ends = list(np.cumsum([s.steps for s in t.stages]))
        self.training_step = TrainingStep(
            self._collaborators(augment=self.spec.data.augment_on == "device" and dataset is None),
            StepSettings.from_spec(self.spec, self.device, self.precision, self.channels_last),
            last_checkpoint=self._intact_checkpoint,
        )
        self.step = 0  # steps done
        self._stop_requested = False
        self._dataset = dataset
        self._samples: Tensor | None = None
        self.resumed_from: Path | None = None
        if resume:
            self._restore()

    # ------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------

    def _check_folder(self, resume: bool) -> None:
        """The run folder must be writable, and not another run's by mistake."""
        if resume and self.overwrite:
            raise GancrError("--resume continues the run in the folder, --overwrite replaces it: give one of them")
        check_output(self.out_dir, folder=True, what="the run folder")
        if not resume and not self.overwrite and self.dist.is_main:
            self._check_not_another_run()

    def _build(self) -> tuple[Trio, Losses]:
        """The trio and the losses on the device: the same on every process, in the memory
        format, in training mode (every submodule, even one a component built in eval)."""
        t = self.spec.training
        trio: Trio = build(self.spec).to(self.device)
        losses = build_losses(self.spec, trio)  # frozen encoders specified alike are shared
        loss_modules = losses.modules().to(self.device)
        if self.dist.enabled:
            if self.device.type == "cuda":
                trio = nn.SyncBatchNorm.convert_sync_batchnorm(trio)
            self.dist.broadcast_parameters(trio)
            self.dist.broadcast_parameters(loss_modules)
            torch.manual_seed(t.seed + 7919 * self.dist.rank)  # per-process noise (penalties, pool)
        if self.channels_last:
            trio.to(memory_format=torch.channels_last)
            loss_modules.to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = t.cudnn_benchmark
        for module in (trio.generator, trio.content_net, loss_modules):
            module.train()  # steps keep it so
        check_content_net_use(self.spec, losses)
        return trio, losses

    def _compiled(self) -> dict[str, Callable[[Tensor], Tensor]]:
        """``torch.compile``-d forwards of the three networks (and the losses, compiled in place)."""
        t = self.spec.training
        if not t.compile:
            return {}
        mode = None if t.compile is True or t.compile == "default" else t.compile
        compiled = {name: torch.compile(getattr(self.trio, name), mode=mode) for name in NETS}
        for term in [*self.losses.content, *self.losses.style]:
            term.loss.compile(mode=mode)
        return compiled

    def _collaborators(self, augment: bool) -> Collaborators:
        """What the step works with, as the spec's ``training`` and ``data`` sections say."""
        t, d = self.spec.training, self.spec.data
        compiled = self._compiled()
        augmentation = None
        if augment:
            from gancr.data import DeviceAugment

            augmentation = (DeviceAugment(t.image_size, tuple(d.crop_scale), d.flip),
                            DeviceAugment(t.image_size, tuple(d.crop_scale), d.flip, d.style_hue))
        return Collaborators(
            self.trio.generator, self.trio.content_net, self.trio.discriminator, self.losses,
            optimizers=make_optimizers(self.trio, self.losses, t.optimizer, self.device),
            scaler=torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16"),
            ema=EMA(self.trio.generator, t.ema.decay) if t.ema.enabled else None,
            pool=ImagePool(t.image_pool),
            augment=augmentation,
            learning_rates=LearningRates.from_spec(t),
            compiled=compiled,
            dist=self.dist,
        )

    # ------------------------------------------------------------------------------------
    # what the step works with, by name
    # ------------------------------------------------------------------------------------

    @property
    def generator(self) -> nn.Module:
        return self.trio.generator

    @property
    def content_net(self) -> nn.Module:
        return self.trio.content_net

    @property
    def discriminator(self) -> nn.Module:
        return self.trio.discriminator

    @property
    def loss_modules(self) -> nn.ModuleList:
        """Every loss module and the balancer (a checkpoint keeps their state)."""
        return self.training_step.loss_modules

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.training_step.collaborators.optimizers

    @property
    def scaler(self) -> torch.amp.GradScaler:
        return self.training_step.collaborators.scaler

    @property
    def ema(self) -> EMA | None:
        return self.training_step.collaborators.ema

    @property
    def pool(self) -> ImagePool:
        return self.training_step.collaborators.pool

    @property
    def nonfinite(self) -> int:
        """Consecutive steps skipped for non-finite losses (as read so far)."""
        return self.training_step.nonfinite

    @property
    def train_content_net(self) -> bool:
        return self.spec.model.content_net.train

    @property
    def total_steps(self) -> int:
        return self.spec.training.total_steps

    @property
    def out_dir(self) -> Path:
        """The run directory (:attr:`run` knows its files)."""
        return self.run.path

    @property
    def dataset(self) -> Any:
        if self._dataset is None:
            from gancr.data import UnpairedImages

            d, t = self.spec.data, self.spec.training
            self._dataset = UnpairedImages(
                d.content, d.style, image_size=t.image_size, load_size=d.load_size, load_side=d.load_side,
                crop_scale=tuple(d.crop_scale), flip=d.flip, style_hue=d.style_hue, style_border=d.style_border,
                seed=t.seed, cache=d.cache, augment=d.augment_on == "loader",
            )
        return self._dataset

    def stage_index(self, step: int) -> int:
        """The stage that global step ``step`` (0-based) belongs to."""
        for i, end in enumerate(self.stage_ends):
            if step < end:
                return i
        return len(self.stage_ends) - 1

    def to_device(self, x: Tensor) -> Tensor:
        """A batch on the training device, in the trio's memory format."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # ------------------------------------------------------------------------------------
    # one step
    # ------------------------------------------------------------------------------------

    def train_step(self, x: Tensor, s: Tensor, *, log: bool = True) -> dict[str, float]:
        """Step :attr:`step` (generator side, then the discriminator) on a batch on the device;
        returns its metrics: the step, the stage, and (``log``) the losses, or the learning rates.

        See :class:`~gancr.training.step.TrainingStep` for non-finite steps and the steps that do
        not log (their losses are read with the next that does).
        """
        i = self.stage_index(self.step)
        metrics = self.training_step(x, s, number=self.step, stage=self.stages[i], log=log)
        self.step += 1
        return {"step": self.step, "stage": i + 1, **metrics}

    def generator_losses(self, x: Tensor, s: Tensor, stage: Any) -> dict[str, Any]:
        """The generator side of a step of ``stage`` (an item of ``training.stages``, or a
        :data:`~gancr.training.step.Stage`) at :attr:`step`, without updating anything
        (:meth:`TrainingStep.generator_losses <gancr.training.step.TrainingStep.generator_losses>`)."""
        return self.training_step.generator_losses(x, s, stage_from_spec(stage), self.step)

    # ------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------

    def fit(self) -> FitResult:
        """Train to the end of the last stage (or ``max_steps``); returns what happened.

        Under ``torchrun`` every process trains; only rank 0 writes the run directory.
        """
        if self.dist.is_main:
            self._lock = self.run.lock()  # one process per run folder; the OS frees it when we die
        try:
            return self._fit()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _check_not_another_run(self) -> None:
        """A new run goes into a folder without another run's files (or ``overwrite`` clears them)."""
        found = self.run.files()
        if not found:
            return
        if not self.overwrite or self._lock is None:
            if self.overwrite:
                return  # cleared once the folder is locked (in fit)
            names = ", ".join(p.relative_to(self.out_dir).as_posix() for p in found[:4])
            raise GancrError(
                f"{self.out_dir} holds another run ({names}); continue it with --resume, replace it with "
                "--overwrite, or train into a new folder"
            )
        self.run.clear()

    def _open_folder(self) -> None:
        """The run folder, ready for this run: ours, without orphans, with the spec, the metrics trimmed."""
        if self.resumed_from is None and self.step == 0:
            self._check_not_another_run()  # again, now that the folder is ours
        self.run.remove_orphans()  # temporary files of writes that a kill cut short
        self.run.path.mkdir(parents=True, exist_ok=True)
        self.run.write_spec(self.spec.to_yaml())
        trim_metrics(self.run, self.step)

    def _loader(self, stop: int) -> torch.utils.data.DataLoader:
        t = self.spec.training
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=StepBatches(self.step, stop, t.batch_size, self.dist.rank, self.dist.world_size),
            num_workers=t.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),  # keep the global random state untouched
            persistent_workers=False,
        )

    def _fit(self) -> FitResult:
        stop = self.total_steps if self.max_steps is None else min(self.total_steps, self.max_steps)
        main = self.dist.is_main
        if main:
            self._open_folder()
        generator_path: Path | None = None
        log = MetricsLog(self.run, self.spec.training, enabled=main, quiet=self.quiet, total=stop, initial=self.step)
        signals = StopSignals(self.request_stop).__enter__()
        try:
            t = self.spec.training
            check_training_memory(self.trio, self.local_batch, t.image_size, self.device)
            self._give_style_images()
            status, last_ckpt = self._loop(stop, log)
            if status == "finished" and self.step < self.total_steps:
                status = "max_steps"
            if last_ckpt is None or not last_ckpt.name.endswith(f"{self.step:07d}.pt"):
                last_ckpt = self.save_checkpoint()
            if status == "finished" and main:
                self.save_samples()
                generator_path = self.save_generator()
            self.dist.barrier()
        except (MemoryError, RuntimeError) as exc:
            if not is_allocation_error(exc):
                raise
            raise self._memory_error(exc) from None
        finally:
            signals.__exit__()
            log.close()
        return FitResult(self.step, status, self.out_dir, last_ckpt, generator_path,
                         signals.received if status == "interrupted" else None)

    def _give_style_images(self) -> None:
        """Hand the style images whole to the style losses that take their statistics from them."""
        takers = [t.loss for t in self.losses.style if getattr(t.loss, "needs_style_images", False)]
        if not takers:
            return
        if not hasattr(self.dataset, "style_images"):
            raise GancrError(f"style losses {[type(t).__name__ for t in takers]} need the style images whole, "
                             "but the dataset given has no style_images() method")
        images = self.dataset.style_images()
        for loss in takers:
            loss.use_style_images(images)

    def _loop(self, stop: int, log: MetricsLog) -> tuple[Status, Path | None]:
        """The steps up to ``stop``: returns why they ended and the last checkpoint written."""
        t = self.spec.training
        current_stage, last_ckpt, rate = -1, None, None
        tick, logged = time.perf_counter(), self.step
        for batch in self._loader(stop):
            if self.stage_index(self.step) != current_stage:
                current_stage = self.stage_index(self.step)
                self._enter_stage(current_stage, log)
            x, s = self.to_device(batch["content"]), self.to_device(batch["style"])
            logs = (self.step + 1) % t.log_every == 0 or self.step + 1 == stop  # only these read losses back
            metrics = self.train_step(x, s, log=logs)
            if logs:  # the throughput since the last line (the steps between queue up on a GPU)
                now = time.perf_counter()
                rate = t.batch_size * (self.step - logged) / max(now - tick, 1e-9)
                tick, logged = now, self.step
                metrics.update(images_per_s=rate, time=time.time())
            if self.dist.is_main:
                self._report(metrics, logs, rate, log)
            if self.step % t.checkpoint.every == 0 and self.step < stop:
                last_ckpt = self.save_checkpoint()
            if (logs or not self.dist.enabled) and self._should_stop():  # across processes: a sync
                return "interrupted", last_ckpt
        return "finished", last_ckpt

    def _enter_stage(self, index: int, log: MetricsLog) -> None:
        stages = self.spec.training.stages
        if self.dist.is_main:
            call_hook("gancr_on_stage_start", trainer=self, stage=stages[index], stage_index=index)
        log.stage(f"stage {index + 1}/{len(stages)} {stages[index].name}")

    def _report(self, metrics: dict[str, float], logs: bool, rate: float | None, log: MetricsLog) -> None:
        """What rank 0 does after a step: the metrics line, the hook, the progress, the samples."""
        if logs:
            log.write(metrics)
        call_hook("gancr_on_step_end", trainer=self, step=self.step, metrics=metrics)
        log.advance(metrics, rate)
        if self.step % self.spec.training.sample_every == 0:
            self.save_samples()

    def _memory_error(self, exc: BaseException) -> ResourceError:
        """An allocation that failed in a step, as a message naming what to lower."""
        t = self.spec.training
        kept = self._intact_checkpoint()
        return memory_error(
            exc, f"training step {self.step + 1} (batches of {t.batch_size} crops of {t.image_size} px)",
            "training.batch_size or training.image_size (or data.load_size, or the model's widths)"
            + (f"; the checkpoint {kept} is intact" if kept else ""), self.device,
        )

    def _should_stop(self) -> bool:
        """A stop request (Ctrl-C) on any process stops every process after the same step."""
        if not self.dist.enabled:
            return self._stop_requested
        flag = torch.tensor([float(self._stop_requested)], device=self.device)
        return bool(self.dist.average(flag).item() > 0)

    def request_stop(self) -> None:
        """Ask the loop to stop after the current step (with a checkpoint); as Ctrl-C does."""
        self._stop_requested = True

    # ------------------------------------------------------------------------------------
    # outputs
    # ------------------------------------------------------------------------------------

    def inference_generator(self) -> nn.Module:
        """The generator used for samples and inference: the EMA one when enabled."""
        return self.ema.module if self.ema is not None else self.generator

    @torch.no_grad()
    def save_samples(self) -> Path:
        """A grid per sample image: input | content-net reconstruction | stylised."""
        from torchvision.utils import make_grid

        from gancr.data import save_image

        if self._samples is None:
            n = 4
            base = 10**12  # sample numbers far from training's, fixed for the whole run
            samples = torch.stack([self.dataset[base + i]["content"] for i in range(n)])
            if samples.dtype == torch.uint8:  # augment_on: device gives uint8 squares
                from gancr.data.resize import resize

                size = self.spec.training.image_size
                samples = resize(samples.float() / 255, (size, size))
            self._samples = samples
        x = self.to_device(self._samples)
        gen = self.inference_generator()
        with eval_mode(gen, self.content_net), autocast(self.device, self.precision):
            rows = torch.stack([x, self.content_net(x).float(), gen(x).float()], dim=1)
        grid = make_grid(rows.flatten(0, 1).clamp(0, 1).cpu(), nrow=3, padding=2, pad_value=1.0)
        return save_image(grid, self.run.sample_file(self.step))

    def checkpoint(self) -> Checkpoint:
        """Everything a resume needs, as a record: models, optimisers, scaler, EMA, pool, random states."""
        return Checkpoint(
            step=self.step,
            spec=self.spec.to_dict(),
            generator=self.generator.state_dict(),
            content_net=self.content_net.state_dict(),
            discriminator=self.discriminator.state_dict(),
            ema=self.ema.module.state_dict() if self.ema is not None else None,
            losses=self.loss_modules.state_dict(),
            optimizers={name: opt.state_dict() for name, opt in self.optimizers.items()},
            scaler=self.scaler.state_dict(),
            pool=self.pool.state_dict(),
            rng=get_rng_state(),
            nonfinite=self.nonfinite,
            stage=self.stage_index(max(self.step - 1, 0)),
        )

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step_<N>.pt`` atomically and keep the newest ``keep``.

        Under ``torchrun`` rank 0 writes it and every process waits for it (a barrier).
        """
        self.training_step.settle(self.step)  # the count of skipped steps it keeps is exact
        path = self.run.checkpoint_file(self.step)
        if self.dist.is_main:
            try:
                path = self.run.save_checkpoint(self.checkpoint())
            except WriteError as exc:
                kept = self._intact_checkpoint()
                raise WriteError(
                    f"{exc} " + (f"The newest complete checkpoint, {kept}, is intact: continue from it with --resume "
                                 "once the problem is solved." if kept else "No checkpoint of this run was written yet."),
                    path=exc.path,
                ) from None
            self.run.prune_checkpoints(self.spec.training.checkpoint.keep)
            call_hook("gancr_on_checkpoint", trainer=self, step=self.step, path=path)
        self.dist.barrier()
        return path

    def _intact_checkpoint(self) -> Path | None:
        """The newest checkpoint that loads, for messages that say what a failure left intact."""
        found = self.run.newest_checkpoint()
        return found.path if found is not None else None

    def save_generator(self) -> Path:
        """``generator.safetensors``: generator (and EMA) and content-net weights, with the spec."""
        return self.run.save_generator(InferenceWeights(
            self.spec.to_dict(), self.generator.state_dict(),
            self.ema.module.state_dict() if self.ema is not None else None,
            self.content_net.state_dict(), step=self.step,
        ))

    def _restore(self) -> None:
        found = self.run.newest_checkpoint(map_location=self.device)
        if found is None:
            raise CheckpointError(
                f"--resume: no complete checkpoint in {self.run.checkpoints_dir}; start the run again with "
                "--overwrite (or into a new folder)"
            )
        path, state = found.path, found.checkpoint
        check_resumed_spec(state.spec, self.spec.to_dict(), path, self.run)
        try:
            for name in NETS:
                getattr(self, name).load_state_dict(getattr(state, name))
            self.loss_modules.load_state_dict(state.losses)
            if self.ema is not None and state.ema:
                self.ema.module.load_state_dict(state.ema)
            for name, opt in self.optimizers.items():
                opt.load_state_dict(state.optimizers[name])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint {path} does not match the spec ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                "resume with the spec the run was started with"
            ) from None
        if state.scaler:
            self.scaler.load_state_dict(state.scaler)
        self.pool.load_state_dict(state.pool, self.device)
        set_rng_state(state.rng)
        self.training_step.nonfinite = state.nonfinite
        self.step = state.step
        self.resumed_from = path
        if self.dist.enabled:  # per-process noise again, whatever the world size was before
            torch.manual_seed(self.spec.training.seed + 7919 * self.dist.rank + self.step)
