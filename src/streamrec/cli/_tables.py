"""Tables of the commands, readable in an 80-column terminal or log: no vertical rules, cells that
never wrap (a name is never split), optional columns left out when the terminal is narrow."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

WIDE = 100
"""Below this many columns, tables leave out their optional columns."""


def table(title: str | None = None) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False,
                 pad_edge=False)


def column(t: Table, header: str, *, right: bool = False) -> None:
    t.add_column(header, justify="right" if right else "left", no_wrap=True)


def wide(console: Console) -> bool:
    """Room for the optional columns."""
    return console.width >= WIDE
