"""Deprecated: ``gancr.speed`` is :mod:`gancr.bench.speed` (gancr 0.1). Removed in the next release."""

from gancr._deprecated import warn_moved
from gancr.bench.speed import *  # noqa: F403
from gancr.bench.speed import __all__  # noqa: F401

warn_moved("gancr.speed", "gancr.bench.speed")

if __name__ == "__main__":  # pragma: no cover - ``python -m gancr.speed``, as before
    import sys

    sys.exit(main())  # noqa: F405
