"""Hook specifications of gancr's plugin system (pluggy), and nothing else.

A plugin is a module or object with functions marked ``@gancr.hookimpl`` whose names are
among the specifications below. Every hook name starts with ``gancr_``; a function marked as
an implementation whose name is not a specification here is an error (``check_pending``),
so a misspelt hook never goes silently unused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from gancr.registry import Registry
    from gancr.training.trainer import Trainer

PROJECT_NAME = "gancr"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = [
    "hookspec",
    "hookimpl",
    "gancr_register_components",
    "gancr_on_stage_start",
    "gancr_on_step_end",
    "gancr_on_checkpoint",
]

# -------------------------------------------------------------------------
# Components
# -------------------------------------------------------------------------


@hookspec
def gancr_register_components(registry: Registry) -> None:
    """Register components through ``registry.register(kind, name, factory, params=...)``.

    Called once for every plugin each time the registry is (re)built, with the plugin's
    name recorded on every entry it registers. Return nothing: register through the
    registrar. Raising here disables this plugin with a warning naming it (an error when
    ``GANCR_STRICT_PLUGINS=1``); the other plugins keep working.
    """


# -------------------------------------------------------------------------
# Training
# -------------------------------------------------------------------------


@hookspec
def gancr_on_stage_start(trainer: Trainer, stage: Any, stage_index: int) -> None:
    """Called when the trainer enters a stage (also when a resumed run re-enters one).

    ``stage`` is the stage's spec (``name``, ``steps``, ``w_c``, ``w_g`` ...).
    """


@hookspec
def gancr_on_step_end(trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
    """Called after every training step with the global step (1-based) and its metrics.

    On the steps that log (every ``training.log_every`` steps, and the last) ``metrics`` holds
    every loss, the balancer's weights, the learning rates and the throughput, exactly as
    written to ``metrics.jsonl``; on the others only ``step``, ``stage`` and the learning
    rates (their losses are not read back from the device). Use it to add a logger.
    """


@hookspec
def gancr_on_checkpoint(trainer: Trainer, step: int, path: Path) -> None:
    """Called after a checkpoint was written completely (atomically) to ``path``."""
