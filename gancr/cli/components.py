"""``gancr components`` and ``gancr describe``: the registered components, from the registry."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gancr.text import text_table

__all__ = ["add_components", "cmd_components", "add_describe", "cmd_describe"]


def add_components(sub: Any) -> None:
    p = sub.add_parser("components", help="list the registered components (of one kind)")
    p.add_argument("kind", nargs="?", help="encoder, neck, decoder, discriminator, content_loss, style_loss or balancer")
    p.add_argument("--pattern", default="*", help="wildcard filter on names, e.g. 'vgg*'")
    p.add_argument("--markdown", action="store_true", help="print the docs' component catalogue")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_components(args: argparse.Namespace) -> int:
    from gancr.cli.catalog import component_rows, markdown_catalog
    from gancr.plugins import get_registry, plugin_failures

    registry = get_registry()
    if args.markdown:
        print(markdown_catalog(registry), end="")
        return 0
    rows = component_rows(registry, args.kind, args.pattern)
    if args.json:
        print(json.dumps([dict(zip(("kind", "name", "plugin", "summary"), r)) for r in rows], indent=2))
        return 0
    print("\n".join(text_table(("KIND", "NAME", "PLUGIN", "SUMMARY"), rows)))
    failures = plugin_failures()
    if failures:
        print(f"\n{len(failures)} plugin(s) left out:", file=sys.stderr)
        for message in failures.values():
            print(f"  {message}", file=sys.stderr)
    return 0


def add_describe(sub: Any) -> None:
    p = sub.add_parser("describe", help="a component's parameters, types, defaults and documentation")
    p.add_argument("kind")
    p.add_argument("name")


def cmd_describe(args: argparse.Namespace) -> int:
    from gancr.cli.catalog import describe_entry
    from gancr.plugins import get_registry

    registry = get_registry()
    print(describe_entry(registry, registry.get(args.kind, args.name)))
    return 0
