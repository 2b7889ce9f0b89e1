"""``gancr completion SHELL``: the tab-completion script of bash, zsh or fish (argcomplete's)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["SHELLS", "add_completion", "cmd_completion"]

SHELLS = ("bash", "zsh", "fish")

_HOW = """\
install it once:
  bash:  gancr completion bash > ~/.local/share/bash-completion/completions/gancr
  zsh:   gancr completion zsh > "${fpath[1]}/_gancr"    (or: eval "$(gancr completion zsh)" in ~/.zshrc)
  fish:  gancr completion fish > ~/.config/fish/completions/gancr.fish"""


def add_completion(sub: Any) -> None:
    p = sub.add_parser("completion", help="print the tab-completion script of bash, zsh or fish",
                       description="Print the tab-completion script of a shell (made by argcomplete).",
                       epilog=_HOW, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shell", choices=SHELLS)


def cmd_completion(args: argparse.Namespace) -> int:
    import argcomplete

    print(argcomplete.shellcode(["gancr"], shell=args.shell), end="")
    return 0
