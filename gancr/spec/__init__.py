"""The spec: pydantic models of a whole gancr run, with component slots bound to the registry.

A spec names every component as a mapping with ``name`` and that component's parameters.
The models declare *where* components go with :class:`Slot` (``Slot["encoder"]``);
:func:`spec_model` binds each slot to a tagged union (on ``name``) of the parameter models
of every registered component of that kind — after plugins load — so a plugin's component
is validated exactly like a built-in. Components may nest slots in their own parameters
(a perceptual loss names an encoder; a wrapper discriminator names another discriminator):
validation then goes all the way down, with paths.

- :mod:`gancr.spec.slots`: ``Slot[kind]`` and the unbound :class:`ComponentSpec`;
- :mod:`gancr.spec.sections`: the sections (model, losses, training, data);
- :mod:`gancr.spec.binding`: slots bound to the registry;
- :mod:`gancr.spec.root`: the root :class:`Spec`, :func:`validate_component`;
- :mod:`gancr.spec.messages`: validation errors by path;
- :mod:`gancr.spec.loading`: :func:`load_spec`, :func:`apply_overrides`, :func:`default_spec`.
"""

from gancr.spec.loading import apply_overrides, default_spec, load_spec
from gancr.spec.root import Spec, component_model, spec_model, spec_to_yaml, validate_component
from gancr.spec.sections import (
    ContentNetSpec,
    DataSpec,
    GeneratorSpec,
    LossesSpec,
    ModelSpec,
    OptimizerSpec,
    ScheduleSpec,
    StageSpec,
    TrainingSpec,
)
from gancr.spec.slots import ComponentSpec, Slot, SlotMarker

__all__ = [
    "Slot",
    "SlotMarker",
    "ComponentSpec",
    "Spec",
    "StageSpec",
    "OptimizerSpec",
    "ScheduleSpec",
    "TrainingSpec",
    "DataSpec",
    "GeneratorSpec",
    "ContentNetSpec",
    "ModelSpec",
    "LossesSpec",
    "spec_model",
    "component_model",
    "load_spec",
    "apply_overrides",
    "validate_component",
    "default_spec",
    "spec_to_yaml",
]
