"""Progress of long loops (training steps, images stylised or scored), as pytest and pip show it.

On a terminal, a tqdm bar. When the output is not a terminal (a log file, CI), one plain line
every ``every`` items and at the end, instead of tqdm's carriage-return updates, so a log holds
a readable history. Nothing at all when disabled (``--quiet``, or a library call that did not
ask for progress).
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "plain_every"]

#: Plain-line mode: about this many lines over a loop, unless ``GANCR_PROGRESS_EVERY`` says otherwise.
PLAIN_LINES = 20


def plain_every(total: int) -> int:
    """Items between two plain progress lines: ``GANCR_PROGRESS_EVERY``, else about 1/20 of ``total``."""
    value = os.environ.get("GANCR_PROGRESS_EVERY", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, math.ceil(total / PLAIN_LINES))


class Progress:
    """One loop's progress: ``update()`` per item, ``close()`` at the end (or use it as a context).

    Args:
        total: the last item's number.
        desc: what is counted, shown first (``train``, ``stylize``).
        unit: the item's name (``step``, ``image``).
        initial: items already done (a resumed run).
        enabled: ``False`` shows nothing.
        stream: where to write (default: standard error).
        terminal: force bar (``True``) or plain lines (``False``); default: whether ``stream`` is a terminal.
    """

    def __init__(self, total: int, desc: str, unit: str, *, initial: int = 0, enabled: bool = True,
                 stream: TextIO | None = None, terminal: bool | None = None):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.bar: Any = None
        self.postfix = ""
        self.start, self.start_n = time.perf_counter(), initial
        self.every = plain_every(max(total - initial, 1))
        if not enabled:
            return
        if terminal is None:
            terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        if terminal:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=self.stream)

    def set_description(self, text: str) -> None:
        """Say what the loop is doing now (e.g. the training stage)."""
        self.desc = text
        if self.bar is not None:
            self.bar.set_description(text)

    def update(self, n: int = 1, postfix: str = "") -> None:
        """``n`` items more; ``postfix`` is shown after the count (losses, throughput)."""
        self.n += n
        self.postfix = postfix
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix_str(postfix)
        elif (self.n - self.start_n) % self.every == 0 or self.n == self.total:
            self._line()

    def _line(self) -> None:
        elapsed = time.perf_counter() - self.start
        width = len(str(self.total))
        text = f"{self.desc}: {self.unit} {self.n:>{width}}/{self.total} ({100 * self.n / max(self.total, 1):.0f} %, {elapsed:.0f} s)"
        if self.postfix:
            text += f" {self.postfix}"
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
