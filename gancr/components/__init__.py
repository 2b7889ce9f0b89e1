"""gancr's built-in components, registered by the ``builtin`` plugin (this module).

One module per kind. To add a component: write its class (or factory) and its parameter
model in the module of its kind, and add one ``registry.register(...)`` line to that
module's ``register`` function. Listings, the spec's schema, the docs' catalogue and the
contract tests pick it up from the registry.
"""

from __future__ import annotations

from gancr.hookspecs import hookimpl
from gancr.registry import Registry

__all__ = ["gancr_register_components"]


@hookimpl
def gancr_register_components(registry: Registry) -> None:
    from gancr.components import (
        balancers,
        content_losses,
        decoders,
        discriminators,
        encoders,
        necks,
        style_losses,
    )

    for module in (encoders, necks, decoders, discriminators, content_losses, style_losses, balancers):
        module.register(registry)
