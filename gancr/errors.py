"""The exceptions gancr raises for a user's mistake; each message names the place."""

from __future__ import annotations

__all__ = [
    "GancrError",
    "UnknownComponentError",
    "DuplicateComponentError",
    "PluginError",
    "SpecError",
    "BuildError",
    "CheckpointError",
    "DataError",
    "TrainingError",
    "WriteError",
    "ResourceError",
]


class GancrError(Exception):
    """Base class of gancr's user-facing errors (the command line prints them without a traceback)."""


class UnknownComponentError(GancrError, KeyError):
    """A component name that no loaded plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateComponentError(GancrError, ValueError):
    """Two registrations under one name (or alias) of one kind."""


class PluginError(GancrError):
    """A plugin failed to load or to register (fatal only with ``GANCR_STRICT_PLUGINS=1``)."""


class SpecError(GancrError, ValueError):
    """A spec that does not validate. ``errors`` holds ``(path, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]], source: str | None = None):
        self.errors = list(errors)
        self.source = source
        super().__init__(self._format())

    #: The most errors a message lists (the rest are counted).
    SHOWN = 20

    def _format(self) -> str:
        where = f" in {self.source}" if self.source else ""
        n = len(self.errors)
        lines = [f"{n} error{'s' if n != 1 else ''} in spec{where}:"]
        lines += [f"  {path or '<root>'}: {message}" for path, message in self.errors[: self.SHOWN]]
        if n > self.SHOWN:
            lines.append(f"  ... and {n - self.SHOWN} more")
        return "\n".join(lines)


class BuildError(GancrError, ValueError):
    """Parts of a spec that cannot be assembled (shapes, channels, missing pieces)."""


class CheckpointError(GancrError):
    """A checkpoint that cannot be loaded safely (missing, corrupt, or holding code)."""


class DataError(GancrError, ValueError):
    """A user-facing data problem: a missing folder, no images, an unreadable file."""


class TrainingError(GancrError):
    """Training cannot go on (e.g. losses stayed non-finite); earlier checkpoints are intact."""


class WriteError(GancrError):
    """An output that cannot be written (no space, read-only, a file where a folder should be).

    The message names the file and what was kept; ``path`` is the file.
    """

    def __init__(self, message: str, path: object = None):
        super().__init__(message)
        self.path = path


class ResourceError(GancrError):
    """Not enough memory for what was asked; the message names the setting to lower."""
