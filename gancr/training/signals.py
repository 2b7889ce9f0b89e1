"""Signals that stop a run after its current step, with a checkpoint: Ctrl-C, SIGTERM, SIGHUP.

A job scheduler sends SIGTERM before it kills a job, and a closed terminal sends SIGHUP; both
are handled like Ctrl-C. The first signal asks the loop to stop after the step it is in; a
second one ends the process at once (without a checkpoint). The command exits with
``128 + signal`` (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), as a process killed by
that signal would.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["STOP_SIGNALS", "StopSignals"]

#: The names of the signals that stop a run after its step.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class StopSignals:
    """Within ``with``, the stop signals call ``request_stop`` once; ``received`` is the first signal.

    Outside the main thread (where Python cannot install handlers) nothing changes.
    """

    def __init__(self, request_stop: Callable[[], None]):
        self.request_stop = request_stop
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        signums = [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]

        def handler(signum: int, frame: Any) -> None:
            self.request_stop()
            if self.received is None:
                self.received = signum
            for s in signums:  # a second signal ends the process at once
                signal.signal(s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL)

        self._previous = {s: signal.signal(s, handler) for s in signums}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        self._previous = {}
