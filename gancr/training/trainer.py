"""The two-stage multi-task trainer.

Stage ``separate`` (stage 1): the content net ``C`` learns reconstruction alone,
``L_rec = L_c(x, C(x))``; the generator ``G`` learns style alone, ``w_g * L_g``; the
discriminator ``D`` learns against ``G``.

Stage ``joint`` (stage 2): ``G`` and ``C`` learn together on
``balancer(L_c(x, G(x)), L_g) + L_rec``: the content losses compare the input with its
stylisation (the content net's features included), the balancer weighs them against style
(``w_c * L_c + w_g * L_g`` for ``fixed``), and ``C`` keeps its reconstruction loss so its
features cannot collapse. ``D`` keeps its own updates.

One training step: the generator side (``G`` and ``C`` forward, losses, one backward, their
optimisers), then ``d_steps`` discriminator updates on the detached fakes (through the
image pool when enabled). All randomness is in torch's generators and the data is a pure
function of the step, so a resumed run reproduces a straight one bit for bit on the CPU.
"""

from __future__ import annotations

import contextlib
import random
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from gancr.builder import build, build_losses
from gancr.devices import autocast, eval_mode, resolve_device, resolve_precision
from gancr.errors import CheckpointError, GancrError, ResourceError, WriteError
from gancr.plugins import call_hook
from gancr.resources import activation_bytes, available_memory, is_allocation_error, memory_error
from gancr.spec import Spec, load_spec
from gancr.storage import Checkpoint, InferenceWeights, RunDir, RunLock, check_output, human_size
from gancr.storage.records import NETS
from gancr.training.checkpoint import get_rng_state, set_rng_state
from gancr.training.distributed import from_environment
from gancr.training.parts import EMA, ImagePool, make_optimizer
from gancr.training.preflight import check_content_net_use
from gancr.training.runlog import RunLog, trim_metrics
from gancr.training.signals import StopSignals
from gancr.training.step import TrainingStep
from gancr.trio import Losses, Trio

__all__ = ["Trainer", "FitResult"]


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` did: the last step, why it stopped, and where things are."""

    step: int
    status: Literal["finished", "max_steps", "interrupted"]
    out_dir: Path
    checkpoint: Path | None
    generator: Path | None
    signal: int | None = None  #: the signal that interrupted the run (SIGINT, SIGTERM, SIGHUP), if one did


class _StepBatches(torch.utils.data.Sampler[list[int]]):
    """Batches of global sample numbers: step ``t`` is samples ``t*B .. t*B+B-1``.

    With ``world_size`` processes, rank ``r`` takes its contiguous share of each global batch.
    """

    def __init__(self, start: int, stop: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.start, self.stop, self.batch_size = start, stop, batch_size
        self.local = batch_size // world_size
        self.offset = rank * self.local

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            first = step * self.batch_size + self.offset
            yield list(range(first, first + self.local))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def _labels(prefix: str, items: list[tuple[float, nn.Module]], names: list[str]) -> list[str]:
    """``content/l1``, ``content/edge``, ``content/edge.1`` ... unique per list."""
    out, seen = [], {}
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(f"{prefix}/{name}" + (f".{n}" if n else ""))
    return out


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two plain-data trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += _differences(x, y, f"{prefix}{i}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


class Trainer(TrainingStep):
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
        if resume and overwrite:
            raise GancrError("--resume continues the run in the folder, --overwrite replaces it: give one of them")
        self.overwrite = overwrite
        self._lock: RunLock | None = None
        # before anything slow: the folder must be writable, and not another run's by mistake
        check_output(self.out_dir, folder=True, what="the run folder")
        self.quiet = quiet
        self.max_steps = max_steps
        t = self.spec.training
        self.dist = from_environment()
        if not resume and not overwrite and self.dist.is_main:
            self._check_not_another_run()
        self.device = self.dist.init(resolve_device(t.device))
        self.local_batch = self.dist.local_batch(t.batch_size)
        self.precision = resolve_precision(t.precision, self.device)
        self._seed_everything(t.seed)

        self.trio: Trio = build(self.spec).to(self.device)
        self.losses: Losses = build_losses(self.spec)
        self.loss_modules = self.losses.modules().to(self.device)
        if self.dist.enabled:
            if self.device.type == "cuda":
                self.trio = nn.SyncBatchNorm.convert_sync_batchnorm(self.trio)
            self.dist.broadcast_parameters(self.trio)
            self.dist.broadcast_parameters(self.loss_modules)
            torch.manual_seed(t.seed + 7919 * self.dist.rank)  # per-process noise (penalties, pool)
        self.channels_last = t.channels_last if t.channels_last != "auto" else self.device.type == "cuda"
        if self.channels_last:
            self.trio.to(memory_format=torch.channels_last)
            self.loss_modules.to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = t.cudnn_benchmark
        self.generator_checkpointing = t.activation_checkpointing
        self.generator, self.content_net, self.discriminator = (
            self.trio.generator, self.trio.content_net, self.trio.discriminator,
        )
        self._g_forward, self._c_forward, self._d_forward = self.generator, self.content_net, self.discriminator
        for module in (self.generator, self.content_net, self.loss_modules):
            module.train()  # every submodule, even one a component built in eval; steps keep it
        if t.compile:
            mode = None if t.compile is True or t.compile == "default" else t.compile
            self._g_forward = torch.compile(self.generator, mode=mode)
            self._c_forward = torch.compile(self.content_net, mode=mode)
            self._d_forward = torch.compile(self.discriminator, mode=mode)
            for _, loss in [*self.losses.content, *self.losses.style]:
                loss.compile(mode=mode)

        g_params = list(self.generator.parameters())
        seen = {id(p) for p in g_params}
        loss_params = [p for p in self.loss_modules.parameters() if id(p) not in seen]
        c_params = [p for p in self.content_net.parameters() if id(p) not in seen]
        lr = t.optimizer.lr
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "generator": make_optimizer(t.optimizer, g_params + loss_params, lr.generator, self.device),
            "content_net": make_optimizer(t.optimizer, c_params, lr.content_net, self.device),
            "discriminator": make_optimizer(t.optimizer, self.discriminator.parameters(), lr.discriminator, self.device),
        }
        self.base_lr = {"generator": lr.generator, "content_net": lr.content_net, "discriminator": lr.discriminator}
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.ema = EMA(self.generator, t.ema.decay) if t.ema.enabled else None
        self.pool = ImagePool(t.image_pool)

        self.style_labels = _labels("style", self.losses.style, [i.name for i in self.spec.losses.style])
        self.content_labels = _labels("content", self.losses.content, [i.name for i in self.spec.losses.content])
        self.reconstruction_labels = [
            "reconstruction/" + label.split("/", 1)[1] for label, (_, m) in zip(self.content_labels, self.losses.content)
            if any(m is r for _, r in self.losses.reconstruction)
        ] or ["reconstruction/l1"]
        self.adversarial = any(getattr(m, "adversarial", True) for _, m in self.losses.style)
        self.needs_real_grad = any(getattr(m, "needs_real_grad", False) for _, m in self.losses.style)

        self.train_content_net = self.spec.model.content_net.train
        check_content_net_use(self.spec, self.losses)
        self.total_steps = t.total_steps
        self.stage_ends = list(np.cumsum([s.steps for s in t.stages]))
        self.step = 0
        self.nonfinite, self._unread, self._skipped_unlogged = 0, [], 0
        self._stop_requested = False
        self._dataset = dataset
        self._device_augment: Any = None
        if self.spec.data.augment_on == "device" and dataset is None:
            from gancr.data import DeviceAugment

            d = self.spec.data
            self._device_augment = DeviceAugment(t.image_size, tuple(d.crop_scale), d.flip)
            self._device_augment_style = DeviceAugment(t.image_size, tuple(d.crop_scale), d.flip, d.style_hue)
        self._samples: Tensor | None = None
        self.resumed_from: Path | None = None
        if resume:
            self._restore()

    # ------------------------------------------------------------------------------------
    # set-up helpers
    # ------------------------------------------------------------------------------------

    @property
    def out_dir(self) -> Path:
        """The run directory (:attr:`run` knows its files)."""
        return self.run.path

    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    @property
    def dataset(self) -> Any:
        if self._dataset is None:
            from gancr.data import UnpairedImages

            d, t = self.spec.data, self.spec.training
            self._dataset = UnpairedImages(
                d.content, d.style, image_size=t.image_size, load_size=d.load_size,
                crop_scale=tuple(d.crop_scale), flip=d.flip, style_hue=d.style_hue, seed=t.seed,
                cache=d.cache, augment=d.augment_on == "loader",
            )
        return self._dataset

    def stage_index(self, step: int) -> int:
        """The stage that global step ``step`` (0-based) belongs to."""
        for i, end in enumerate(self.stage_ends):
            if step < end:
                return i
        return len(self.stage_ends) - 1

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return autocast(self.device, self.precision)

    def to_device(self, x: Tensor) -> Tensor:
        """A batch on the training device, in the trio's memory format."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # ------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------

    def fit(self) -> FitResult:
        """Train to the end of the last stage (or ``max_steps``); returns what happened.

        Under ``torchrun`` every process trains; only rank 0 writes the run directory.
        """
        main = self.dist.is_main
        if main:
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

    def _fit(self) -> FitResult:
        t = self.spec.training
        main = self.dist.is_main
        if main:
            if self.resumed_from is None and self.step == 0:
                self._check_not_another_run()  # again, now that the folder is ours
            self.run.remove_orphans()  # temporary files of writes that a kill cut short
            self.run.path.mkdir(parents=True, exist_ok=True)
            self.run.write_spec(self.spec.to_yaml())
            trim_metrics(self.run, self.step)
        stop = self.total_steps if self.max_steps is None else min(self.total_steps, self.max_steps)
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=_StepBatches(self.step, stop, t.batch_size, self.dist.rank, self.dist.world_size),
            num_workers=t.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),  # keep the global random state untouched
            persistent_workers=False,
        )
        status: Literal["finished", "max_steps", "interrupted"] = "finished"
        last_ckpt: Path | None = None
        generator_path: Path | None = None
        current_stage = -1
        log = RunLog(self.run, t, enabled=main, quiet=self.quiet, total=stop, initial=self.step)
        signals = StopSignals(self.request_stop).__enter__()
        rate: float | None = None
        try:
            self._check_step_memory()
            tick, logged = time.perf_counter(), self.step
            for batch in loader:
                stage_i = self.stage_index(self.step)
                if stage_i != current_stage:
                    current_stage = stage_i
                    stage = t.stages[stage_i]
                    if main:
                        call_hook("gancr_on_stage_start", trainer=self, stage=stage, stage_index=stage_i)
                    log.stage(f"stage {stage_i + 1}/{len(t.stages)} {stage.name}")
                x, s = self.to_device(batch["content"]), self.to_device(batch["style"])
                if self._device_augment is not None:
                    x = self.to_device(self._device_augment(x))
                    s = self.to_device(self._device_augment_style(s))
                logs = (self.step + 1) % t.log_every == 0 or self.step + 1 == stop  # only these read losses back
                metrics = self.train_step(x, s, log=logs)
                if logs:  # the throughput since the last line (the steps between queue up on a GPU)
                    now = time.perf_counter()
                    rate = t.batch_size * (self.step - logged) / max(now - tick, 1e-9)
                    tick, logged = now, self.step
                    metrics.update(images_per_s=rate, time=time.time())
                if main:
                    if logs:
                        log.write(metrics)
                    call_hook("gancr_on_step_end", trainer=self, step=self.step, metrics=metrics)
                    log.advance(metrics, rate)
                    if self.step % t.sample_every == 0:
                        self.save_samples()
                if self.step % t.checkpoint.every == 0 and self.step < stop:
                    last_ckpt = self.save_checkpoint()
                if (logs or not self.dist.enabled) and self._should_stop():  # across processes: a sync
                    status = "interrupted"
                    break
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
            t = self.spec.training
            kept = self._intact_checkpoint()
            raise memory_error(
                exc, f"training step {self.step + 1} (batches of {t.batch_size} crops of {t.image_size} px)",
                "training.batch_size or training.image_size (or data.load_size, or the model's widths)"
                + (f"; the checkpoint {kept} is intact" if kept else ""), self.device,
            ) from None
        finally:
            signals.__exit__()
            log.close()
        return FitResult(self.step, status, self.out_dir, last_ckpt, generator_path,
                         signals.received if status == "interrupted" else None)

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
        with eval_mode(gen, self.content_net), self._autocast():
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
        self.settle()  # the count of skipped steps it keeps is exact
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

    def _check_step_memory(self) -> None:
        """Refuse a step that clearly cannot fit (its activations alone exceed the free memory)."""
        t = self.spec.training
        size = min(t.image_size, max(64, 2 * int(getattr(self.generator, "reduction", 1))))
        try:
            per_pixel = (activation_bytes(self.generator, training=True, size=size)
                         + activation_bytes(self.content_net, training=True, size=size)
                         + 2 * activation_bytes(self.discriminator, training=True, size=size))
        except Exception:  # noqa: BLE001 - a part that cannot be probed this way is simply not checked
            return
        need = per_pixel * self.local_batch * t.image_size**2
        free = available_memory(self.device)
        if free is not None and need > free:
            raise ResourceError(
                f"a training step on batches of {self.local_batch} crops of {t.image_size} px needs about "
                f"{human_size(need)} of memory for its activations, and {human_size(free)} is free; lower "
                "training.batch_size or training.image_size"
            )

    def save_generator(self) -> Path:
        """``generator.safetensors``: generator (and EMA) and content-net weights, with the spec."""
        return self.run.save_generator(InferenceWeights(
            self.spec.to_dict(), self.generator.state_dict(),
            self.ema.module.state_dict() if self.ema is not None else None,
            self.content_net.state_dict(), step=self.step,
        ))

    def _check_resumed_spec(self, saved: dict[str, Any] | None, path: Path) -> None:
        """The run's model and losses must not change on resume; training settings may (warned)."""
        if not saved:
            return
        current = self.spec.to_dict()
        changed = _differences(saved, current)
        fixed = [p for p in changed if p.split(".")[0] in ("model", "losses")]
        if fixed:
            raise CheckpointError(
                f"--resume: {path} was trained with a different model or losses ({', '.join(fixed[:5])}"
                f"{' ...' if len(fixed) > 5 else ''}); resume with the run's own spec: "
                f"gancr train {self.run.spec_file} --out {self.out_dir} --resume"
            )
        other = [p for p in changed if p.split(".")[0] not in ("description",)]
        if other:
            warnings.warn(
                f"resuming {path.name} with changed settings: {', '.join(other[:8])}"
                f"{' ...' if len(other) > 8 else ''}",
                UserWarning,
                stacklevel=3,
            )

    def _restore(self) -> None:
        found = self.run.newest_checkpoint(map_location=self.device)
        if found is None:
            raise CheckpointError(
                f"--resume: no complete checkpoint in {self.run.checkpoints_dir}; start the run again with "
                "--overwrite (or into a new folder)"
            )
        path, state = found.path, found.checkpoint
        self._check_resumed_spec(state.spec, path)
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
        self.nonfinite = state.nonfinite
        self.step = state.step
        self.resumed_from = path
        if self.dist.enabled:  # per-process noise again, whatever the world size was before
            torch.manual_seed(self.spec.training.seed + 7919 * self.dist.rank + self.step)
