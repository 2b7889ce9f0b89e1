"""gancr: GAN-based image style transfer that keeps the content of the input image.

Compose a generator, a content-retention net and a discriminator from registered
components in a typed spec, train them with the two-stage multi-task trainer, and stylise.

    >>> import gancr
    >>> "vgg19" in gancr.list_components("encoder")
    True

Importing gancr is cheap: torch, timm, kornia and torchvision load when first needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gancr.hookspecs import hookimpl

__version__ = "0.2.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "get_registry": "gancr.plugins",
    "registered_plugin": "gancr.plugins",
    "register_plugin": "gancr.plugins",
    "unregister_plugin": "gancr.plugins",
    "PLUGIN_API_VERSION": "gancr.plugins",
    "Registry": "gancr.registry",
    "ComponentParams": "gancr.registry",
    "KINDS": "gancr.registry",
    "Spec": "gancr.spec",
    "Slot": "gancr.spec",
    "load_spec": "gancr.spec",
    "apply_overrides": "gancr.spec",
    "default_spec": "gancr.spec",
    "build": "gancr.builder",
    "build_component": "gancr.builder",
    "build_losses": "gancr.builder",
    "Trio": "gancr.trio",
    "Generator": "gancr.trio",
    "ContentNet": "gancr.trio",
    "Trainer": "gancr.training",
    "stylize": "gancr.inference",
    "stylize_tensor": "gancr.inference",
    "load_generator": "gancr.inference",
    "GancrError": "gancr.errors",
    "SpecError": "gancr.errors",
    "BuildError": "gancr.errors",
    "UnknownComponentError": "gancr.errors",
    "DuplicateComponentError": "gancr.errors",
    "PluginError": "gancr.errors",
    "CheckpointError": "gancr.errors",
}

__all__ = ["__version__", "hookimpl", "list_components", "registry", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from gancr.builder import build, build_component, build_losses
    from gancr.errors import (
        BuildError,
        CheckpointError,
        DuplicateComponentError,
        GancrError,
        PluginError,
        SpecError,
        UnknownComponentError,
    )
    from gancr.inference import load_generator, stylize, stylize_tensor
    from gancr.plugins import get_registry, register_plugin, registered_plugin, unregister_plugin
    from gancr.registry import KINDS, ComponentParams, Registry
    from gancr.spec import Slot, Spec, apply_overrides, default_spec, load_spec
    from gancr.training import Trainer
    from gancr.trio import ContentNet, Generator, Trio


def list_components(kind: str | None = None, pattern: str = "*") -> list[str]:
    """Names of the registered components of ``kind`` (every kind when None), by wildcard.

    Kinds: encoder, neck, decoder, discriminator, content_loss, style_loss, balancer.
    """
    from gancr.plugins import get_registry

    return get_registry().list(kind, pattern)


def __getattr__(name: str) -> Any:
    if name == "registry":  # the module gancr.registry: register / get / list
        return importlib.import_module("gancr.registry")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gancr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
