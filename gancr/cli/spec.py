"""``gancr validate`` and ``gancr schema``, and the ``--set`` option of the commands that read a spec."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gancr.cli.output import notes_enabled
from gancr.storage.files import output_argument

__all__ = ["add_set_argument", "add_spec_arguments", "positive_int", "add_validate", "cmd_validate", "add_schema",
           "cmd_schema"]


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_set_argument(p: argparse.ArgumentParser) -> None:
    """``--set PATH=VALUE`` (repeatable): spec overrides, as ``args.overrides``."""
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
        help="override a spec field, e.g. training.stages.0.steps=5 (repeatable)",
    )


def add_spec_arguments(p: argparse.ArgumentParser) -> None:
    """``SPEC...`` (several files are merged in order, later ones win) and ``--set``."""
    p.add_argument("specs", nargs="+", metavar="SPEC",
                   help="a YAML or JSON spec; several are merged in order, later ones win (as with base:)")
    add_set_argument(p)


def add_validate(sub: Any) -> None:
    p = sub.add_parser(
        "validate", help="check a spec as train would use it: exit 0 and a summary, or exit 2 and the errors",
        description="Check a spec: its fields, the plugins it requires, the device, weights files, the data "
        "sources, and that the trio, losses and optimisers build; say what was not checked.",
    )
    add_spec_arguments(p)
    p.add_argument("--no-build", action="store_true", help="do not build the trio, losses and optimisers")
    p.add_argument("--print", dest="print_spec", action="store_true",
                   help="print the resolved spec (bases merged, defaults filled in) as YAML")
    p.add_argument("--json", action="store_true", help="print the result as JSON (for scripts)")


def cmd_validate(args: argparse.Namespace) -> int:
    from gancr.errors import SpecError
    from gancr.spec.requirements import check_requirements
    from gancr.spec import load_spec
    from gancr.training.preflight import preflight

    name = " + ".join(args.specs)
    try:
        spec = load_spec(args.specs if len(args.specs) > 1 else args.specs[0], args.overrides)
        check_requirements(spec)  # a missing plugin first: what else fails may follow from it
    except SpecError as exc:
        if not args.json:
            raise
        print(json.dumps({"spec": args.specs, "valid": False, "errors": [
            {"path": path, "message": message} for path, message in exc.errors]}, indent=2))
        return 2
    report = preflight(spec, build_models=not args.no_build)
    if args.json:
        print(json.dumps({"spec": args.specs, "valid": report.ok, "summary": spec.summary(), **report.to_dict(),
                          **({"resolved": spec.to_dict()} if args.print_spec else {})}, indent=2))
        return 0 if report.ok else 2
    if args.print_spec:
        print(spec.to_yaml(), end="")
    if not report.ok:
        failed = [c for c in report.checks if not c.ok]
        lines = [f"{name}: {len(failed)} problem(s) train would stop at:"]
        lines += [f"  {c.name}: {c.detail}" for c in failed]
        print("\n".join(lines), file=sys.stderr)
        return 2
    parameters = "" if report.generator_parameters is None else f"; generator {report.generator_parameters / 1e6:.2f}M parameters"
    print(f"{name}: valid. {spec.summary()}{parameters}")
    if notes_enabled(args):
        for check in report.checks:
            print(f"  ok {check.name}: {check.detail}")
        for item in report.not_checked:
            print(f"  not checked: {item}")
    return 0


def add_schema(sub: Any) -> None:
    p = sub.add_parser("schema", help="the JSON Schema of a spec (plugin components included)")
    output_argument(p, "--out", help="write to this file instead of standard output")


def cmd_schema(args: argparse.Namespace) -> int:
    from gancr.spec import Spec

    schema = Spec.model_json_schema()
    schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    schema["title"] = "gancr spec"  # pydantic's would be the class name, "Spec"
    schema.setdefault("properties", {})["base"] = {  # read by load_spec before validation
        "description": "spec files this one builds on, merged in order before it (paths relative to this file)",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    }
    text = json.dumps(schema, indent=2)
    if args.out:
        from gancr.storage.files import atomic_write_text

        atomic_write_text(args.out, text + "\n")
        print(f"wrote the spec schema to {args.out}")
    else:
        print(text)
    return 0
