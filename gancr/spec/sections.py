"""The static shape of a spec: its sections (model, losses, training, data) as pydantic models.

Component fields are :class:`~gancr.spec.slots.Slot` annotations here; the root model is
:class:`gancr.spec.root.Spec`, bound to the registry before it validates anything.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from gancr.spec.slots import Slot

__all__ = [
    "Section",
    "StageSpec",
    "ScheduleSpec",
    "LearningRates",
    "OptimizerSpec",
    "EmaSpec",
    "CheckpointSpec",
    "TrainingSpec",
    "DataSpec",
    "GeneratorSpec",
    "ContentNetSpec",
    "ModelSpec",
    "LossesSpec",
    "allowed_fields",
    "check_unknown_fields",
]


class Section(BaseModel):
    """A part of a spec: unknown fields are errors that name a close match."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @model_validator(mode="wrap")
    @classmethod
    def _reject_unknown_fields(cls, data: Any, handler: Any) -> Any:
        return check_unknown_fields(cls, data, handler)


def allowed_fields(cls: type[BaseModel]) -> set[str]:
    allowed = set(cls.model_fields)
    allowed.update(f.alias for f in cls.model_fields.values() if f.alias)
    return allowed


def check_unknown_fields(cls: type[BaseModel], data: Any, handler: Any) -> Any:
    """Unknown fields are errors naming the field, a close match and the allowed fields.

    They are reported together with every other error of the model (not instead of them).
    """
    if not (isinstance(data, Mapping) and cls.model_config.get("extra") == "forbid"):
        return handler(data)
    allowed = allowed_fields(cls)
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


class StageSpec(Section):
    """One training stage: ``separate`` (stage 1) or ``joint`` (stage 2)."""

    name: Literal["separate", "joint"] = Field(
        description="separate: the content net learns reconstruction and the generator style, "
        "apart; joint: both learn w_c * L_content + w_g * L_style together."
    )
    steps: int = Field(gt=0, description="generator steps in this stage")
    w_c: float = Field(1.0, ge=0, description="content weight (joint stages)")
    w_g: float = Field(1.0, ge=0, description="style weight")


class ScheduleSpec(Section):
    """Learning-rate schedule over the whole run (all stages)."""

    name: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    decay_start: float = Field(
        0.5, ge=0, le=1, description="linear: fraction of the run after which the rate decays"
    )
    final_factor: float = Field(0.0, ge=0, le=1, description="rate at the end, as a fraction")


class LearningRates(Section):
    generator: float = Field(2e-4, gt=0)
    content_net: float = Field(2e-4, gt=0)
    discriminator: float = Field(2e-4, gt=0)


class OptimizerSpec(Section):
    """One optimiser per network (Adam or AdamW), each with its own learning rate."""

    name: Literal["adam", "adamw"] = "adam"
    lr: LearningRates = Field(default_factory=LearningRates)
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    implementation: Literal["auto", "fused", "foreach", "for-loop"] = Field(
        "auto", description="auto: fused on CUDA and the CPU, foreach elsewhere"
    )


class EmaSpec(Section):
    """Exponential moving average of the generator's weights (used for inference)."""

    enabled: bool = True
    decay: float = Field(0.999, gt=0, lt=1, description="the average's decay once it has seen enough "
                         "steps; the n-th update uses min(decay, (1 + n) / (10 + n)), so a short run's "
                         "average follows its weights instead of their random start")
    start_step: int = Field(0, ge=0, description="steps before which the average copies the weights")


class CheckpointSpec(Section):
    every: int = Field(500, gt=0, description="steps between checkpoints")
    keep: int = Field(3, ge=1, description="how many recent checkpoints to keep")


class TrainingSpec(Section):
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
    batch_size: int = Field(4, gt=0, le=4096)
    image_size: int = Field(128, ge=16, le=4096, description="training crop size (pixels)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 autocast on a CUDA device that supports it, else fp32"
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    seed: int = Field(0, ge=0, le=2**63 - 1)
    d_steps: int = Field(1, ge=1, description="discriminator steps per generator step")
    grad_clip: float | None = Field(None, gt=0, description="max gradient norm, per network")
    ema: EmaSpec = Field(default_factory=EmaSpec)
    image_pool: int = Field(0, ge=0, le=10000, description="size of the pool of past fakes (0: off)")
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
    log_every: int = Field(10, gt=0)
    max_nonfinite_steps: int = Field(
        10, ge=1, description="consecutive skipped (non-finite) steps before the run stops"
    )
    workers: int = Field(0, ge=0, le=256, description="data loader worker processes")
    tensorboard: bool = Field(True, description="write TensorBoard logs when tensorboard is installed")

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d+)?", v):
            raise ValueError(f"unknown device {v!r}; use auto, cpu, cuda, cuda:N or mps")
        return v

    @property
    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)


class DataSpec(Section):
    """Unpaired content and style images: folders, files, lists of them, or ``builtin:NAME``."""

    content: str | list[str] = "builtin:photos"
    style: str | list[str] = "builtin:cartoon"
    load_size: int | None = Field(
        None, gt=0, le=16384, description="shorter side before cropping (default: 1.125 x image_size)"
    )
    load_side: Literal["shorter", "longer"] = Field(
        "shorter", description="which side load_size sets: the shorter (the default) or the longer, so that "
        "every image, whatever its shape, is at the scale it is scored at (gancr bench painting: 256 px)",
    )
    crop_scale: tuple[float, float] = (0.5, 1.0)
    flip: bool = True
    style_hue: float = Field(
        0.0, ge=0, le=0.5,
        description="rotate style samples' hue by up to this fraction of the colour circle",
    )
    style_border: float = Field(
        0.0, ge=0, lt=0.5,
        description="cut this fraction of each side off the style images before crops are drawn: a "
        "painting's frame, border strip or signature margin never reaches the discriminator, which "
        "would teach the generator to paint it along every output's edges (style losses with "
        "target: images still see the whole painting)",
    )
    cache: bool = True
    augment_on: Literal["loader", "device"] = Field(
        "loader",
        description="where crops, flips and hue jitter happen: in the data loader (exactly "
        "reproducible per sample) or on the training device (the same crop, flip and hue rotation, "
        "drawn from torch's generator; the loader only copies uint8 squares, so it keeps up with a fast GPU)",
    )

    @field_validator("crop_scale")
    @classmethod
    def _crop_scale_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"must satisfy 0 < low <= high <= 1, got {v}")
        return v


class GeneratorSpec(Section):
    """``G = decoder(neck(encoder(x)))``."""

    encoder: Slot["encoder"] = Field({"name": "conv"}, validate_default=True)
    neck: Slot["neck"] = Field({"name": "resblocks"}, validate_default=True)
    decoder: Slot["decoder"] = Field({"name": "upsample_conv"}, validate_default=True)
    residual: bool = Field(
        False,
        description="G(x) = clamp(x + 2d - 1), the decoder's image d read as a change of the "
        "input; its last layer starts at zero, so training starts from G(x) = x",
    )
    margin: int = Field(
        0, ge=0, le=256,
        description="reflect-pad the input by this many pixels on every side and crop them from "
        "the output: the image's borders are drawn with context around them (no frame)",
    )


class ContentNetSpec(Section):
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


class ModelSpec(Section):
    generator: GeneratorSpec = Field(default_factory=GeneratorSpec)
    content_net: ContentNetSpec = Field(
        default_factory=lambda: ContentNetSpec(encoder={"name": "conv"})
    )
    discriminator: Slot["discriminator"] = Field({"name": "patchgan"}, validate_default=True)


class LossesSpec(Section):
    """Content losses compare the input with its stylisation; style losses judge style."""

    content: list[Slot["content_loss"]] = Field(
        default_factory=lambda: [{"name": "l1"}], validate_default=True
    )
    style: list[Slot["style_loss"]] = Field(
        default_factory=lambda: [{"name": "lsgan"}], validate_default=True, min_length=1
    )
