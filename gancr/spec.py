"""The spec: pydantic models of a whole gancr run, with component slots bound to the registry.

A spec names every component as a mapping with ``name`` and that component's parameters.
The models below declare *where* components go with :class:`Slot` (``Slot["encoder"]``);
:func:`spec_model` binds each slot to a tagged union (on ``name``) of the parameter models
of every registered component of that kind — after plugins load — so a plugin's component
is validated exactly like a built-in. Components may nest slots in their own parameters
(a perceptual loss names an encoder; a wrapper discriminator names another discriminator):
validation then goes all the way down, with paths.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ForwardRef, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gancr.errors import SpecError
from gancr._registry import KINDS, Registry

__all__ = [
    "Slot",
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
    "load_spec",
    "apply_overrides",
    "validate_component",
    "default_spec",
    "spec_to_yaml",
]

LOSS_KINDS = ("content_loss", "style_loss")


# ----------------------------------------------------------------------------------------
# Slots
# ----------------------------------------------------------------------------------------


class _SlotMarker:
    def __init__(self, kind: str):
        if kind not in KINDS:
            raise ValueError(f"Slot[{kind!r}]: unknown kind; kinds are {', '.join(KINDS)}")
        self.kind = kind

    def __repr__(self) -> str:
        return f"Slot[{self.kind!r}]"


class ComponentSpec(BaseModel):
    """An unbound component spec: ``name`` plus its parameters (bound ones are stricter)."""

    model_config = ConfigDict(extra="allow")
    name: str


class Slot:
    """``Slot["encoder"]`` annotates a field that holds a component spec of that kind.

    Use it in a spec model or in a component's parameter model; give a default as a mapping
    with ``validate_default=True``, e.g.
    ``encoder: Slot["encoder"] = Field({"name": "vgg19"}, validate_default=True)``.
    """

    def __class_getitem__(cls, kind: str) -> Any:
        return Annotated[ComponentSpec, _SlotMarker(kind)]


def _slot_type_name(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.split("_")) + "Slot"


# ----------------------------------------------------------------------------------------
# The static shape of a spec
# ----------------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @model_validator(mode="wrap")
    @classmethod
    def _reject_unknown_fields(cls, data: Any, handler: Any) -> Any:
        return _check_unknown_fields(cls, data, handler)


def _allowed_fields(cls: type[BaseModel]) -> set[str]:
    allowed = set(cls.model_fields)
    allowed.update(f.alias for f in cls.model_fields.values() if f.alias)
    return allowed


def _check_unknown_fields(cls: type[BaseModel], data: Any, handler: Any) -> Any:
    """Unknown fields are errors naming the field, a close match and the allowed fields.

    They are reported together with every other error of the model (not instead of them).
    """
    if not (isinstance(data, Mapping) and cls.model_config.get("extra") == "forbid"):
        return handler(data)
    allowed = _allowed_fields(cls)
    unknown = [k for k in data if k not in allowed]
    if not unknown:
        return handler(data)
    errors: list[Any] = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
        errors.append(
            {
                "type": PydanticCustomError(
                    "unknown_field",
                    "unknown field{hint}; allowed fields: {allowed}",
                    {
                        "hint": f" (did you mean {close[0]!r}?)" if close else "",
                        "allowed": ", ".join(sorted(allowed)) or "(none)",
                    },
                ),
                "loc": (key,),
                "input": data[key],
            }
        )
    try:
        handler({k: v for k, v in data.items() if k in allowed})
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            errors.append(
                {
                    "type": PydanticCustomError(err["type"], err["msg"].replace("{", "{{").replace("}", "}}")),
                    "loc": err["loc"],
                    "input": err.get("input"),
                }
            )
    raise ValidationError.from_exception_data(cls.__name__, errors)


class StageSpec(_Section):
    """One training stage: ``separate`` (stage 1) or ``joint`` (stage 2)."""

    name: Literal["separate", "joint"] = Field(
        description="separate: the content net learns reconstruction and the generator style, "
        "apart; joint: both learn w_c * L_content + w_g * L_style together."
    )
    steps: int = Field(gt=0, description="generator steps in this stage")
    w_c: float = Field(1.0, ge=0, description="content weight (joint stages)")
    w_g: float = Field(1.0, ge=0, description="style weight")


class ScheduleSpec(_Section):
    """Learning-rate schedule over the whole run (all stages)."""

    name: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    decay_start: float = Field(
        0.5, ge=0, le=1, description="linear: fraction of the run after which the rate decays"
    )
    final_factor: float = Field(0.0, ge=0, le=1, description="rate at the end, as a fraction")


class LearningRates(_Section):
    generator: float = Field(2e-4, gt=0)
    content_net: float = Field(2e-4, gt=0)
    discriminator: float = Field(2e-4, gt=0)


class OptimizerSpec(_Section):
    """One optimiser per network (Adam or AdamW), each with its own learning rate."""

    name: Literal["adam", "adamw"] = "adam"
    lr: LearningRates = Field(default_factory=LearningRates)
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    implementation: Literal["auto", "fused", "foreach", "for-loop"] = Field(
        "auto", description="auto: fused on CUDA and the CPU, foreach elsewhere"
    )


class EmaSpec(_Section):
    """Exponential moving average of the generator's weights (used for inference)."""

    enabled: bool = True
    decay: float = Field(0.999, gt=0, lt=1)
    start_step: int = Field(0, ge=0)


class CheckpointSpec(_Section):
    every: int = Field(500, gt=0, description="steps between checkpoints")
    keep: int = Field(3, ge=1, description="how many recent checkpoints to keep")


class TrainingSpec(_Section):
    """How the trio is trained."""

    stages: list[StageSpec] = Field(
        default_factory=lambda: [
            StageSpec(name="separate", steps=200),
            StageSpec(name="joint", steps=800, w_c=1.0, w_g=1.0),
        ],
        min_length=1,
    )
    balancer: Slot["balancer"] = Field({"name": "fixed"}, validate_default=True)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    batch_size: int = Field(4, gt=0)
    image_size: int = Field(128, ge=16, description="training crop size (pixels)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 autocast on a CUDA device that supports it, else fp32"
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    seed: int = 0
    d_steps: int = Field(1, ge=1, description="discriminator steps per generator step")
    grad_clip: float | None = Field(None, gt=0, description="max gradient norm, per network")
    ema: EmaSpec = Field(default_factory=EmaSpec)
    image_pool: int = Field(0, ge=0, description="size of the pool of past fakes (0: off)")
    channels_last: bool | Literal["auto"] = Field(
        "auto", description="channels-last memory format; auto: on CUDA, off on the CPU"
    )
    compile: bool | Literal["default", "reduce-overhead", "max-autotune"] = Field(
        False,
        description="torch.compile the generator, content net, discriminator and losses "
        "(true = 'default'; 'reduce-overhead' adds CUDA graphs, best at small batches); "
        "compiling takes minutes, so it pays on long runs",
    )
    cudnn_benchmark: bool = Field(True, description="let cuDNN pick the fastest kernels (CUDA)")
    activation_checkpointing: bool = Field(
        False, description="recompute the generator's activations in the backward pass (less memory)"
    )
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    sample_every: int = Field(100, gt=0)
    log_every: int = Field(1, gt=0)
    max_nonfinite_steps: int = Field(
        10, ge=1, description="consecutive skipped (non-finite) steps before the run stops"
    )
    workers: int = Field(0, ge=0, description="data loader worker processes")
    tensorboard: bool = Field(True, description="write TensorBoard logs when tensorboard is installed")

    @property
    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)


class DataSpec(_Section):
    """Unpaired content and style images: folders, files, lists of them, or ``builtin:NAME``."""

    content: str | list[str] = "builtin:photos"
    style: str | list[str] = "builtin:cartoon"
    load_size: int | None = Field(
        None, gt=0, description="shorter side before cropping (default: 1.125 x image_size)"
    )
    crop_scale: tuple[float, float] = (0.5, 1.0)
    flip: bool = True
    style_hue: float = Field(
        0.0, ge=0, le=0.5,
        description="rotate style samples' hue by up to this fraction of the colour circle",
    )
    cache: bool = True
    augment_on: Literal["loader", "device"] = Field(
        "loader",
        description="where crops, flips and hue jitter happen: in the data loader (exactly "
        "reproducible per sample) or on the training device (kornia; the loader only copies "
        "uint8 squares, so it keeps up with a fast GPU)",
    )

    @field_validator("crop_scale")
    @classmethod
    def _crop_scale_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"must satisfy 0 < low <= high <= 1, got {v}")
        return v


class GeneratorSpec(_Section):
    """``G = decoder(neck(encoder(x)))``."""

    encoder: Slot["encoder"] = Field({"name": "conv"}, validate_default=True)
    neck: Slot["neck"] = Field({"name": "resblocks"}, validate_default=True)
    decoder: Slot["decoder"] = Field({"name": "upsample_conv"}, validate_default=True)


class ContentNetSpec(_Section):
    """The content-retention net: its own encoder and decoder, or the generator's encoder."""

    share_encoder: bool = Field(
        False, description="use the generator's encoder (hard parameter sharing)"
    )
    encoder: Slot["encoder"] | None = Field(
        None, description="required unless share_encoder is true"
    )
    decoder: Slot["decoder"] | None = Field(
        None, description="default: the same decoder spec as the generator's"
    )
    train: bool = Field(
        True,
        description="train it on reconstruction (false: a baseline without content-retention "
        "net, e.g. CycleGAN-like; then no content loss may use it)",
    )

    @model_validator(mode="after")
    def _encoder_xor_shared(self) -> ContentNetSpec:
        if self.share_encoder and self.encoder is not None:
            raise PydanticCustomError(
                "shared_encoder_conflict",
                "content_net.encoder must be omitted when share_encoder is true "
                "(the content net uses the generator's encoder)",
            )
        if not self.share_encoder and self.encoder is None:
            raise PydanticCustomError(
                "missing_encoder",
                "content_net needs an encoder, or share_encoder: true",
            )
        return self


class ModelSpec(_Section):
    generator: GeneratorSpec = Field(default_factory=GeneratorSpec)
    content_net: ContentNetSpec = Field(
        default_factory=lambda: ContentNetSpec(encoder={"name": "conv"})
    )
    discriminator: Slot["discriminator"] = Field({"name": "patchgan"}, validate_default=True)


class LossesSpec(_Section):
    """Content losses compare the input with its stylisation; style losses judge style."""

    content: list[Slot["content_loss"]] = Field(
        default_factory=lambda: [{"name": "l1"}], validate_default=True
    )
    style: list[Slot["style_loss"]] = Field(
        default_factory=lambda: [{"name": "lsgan"}], validate_default=True, min_length=1
    )


class Spec(_Section):
    """A whole gancr run: model, losses, training and data.

    ``Spec.model_json_schema()`` and ``Spec.model_validate(data)`` use the components of
    every loaded plugin (the class is bound to the registry on use).
    """

    requires: list[str] = Field(
        default_factory=list, description="plugin distributions this spec needs, e.g. 'gancr-cut>=0.1'"
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


# ----------------------------------------------------------------------------------------
# Binding slots to the registry
# ----------------------------------------------------------------------------------------


class _Binder:
    """Makes registry-bound copies of models whose fields hold :class:`Slot` annotations."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.bound: dict[type, type] = {}
        self.component_models: dict[tuple[str, str], type[BaseModel]] = {}
        self.namespace: dict[str, Any] = {}

    # -- annotations --

    def annotation(self, tp: Any) -> tuple[Any, bool]:
        """``tp`` with slots replaced by forward references to the bound unions."""
        origin = get_origin(tp)
        if origin is Annotated:
            base, *meta = get_args(tp)
            markers = [m for m in meta if isinstance(m, _SlotMarker)]
            if markers:
                return ForwardRef(_slot_type_name(markers[0].kind)), True
            new, changed = self.annotation(base)
            return (Annotated[(new, *meta)] if changed else tp), changed
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            new = self.model(tp)
            return new, new is not tp
        args = get_args(tp)
        if not args or origin is Literal:
            return tp, False
        new_args, changed = [], False
        for arg in args:
            new_arg, c = self.annotation(arg)
            new_args.append(new_arg)
            changed |= c
        if not changed:
            return tp, False
        if origin in (Union,) or type(tp).__name__ == "UnionType":
            return Union[tuple(new_args)], True
        if origin in (list, tuple, dict, set, frozenset):
            return origin[tuple(new_args) if len(new_args) > 1 else new_args[0]], True
        return tp, False

    def model(self, cls: type[BaseModel]) -> type[BaseModel]:
        """A subclass of ``cls`` whose slot fields are bound (``cls`` itself if it has none)."""
        if cls in self.bound:
            return self.bound[cls]
        self.bound[cls] = cls  # recursion guard
        fields: dict[str, Any] = {}
        for fname, info in cls.model_fields.items():
            new, changed = self.annotation(info.annotation)
            for meta in info.metadata:  # Slot annotations folded into metadata by pydantic
                if isinstance(meta, _SlotMarker):
                    new, changed = ForwardRef(_slot_type_name(meta.kind)), True
            if changed:
                field = copy.copy(info)
                field.metadata = [m for m in info.metadata if not isinstance(m, _SlotMarker)]
                _defaults_as_data(field)
                fields[fname] = (new, field)
        if not fields:
            return cls
        bound = create_model(cls.__name__, __base__=cls, __module__=cls.__module__, **fields)
        bound.__doc__ = cls.__doc__
        self.bound[cls] = bound
        return bound

    # -- components --

    def component_model(self, kind: str, entry: Any) -> type[BaseModel]:
        params = entry.params
        strict_config = ConfigDict(**{**params.model_config, "extra": "forbid"})
        strict = type(
            params.__name__,
            (params,),
            {
                "model_config": strict_config,
                "__module__": params.__module__,
                "_reject_unknown_fields": model_validator(mode="wrap")(
                    classmethod(_check_unknown_fields)
                ),
            },
        )
        base = self.model(strict)
        fields: dict[str, Any] = {
            "name": (Literal[tuple(entry.names)], Field(description=f"the {kind} {entry.name!r}")),
        }
        if kind in LOSS_KINDS and "weight" not in params.model_fields:
            fields["weight"] = (float, Field(1.0, ge=0, description="weight of this term"))
        title = f"{_slot_type_name(kind)[:-4]}_{entry.name}".replace("-", "_").replace(".", "_")
        model = create_model(title, __base__=base, __module__="gancr.spec.bound", **fields)
        model.__doc__ = entry.summary or None
        model.model_config["title"] = f"{kind} {entry.name}"
        model.__gancr_component__ = (kind, entry.name)  # type: ignore[attr-defined]
        return model

    def slot_type(self, kind: str) -> Any:
        entries = self.registry.entries(kind)
        members = [self.component_models[(kind, e.name)] for e in entries]
        aliases = {alias: e.name for e in entries for alias in e.aliases}
        if not members:
            plugins = ", ".join(self.registry.plugins) or "(none)"

            def none_registered(value: Any) -> Any:
                raise PydanticCustomError(
                    "no_component",
                    "no {kind} is registered (plugins loaded: {plugins})",
                    {"kind": kind, "plugins": plugins},
                )

            from pydantic import PlainValidator, WithJsonSchema

            return Annotated[Any, PlainValidator(none_registered), WithJsonSchema({"type": "object"})]

        def tag_of(value: Any) -> str | None:
            name = value.get("name") if isinstance(value, Mapping) else getattr(value, "name", None)
            if not isinstance(name, str):
                return None
            return aliases.get(name, name)

        tagged = tuple(Annotated[m, Tag(e.name)] for m, e in zip(members, entries))
        return Annotated[
            Union[tagged] if len(tagged) > 1 else Union[tagged + (Annotated[_NeverModel, Tag("\0")],)],
            Discriminator(
                tag_of,
                custom_error_type=f"unknown_component:{kind}",
                custom_error_message=f"unknown {kind}",
            ),
        ]


def _as_data(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, (list, tuple)):
        return type(value)(_as_data(v) for v in value)
    return value


def _defaults_as_data(field: Any) -> None:
    """Make a rebound field's default plain data, validated into the bound models."""
    from pydantic_core import PydanticUndefined

    factory = field.default_factory
    if factory is not None:
        field.default_factory = lambda: _as_data(factory())
    elif field.default is not PydanticUndefined:
        field.default = _as_data(field.default)
    field.validate_default = True


class _NeverModel(BaseModel):
    """A placeholder member so a one-member tagged union stays a union (never selected)."""

    model_config = ConfigDict(json_schema_extra={"not": {}})


class _Bound:
    """Everything bound to one registry: the spec model and the slot adapters."""

    def __init__(self, registry: Registry):
        binder = _Binder(registry)
        for kind in KINDS:
            for entry in registry.entries(kind):
                binder.component_models[(kind, entry.name)] = binder.component_model(kind, entry)
        for kind in KINDS:
            binder.namespace[_slot_type_name(kind)] = binder.slot_type(kind)
        spec = binder.model(Spec)
        models = [spec, *binder.bound.values(), *binder.component_models.values()]
        for model in models:
            model.model_rebuild(force=True, _types_namespace=binder.namespace)
        self.registry = registry
        self.spec = spec
        self.component_models = binder.component_models
        self.adapters = {
            kind: TypeAdapter(binder.namespace[_slot_type_name(kind)]) for kind in KINDS
        }


_bound_lock = threading.RLock()
_bound_cache: tuple[Registry, int, _Bound] | None = None


def _bound(registry: Registry | None = None) -> _Bound:
    global _bound_cache
    from gancr.plugins import get_registry

    registry = registry or get_registry()
    with _bound_lock:
        if _bound_cache is None or _bound_cache[0] is not registry or _bound_cache[1] != registry.generation:
            _bound_cache = (registry, registry.generation, _Bound(registry))
        return _bound_cache[2]


def spec_model(registry: Registry | None = None) -> type[Spec]:
    """The :class:`Spec` class bound to the registry (every loaded plugin's components)."""
    return _bound(registry).spec  # type: ignore[return-value]


def component_model(kind: str, name: str, registry: Registry | None = None) -> type[BaseModel]:
    """The bound parameter model of one component (with ``name`` and, for losses, ``weight``)."""
    bound = _bound(registry)
    entry = bound.registry.get(kind, name)
    return bound.component_models[(kind, entry.name)]


# ----------------------------------------------------------------------------------------
# Validation and error reporting
# ----------------------------------------------------------------------------------------


def _is_tag(part: Any, cur: Any, last: bool, registry: Registry) -> bool:
    """Whether ``part`` of an error's location is a union tag (a component's name).

    Pydantic puts the tag first in the location of an error inside a component, so a part
    that is the component's (canonical) name is the tag even when the component also has a
    parameter of that name (the caller does not take two tags in a row).
    """
    if not (isinstance(cur, Mapping) and isinstance(part, str)):
        return False
    name = cur.get("name")
    if not isinstance(name, str):
        return False
    if part == name or any(
        (entry := registry.lookup(kind, name)) is not None and entry.name == part for kind in KINDS
    ):
        return True
    return part not in cur and not last


def _clean_path(loc: tuple[Any, ...], data: Any, registry: Registry) -> tuple[list[Any], Any]:
    """Drop the union tags pydantic puts in ``loc``; returns (path, the value at the parent)."""
    path: list[Any] = []
    cur = data
    after_tag = False
    for i, part in enumerate(loc):
        if not after_tag and _is_tag(part, cur, i == len(loc) - 1, registry):
            after_tag = True  # the next part is a field of this component, never a tag
            continue
        after_tag = False
        path.append(part)
        if isinstance(cur, Mapping):
            cur = cur.get(part)
        elif isinstance(cur, (list, tuple)) and isinstance(part, int) and -len(cur) <= part < len(cur):
            cur = cur[part]
        else:
            cur = None
    return path, cur


def _messages(exc: ValidationError, data: Any, registry: Registry, prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        path, value = _clean_path(tuple(err["loc"]), data, registry)
        etype = err["type"]
        msg = err["msg"]
        if etype.startswith("unknown_component:"):
            kind = etype.partition(":")[2]
            given = err.get("input")
            name = given.get("name") if isinstance(given, Mapping) else getattr(given, "name", None)
            if name is None:
                known = ", ".join(registry.list(kind)) or "(none)"
                article = "an" if kind[0] in "aeiou" else "a"
                msg = f"{article} {kind} needs a 'name'; one of: {known}"
                if not isinstance(given, (Mapping, BaseModel)):
                    msg = f"expected {article} {kind} spec (a mapping with 'name'), got {given!r}; one of: {known}"
            else:
                msg = registry.unknown_message(kind, name)
        elif etype == "missing":
            msg = "required field is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        text = ".".join(str(p) for p in ([prefix] if prefix else []) + path)
        if (text, msg) not in seen:
            seen.add((text, msg))
            out.append((text, msg))
    return out


def validate_component(kind: str, spec: Any, *, registry: Registry | None = None, path: str | None = None) -> Any:
    """Validate one component spec (``{"name": ..., **params}``, a bound model, or a name).

    Raises:
        SpecError: errors with paths starting at ``path`` (default: the kind).
    """
    bound = _bound(registry)
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, BaseModel):
        if getattr(type(spec), "__gancr_component__", (None,))[0] == kind and type(spec) in bound.component_models.values():
            return spec
        spec = spec.model_dump()
    try:
        return bound.adapters[kind].validate_python(spec)
    except ValidationError as exc:
        raise SpecError(_messages(exc, spec, bound.registry, path if path is not None else kind)) from None


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([("", f"no such spec file: {path}")], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([("", f"cannot read {path}: {exc}")], str(path)) from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SpecError([("", f"not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}")], str(path)) from None
    if data is None:
        data = {}
    return data


def load_spec(
    path_or_mapping: str | os.PathLike[str] | Mapping[str, Any] | Spec,
    overrides: Iterable[str] = (),
) -> Spec:
    """Read and validate a spec from a YAML or JSON file, or from a mapping.

    Args:
        path_or_mapping: a ``.yaml``/``.yml``/``.json`` path, a dict, or a ``Spec``.
        overrides: ``path.to.field=value`` strings applied before validation (values are
            parsed as YAML: ``training.stages.0.steps=5``, ``model.neck={name: identity}``).

    Raises:
        SpecError: every error, by path (``model.generator.encoder.layer: ...``).
    """
    source: str | None = None
    if isinstance(path_or_mapping, BaseModel):
        data: Any = path_or_mapping.model_dump(mode="json")
    elif isinstance(path_or_mapping, Mapping):
        data = copy.deepcopy(dict(path_or_mapping))
    elif isinstance(path_or_mapping, (str, os.PathLike)):
        source = os.fspath(path_or_mapping)
        data = _read(Path(source))
    else:
        raise SpecError([("", f"expected a path or a mapping, got {type(path_or_mapping).__name__}")])
    if not isinstance(data, Mapping):
        raise SpecError([("", f"a spec must be a mapping at the top level, got {type(data).__name__}")], source)
    bound = _bound()
    overrides = list(overrides)
    if overrides:
        try:  # overrides apply to the resolved spec, so they can reach into defaults
            data = bound.spec.model_validate(data).model_dump(mode="json")
        except ValidationError:
            pass  # report the errors after the overrides, which may fix some
        data = apply_overrides(data, overrides)
    try:
        spec = bound.spec.model_validate(data)
    except ValidationError as exc:
        errors = _messages(exc, data, bound.registry)
        requires = data.get("requires")
        if isinstance(requires, list) and all(isinstance(r, str) for r in requires):
            # a component of a missing plugin is "unknown": say first which plugin is missing
            from gancr.requirements import missing_requirements

            errors = missing_requirements(requires) + errors
        raise SpecError(errors, source) from None
    spec.__dict__.setdefault("_source", source)
    return spec  # type: ignore[return-value]


def default_spec() -> Spec:
    """The spec with every default: a small conv generator, PatchGAN, L1 + LSGAN."""
    return load_spec({})


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise SpecError([(item, "an override must look like path.to.field=value")])
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key:
        raise SpecError([(item, "an override needs a path before '='")])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise SpecError([(key, f"cannot parse the value {raw!r}: {exc}")]) from None
    return key.split("."), value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``path.to.field=value`` set (list indices allowed).

    Example:
        >>> apply_overrides({"training": {"stages": [{"name": "joint", "steps": 9}]}},
        ...                 ["training.stages.0.steps=5"])
        {'training': {'stages': [{'name': 'joint', 'steps': 5}]}}
    """
    result = copy.deepcopy(dict(data))
    for item in overrides:
        parts, value = _parse_override(item)
        cur: Any = result
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(cur, list):
                try:
                    index = int(part)
                except ValueError:
                    raise SpecError([(where, f"{'.'.join(parts[:i]) or '<root>'} is a list: use an index, got {part!r}")]) from None
                if not -len(cur) <= index < len(cur):
                    raise SpecError([(where, f"index {index} is out of range (the list has {len(cur)} items)")])
                if last:
                    cur[index] = value
                else:
                    cur = cur[index]
            elif isinstance(cur, dict):
                if last:
                    cur[part] = value
                else:
                    if cur.get(part) is None:
                        cur[part] = {}
                    cur = cur[part]
            else:
                raise SpecError([(where, f"cannot set a field inside {type(cur).__name__} value {cur!r}")])
    return result


def spec_to_yaml(spec: BaseModel) -> str:
    """YAML text of a (resolved) spec, in field order."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, default_flow_style=None)
