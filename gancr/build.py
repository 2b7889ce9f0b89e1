"""Deprecated: ``from gancr.build import ...`` (gancr 0.1). Removed in the next release.

``gancr.build`` is the function :func:`gancr.builder.build`. Import the others from the
package (``from gancr import build_component, build_losses, Trio``), or from
:mod:`gancr.builder` and :mod:`gancr.trio`.

A module cannot also be a function, so this one, when imported, warns and puts the function
``build`` in its place in ``sys.modules``, with the names it used to define as attributes:
``from gancr.build import build_component`` keeps working, and ``gancr.build(spec)`` stays
the function.
"""

from __future__ import annotations

import sys
import warnings

from gancr.builder import build, build_component, build_losses
from gancr.trio import ContentNet, Generator, Losses, Trio

warnings.warn(
    "gancr.build is the function build(spec); import build_component, build_losses, Trio, Generator, "
    "ContentNet and Losses from gancr (or gancr.builder and gancr.trio): the module gancr.build "
    "goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)

_EXPORTS = {
    "build": build,
    "build_component": build_component,
    "build_losses": build_losses,
    "Trio": Trio,
    "Generator": Generator,
    "ContentNet": ContentNet,
    "Losses": Losses,
}
for _name, _value in _EXPORTS.items():
    setattr(build, _name, _value)

sys.modules[__name__] = build  # type: ignore[assignment]
