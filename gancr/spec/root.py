"""The root model :class:`Spec` (a whole run), and validating against the registry-bound models."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from gancr._registry import Registry
from gancr.errors import SpecError
from gancr.spec.binding import bind
from gancr.spec.messages import error_messages
from gancr.spec.sections import DataSpec, LossesSpec, ModelSpec, Section, TrainingSpec

__all__ = ["Spec", "spec_model", "component_model", "validate_component", "spec_to_yaml", "MAX_REQUIRES"]

#: The most plugin requirements a spec may list.
MAX_REQUIRES = 100


class Spec(Section):
    """A whole gancr run: model, losses, training and data.

    ``Spec.model_json_schema()`` and ``Spec.model_validate(data)`` use the components of
    every loaded plugin (the class is bound to the registry on use).
    """

    requires: list[str] = Field(
        default_factory=list, max_length=MAX_REQUIRES,
        description="plugin distributions this spec needs, e.g. 'gancr-cut>=0.1'",
    )
    description: str | None = None
    model: ModelSpec = Field(default_factory=ModelSpec)
    losses: LossesSpec = Field(default_factory=LossesSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    data: DataSpec = Field(default_factory=DataSpec)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        if cls is Spec:
            return spec_model().model_json_schema(*args, **kwargs)
        return super().model_json_schema(*args, **kwargs)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Spec:  # type: ignore[override]
        if cls is Spec:
            return spec_model().model_validate(obj, *args, **kwargs)
        return super().model_validate(obj, *args, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec (every default filled in) as plain data."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return spec_to_yaml(self)

    def summary(self) -> str:
        """One line: the trio's parts, the losses and the stages (``gancr validate`` prints it)."""
        m = self.model
        gen = f"{m.generator.encoder.name}>{m.generator.neck.name}>{m.generator.decoder.name}"
        cn = m.content_net
        decoder = (cn.decoder or m.generator.decoder).name
        content_net = f"shared encoder>{decoder}" if cn.share_encoder else f"{cn.encoder.name}>{decoder}"
        content = "+".join(item.name for item in self.losses.content) or "none"
        style = "+".join(item.name for item in self.losses.style)
        stages = ", ".join(f"{s.name} {s.steps}" for s in self.training.stages)
        return (
            f"generator {gen}; content net {content_net}; discriminator {m.discriminator.name}; "
            f"content {content}; style {style}; balancer {self.training.balancer.name}; stages {stages}"
        )


def spec_model(registry: Registry | None = None) -> type[Spec]:
    """The :class:`Spec` class bound to the registry (every loaded plugin's components)."""
    return bind(Spec, registry).spec  # type: ignore[return-value]


def component_model(kind: str, name: str, registry: Registry | None = None) -> type[BaseModel]:
    """The bound parameter model of one component (with ``name`` and, for losses, ``weight``)."""
    bound = bind(Spec, registry)
    entry = bound.registry.get(kind, name)
    return bound.component_models[(kind, entry.name)]


def validate_component(kind: str, spec: Any, *, registry: Registry | None = None, path: str | None = None) -> Any:
    """Validate one component spec (``{"name": ..., **params}``, a bound model, or a name).

    Raises:
        SpecError: errors with paths starting at ``path`` (default: the kind).
    """
    bound = bind(Spec, registry)
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, BaseModel):
        if getattr(type(spec), "__gancr_component__", (None,))[0] == kind and type(spec) in bound.component_models.values():
            return spec
        spec = spec.model_dump()
    try:
        return bound.adapters[kind].validate_python(spec)
    except ValidationError as exc:
        raise SpecError(error_messages(exc, spec, bound.registry, path if path is not None else kind)) from None


def spec_to_yaml(spec: BaseModel) -> str:
    """YAML text of a (resolved) spec, in field order."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, default_flow_style=None)
