"""The CLI's console: as rich's, but readable in a CI log.

When output is not a terminal, rich assumes 80 columns (or ``COLUMNS``), and its tables then wrap every cell
into a column one or two words wide: the run summary and the validation table became unreadable in CI logs.
A log viewer scrolls sideways, so off a terminal the console is at least ``LOG_WIDTH`` columns wide; on a
terminal it is the terminal's width, as before.
"""
from __future__ import annotations

from rich.console import Console, ConsoleDimensions

LOG_WIDTH = 160  # fits the widest table we print (summary, validation, bench) without wrapping a cell


class ReadableConsole(Console):
    """``rich.console.Console`` with a width of at least ``LOG_WIDTH`` when it does not write to a terminal."""

    @property
    def size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)
        if self.is_terminal or size.width >= LOG_WIDTH:
            return size
        return ConsoleDimensions(LOG_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)
