"""Generate the field tables of docs/spec.md from the spec's pydantic models.

The tables sit in docs/spec.md between the two marker lines below; tests/test_docs.py fails
when they differ from what this script generates, so they cannot drift from gancr/spec.py.

    python docs/gen_spec_fields.py            # print the tables
    python docs/gen_spec_fields.py --write    # rewrite them in docs/spec.md

Types, defaults, constraints and descriptions come from the models (``Field(description=...)``).
:data:`MEANINGS` gives the meaning of the fields whose model has no description yet; a
description in gancr/spec.py wins over it.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

BEGIN = "<!-- BEGIN GENERATED FIELDS: python docs/gen_spec_fields.py --write -->"
END = "<!-- END GENERATED FIELDS -->"
SPEC_MD = Path(__file__).resolve().parent / "spec.md"

#: Meanings of fields that have no ``description`` in gancr/spec.py (by path).
MEANINGS: dict[str, str] = {
    "model": "the trio: generator, content-retention net, discriminator",
    "losses": "content and style loss terms",
    "training": "stages, balancer, optimisation and run files",
    "data": "unpaired content and style images",
    "description": "free text, kept in the run's spec.yaml",
    "model.generator": "the generator's parts",
    "model.content_net": "the content-retention net",
    "model.discriminator": "the discriminator; see the catalogue",
    "model.generator.encoder": "images to a list of feature maps (states its channels and reductions)",
    "model.generator.neck": "the style generation sub-network at the bottleneck",
    "model.generator.decoder": "features back to an image, sized from the encoder's features",
    "losses.content": "terms comparing the input with its stylisation (and, if pixel-level, "
    "with the content net's reconstruction); each item has a `weight`",
    "losses.style": "adversarial and other style terms; each item has a `weight`",
    "training.stages": "the stages, run in order",
    "training.stages.<i>.name": "separate: the content net learns reconstruction and the "
    "generator style, apart; joint: both learn w_c * L_content + w_g * L_style together",
    "training.balancer": "how a joint stage weighs content against style",
    "training.optimizer": "one optimiser per network",
    "training.optimizer.name": "Adam or AdamW",
    "training.optimizer.lr": "learning rate of each network's optimiser",
    "training.optimizer.lr.generator": "also used for trainable loss and balancer parameters",
    "training.optimizer.lr.content_net": "learning rate of the content net",
    "training.optimizer.lr.discriminator": "learning rate of the discriminator",
    "training.optimizer.betas": "Adam's (beta1, beta2)",
    "training.optimizer.weight_decay": "L2 penalty (Adam) or decoupled weight decay (AdamW)",
    "training.schedule": "learning-rate schedule over the whole run",
    "training.schedule.name": "constant, linear decay, or cosine",
    "training.schedule.warmup_steps": "linear warm-up from lr/warmup_steps to lr",
    "training.batch_size": "images per step, in each domain (content and style)",
    "training.seed": "seeds python, numpy and torch, and the data",
    "training.ema": "moving average of the generator's weights",
    "training.ema.enabled": "keep an EMA generator (used for samples and inference)",
    "training.ema.decay": "ema = decay * ema + (1 - decay) * weights, after every step",
    "training.ema.start_step": "copy the weights (no averaging) before this step",
    "training.checkpoint": "when checkpoints are written and how many are kept",
    "training.channels_last": "channels-last memory format for the trio and batches",
    "training.compile": "torch.compile the generator and the discriminator",
    "training.sample_every": "steps between sample grids in samples/",
    "training.log_every": "steps between lines of metrics.jsonl (and TensorBoard); only these read the losses "
    "back from the device",
    "data.content": "content images: a folder, an image file, builtin:NAME, or a list of them",
    "data.style": "style images: a folder, an image file, builtin:NAME, or a list of them",
    "data.crop_scale": "area range of the random resized crop, as a fraction of the image",
    "data.flip": "random horizontal flips",
    "data.cache": "keep the decoded, resized images in memory",
}

#: Where each kind of component slot is documented.
CATALOGUE = "components.md"


def _spec_classes() -> Any:
    from gancr import spec

    return spec


def _slot_kind(field: FieldInfo) -> str | None:
    from gancr.spec import SlotMarker

    for m in field.metadata:
        if isinstance(m, SlotMarker):
            return m.kind
    return None


def _type_name(annotation: Any, field: FieldInfo | None = None) -> str:
    """Readable type, with component slots linked to the catalogue."""
    from gancr.cli.catalog import type_name
    from gancr.spec import SlotMarker

    kind = _slot_kind(field) if field is not None else None
    if kind is not None:
        return f"[{kind} spec]({CATALOGUE}#{kind})"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        markers = [m for m in args[1:] if isinstance(m, SlotMarker)]
        if markers:
            k = markers[0].kind
            return f"[{k} spec]({CATALOGUE}#{k})"
        return _type_name(args[0])
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return " \\| ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list[{_type_name(args[0])}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return type_name(annotation).replace("|", "\\|")


def _constraints(field: FieldInfo) -> str:
    out = []
    for m in field.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            v = getattr(m, attr, None)
            if v is not None:
                out.append(f"{sym} {v}")
        n = getattr(m, "min_length", None)
        if n is not None:
            out.append(f"at least {n} item{'s' if n != 1 else ''}")
    return ", ".join(out)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _yaml(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return text.removesuffix("\n...").strip()


def _default(field: FieldInfo, section: bool) -> str:
    if field.default_factory is not None:
        if section:
            return "(see below)"
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    return f"`{_yaml(value)}`".replace("|", "\\|")


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The nested section model of a field (itself, or the items of a list), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        from gancr.spec import ComponentSpec

        return None if annotation is ComponentSpec else annotation
    if typing.get_origin(annotation) is list:
        return _section_model(typing.get_args(annotation)[0])
    return None


def sections() -> Iterator[tuple[str, type[BaseModel], list[tuple[str, str, FieldInfo]]]]:
    """(section path, model, [(field path, field name, field)]) for every section of a spec, depth first."""
    from gancr.spec import Spec

    def walk(path: str, model: type[BaseModel]) -> Iterator[Any]:
        rows = []
        nested = []
        for name, field in model.model_fields.items():
            fpath = f"{path}.{name}" if path else name
            rows.append((fpath, name, field))
            sub = _section_model(field.annotation)
            if sub is not None:
                is_list = typing.get_origin(field.annotation) is list
                nested.append((f"{fpath}.<i>" if is_list else fpath, sub))
        yield path, model, rows
        for p, sub in nested:
            yield from walk(p, sub)

    yield from walk("", Spec)


def field_paths() -> list[str]:
    """Every field of the spec models, by path (``training.stages.<i>.steps``)."""
    return [fpath for _, _, rows in sections() for fpath, _, _ in rows]


def _anchor_title(path: str) -> str:
    """A section's heading; a list's items are "`training.stages` items", whose anchor is the
    same on GitHub and on the mkdocs site (a `<i>` in a heading is dropped by one, kept by the other)."""
    if path.endswith(".<i>"):
        return f"`{path[:-4]}` items"
    return f"`{path}`" if path else "The top level"


def markdown() -> str:
    out = [BEGIN, ""]
    for path, model, rows in sections():
        out += [f"### {_anchor_title(path)}", ""]
        doc = (model.__doc__ or "").strip().splitlines()
        if doc and path:
            out += [doc[0].replace("``", "`"), ""]
        out += ["| field | type | default | constraints | meaning |", "|---|---|---|---|---|"]
        for fpath, name, field in rows:
            sub = _section_model(field.annotation)
            tname = _type_name(field.annotation, field)
            if sub is not None:
                target = f"{fpath}.<i>" if typing.get_origin(field.annotation) is list else fpath
                link = "#" + _slug(_anchor_title(target))
                tname = f"list[[section]({link})]" if target.endswith(".<i>") else f"[section]({link})"
            meaning = field.description or MEANINGS.get(fpath, "")
            meaning = meaning.replace("|", "\\|").replace("\n", " ")
            default = _default(field, sub is not None and typing.get_origin(field.annotation) is not list)
            out.append(f"| `{fpath}` | {tname} | {default} | {_constraints(field)} | {meaning} |")
        out.append("")
    out.append(END)
    return "\n".join(out) + "\n"


def _slug(title: str) -> str:
    """GitHub's anchor for a heading."""
    import re

    text = title.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def replace_block(text: str, block: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + block.rstrip("\n") + text[end:]


def current_block(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end] + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite the tables in {SPEC_MD}")
    args = parser.parse_args(argv)
    block = markdown()
    if args.write:
        SPEC_MD.write_text(replace_block(SPEC_MD.read_text(encoding="utf-8"), block), encoding="utf-8")
        print(f"wrote the spec field tables into {SPEC_MD}")
    else:
        sys.stdout.write(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
