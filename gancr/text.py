"""Plain-text tables for the command line: ``gancr components``, ``gancr eval``, ``gancr bench``."""

from __future__ import annotations

from collections.abc import Collection, Sequence

__all__ = ["text_table"]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[int] = ()) -> list[str]:
    """The lines of a table: columns two spaces apart, each as wide as its widest cell.

    Columns are left-aligned, except those whose index is in ``right``; a left-aligned last
    column is not padded (long text there runs free). No line ends with spaces.

    Example:
        >>> print("\\n".join(text_table(("NAME", "N"), [("conv", "3"), ("vgg19", "12")], right={1})))
        NAME    N
        conv    3
        vgg19  12
    """
    table = [[str(c) for c in header], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    last = len(header) - 1
    if last not in right:
        widths[last] = 0
    return [
        "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        for r in table
    ]
