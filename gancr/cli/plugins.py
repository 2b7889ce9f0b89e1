"""``gancr new-plugin``: write a working plugin package to start from (:mod:`gancr.cli.scaffold`)."""

from __future__ import annotations

import argparse
from typing import Any

from gancr.storage.files import output_argument

__all__ = ["add_new_plugin", "cmd_new_plugin"]


def add_new_plugin(sub: Any) -> None:
    p = sub.add_parser("new-plugin", help="write a working plugin package to start from")
    p.add_argument("name", help="the plugin's name, e.g. 'blur' (the package is gancr-blur)")
    output_argument(p, "--out", folder=True, default=".", help="the folder to write gancr-NAME/ into (default: .)")
    p.add_argument("--force", action="store_true", help="write into an existing, non-empty folder")


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from gancr.cli.scaffold import PluginNames, new_plugin

    target = new_plugin(args.name, args.out, force=args.force)
    names = PluginNames(args.name)
    print(f"wrote the gancr plugin {names.entry_point!r} (content loss {names.component!r}) to {target}/:")
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(target)}")
    print("next:")
    print(f"  pip install -e {target}")
    print(f"  gancr components content_loss    # lists {names.component}, plugin {names.entry_point} ({names.distribution} 0.1.0)")
    print(f"  pytest {target / 'tests'}")
    return 0
