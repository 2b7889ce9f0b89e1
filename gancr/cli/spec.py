"""``gancr validate`` and ``gancr schema``, and the ``--set`` option of the commands that read a spec."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_set_argument", "add_validate", "cmd_validate", "add_schema", "cmd_schema"]


def add_set_argument(p: argparse.ArgumentParser) -> None:
    """``--set PATH=VALUE`` (repeatable): spec overrides, as ``args.overrides``."""
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
        help="override a spec field, e.g. training.stages.0.steps=5 (repeatable)",
    )


def add_validate(sub: Any) -> None:
    p = sub.add_parser("validate", help="check a spec: exit 0 and a summary, or exit 2 and the errors by path")
    p.add_argument("spec")
    add_set_argument(p)
    p.add_argument("--no-build", action="store_true", help="check the spec only, do not build the trio")


def cmd_validate(args: argparse.Namespace) -> int:
    from gancr.spec import load_spec

    spec = load_spec(args.spec, args.overrides)
    from gancr.requirements import check_requirements

    check_requirements(spec)
    parameters = ""
    if not args.no_build:
        from gancr.builder import build

        trio = build(spec)
        n = sum(p.numel() for p in trio.generator.parameters())
        parameters = f"; generator {n / 1e6:.2f}M parameters"
    print(f"{args.spec}: valid. {spec.summary()}{parameters}")
    return 0


def add_schema(sub: Any) -> None:
    p = sub.add_parser("schema", help="the JSON Schema of a spec (plugin components included)")
    p.add_argument("--out", help="write to this file instead of standard output")


def cmd_schema(args: argparse.Namespace) -> int:
    from gancr.spec import Spec

    schema = Spec.model_json_schema()
    schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    schema["title"] = "gancr spec"  # pydantic's would be the class name, "Spec"
    text = json.dumps(schema, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote the spec schema to {args.out}")
    else:
        print(text)
    return 0
