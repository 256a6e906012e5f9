r"""Shared pieces of terminal output: the console, numbers, shapes, JSON, tables that fit the terminal.

Names and metadata come from files nobody vetted, so output is safe by construction: the one
`console` reads no string as rich markup (``[/]``, ``[link=...]`` in a tensor name are text) and
shows control characters escaped (``\x1b``, ``\u202e``: no clear screen, window title, clipboard
write or reversed text), wherever the string ends up (a table, a tree, a plain line). Styles are
given as data (`styled`), never by markup in a string.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import JustifyMethod

__all__ = ["console", "safe", "safe_lines", "styled", "print_json", "fmt_shape", "fmt_count", "fmt_bytes",
           "parse_shape", "shorten", "shorten_distinct", "fold_items", "folding", "first_fitting", "Column",
           "fitted_table", "table_fits"]

ELLIPSIS = "…"

# What a terminal acts on instead of showing: C0 and C1 controls, DEL, bidi overrides and isolates,
# and the Unicode line and paragraph separators.
_NOT_C0 = "\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f{_NOT_C0}]")
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_NOT_C0}]")


def safe(text: object) -> str:
    r"""``text`` with every control character escaped (``\x1b``, ``\u202e``), newlines and tabs too: one line."""
    return _UNSAFE.sub(_escaped, str(text))


def safe_lines(text: object) -> str:
    """``text`` with every control character escaped but the newlines between its lines (weightkit's own)."""
    return _UNSAFE_BUT_NEWLINE.sub(_escaped, str(text))


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def styled(*parts: str | tuple[str, str]) -> Any:
    """A rich Text of ``parts`` (strings, or ``(string, style)`` pairs), each shown as it is, never as markup."""
    from rich.text import Text

    text = Text()
    for part in parts:
        content, style = (part, "") if isinstance(part, str) else part
        text.append(safe_lines(content), style=style)
    return text


def console() -> Any:
    """A rich console that shows every string as text (see the module's docstring): colour on a terminal, plain
    and wide when piped; NO_COLOR respected."""
    if sys.stdout.isatty():
        return _safe_console()(highlight=False, markup=False, emoji=False)
    return _safe_console()(highlight=False, markup=False, emoji=False, no_color=True,
                           width=int(os.environ.get("COLUMNS", 200)), soft_wrap=False)


def _safe_console() -> type:
    """The Console class whose strings are never markup and whose output carries no control characters."""
    global _SafeConsole
    if _SafeConsole is None:
        from rich.console import Console
        from rich.segment import Segment

        class SafeConsole(Console):
            def render_str(self, text: str, **options: Any) -> Any:
                """A string to show: escaped, and never markup or emoji codes, whatever the caller asked."""
                return super().render_str(safe_lines(text), **{**options, "markup": False, "emoji": False})

            def render(self, renderable: Any, options: Any = None) -> Any:
                """What reaches the terminal, with any control character left in a text escaped (a last guard)."""
                for segment in super().render(renderable, options):
                    if segment.control is None and _UNSAFE_BUT_NEWLINE.search(segment.text):
                        yield Segment(safe_lines(segment.text), segment.style)
                    else:
                        yield segment

        _SafeConsole = SafeConsole
    return _SafeConsole


_SafeConsole: type | None = None


def print_json(document: Any) -> None:
    """Print one JSON document on stdout, nothing else."""
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def fmt_shape(shape: Sequence[Any] | None) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def fmt_count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def fmt_bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def parse_shape(text: str | None, option: str, hint: str) -> tuple[int, ...] | None:
    """``224,224,3`` (or ``224x224x3``) given to ``option`` as a tuple of positive sizes; None when not given."""
    from ..errors import UsageError

    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a list of integers", hint=hint) from None
    if any(size <= 0 for size in shape):
        raise UsageError(f"{option} {text!r}: every size must be a positive integer", hint=hint)
    return shape


def shorten(text: str, width: int, tail: int | None = None) -> str:
    """``text`` in at most ``width`` characters, its middle replaced by an ellipsis.

    Names differ at their ends (``block_1_expand_BN``, ``block_1_expand_relu``), so the end keeps
    ``tail`` characters (by default three fifths of what is kept) and the start the rest.
    """
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    kept = width - 1
    tail = (kept * 3 + 4) // 5 if tail is None else max(0, min(tail, kept))
    return text[: kept - tail] + ELLIPSIS + (text[-tail:] if tail else "")


def shorten_distinct(texts: Sequence[str], width: int) -> list[str]:
    """Every text shortened to ``width`` (see `shorten`) where the cut keeps different texts different:
    the cut moves towards the start or the end until it does (``block_15_…_relu``, ``block_16_…_relu``)."""
    kept = width - 1
    preferred = (kept * 3 + 4) // 5
    wanted = len(set(texts))
    for tail in _tails_near(preferred, kept):
        shortened = [shorten(text, width, tail) for text in texts]
        if len(set(shortened)) == wanted:
            return shortened
    return [shorten(text, width) for text in texts]


def _tails_near(preferred: int, kept: int) -> list[int]:
    """Tail lengths from ``preferred`` outwards, longer before shorter: 6, 7, 5, 8, 4, ..."""
    order = [preferred]
    for step in range(1, kept + 1):
        order += [tail for tail in (preferred + step, preferred - step) if 0 <= tail <= kept]
    return order


def fold_items(text: str, width: int, sep: str = ", ") -> str:
    """Items joined by ``sep`` in at most ``width`` characters: the first ones, then ``+N`` for the rest."""
    if len(text) <= width:
        return text
    items = text.split(sep)
    for keep in range(len(items) - 1, 0, -1):
        folded = sep.join(items[:keep]) + f"{sep}+{len(items) - keep}"
        if len(folded) <= width:
            return folded
    return shorten(items[0], width, tail=0)


def folding(sep: str = ", ") -> Callable[[Sequence[str], int], list[str]]:
    """A `Column.shrink` that folds each cell's ``sep``-joined items (see `fold_items`)."""
    return lambda cells, width: [fold_items(cell, width, sep) for cell in cells]


def first_fitting(alternatives: Mapping[str, Sequence[str]]) -> Callable[[Sequence[str], int], list[str]]:
    """A `Column.shrink` that gives each cell the first of its shorter ``alternatives`` (by cell text) that fits,
    the last one cut at its end where none does."""
    def shrink(cells: Sequence[str], width: int) -> list[str]:
        chosen = []
        for cell in cells:
            options = [cell, *alternatives.get(cell, ())]
            chosen.append(next((o for o in options if len(o) <= width), shorten(options[-1], width, tail=0)))
        return chosen

    return shrink


@dataclass(frozen=True)
class Column:
    """A column of a `fitted_table`: its header, alignment, and how its cells give way when space runs short.

    ``shrink(cells, width)`` shortens every cell to ``width`` characters (None: the column keeps its width);
    ``floor`` is the narrowest it may become.
    """

    header: str
    justify: JustifyMethod = "left"
    shrink: Callable[[Sequence[str], int], list[str]] | None = None
    floor: int = 8


def table_fits(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> bool:
    """Can ``rows`` be shown in ``width`` characters, shrinkable columns no narrower than their floor?"""
    _, fits = _fitted_widths(_natural_widths(columns, rows), columns, width)
    return fits


def fitted_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int,
                 styles: Sequence[Sequence[str]] | None = None) -> Any:
    """A rich table of plain-text ``rows`` in ``width`` characters, each line of a cell on one line: the
    shrinkable columns give way, widest first, down to their floor (past that, rich cuts cells' ends).

    ``styles`` (the shape of ``rows``) gives each cell a rich style; cell text is never read as markup, and its
    control characters are escaped before it is measured.
    """
    rows = [[safe_lines(cell) for cell in row] for row in rows]
    natural = _natural_widths(columns, rows)
    widths, _ = _fitted_widths(natural, columns, width)
    cells = _shrunk_rows(columns, rows, natural, widths)
    for _ in range(len(columns)):  # a column that folded to less than it was given lends the rest to another
        actual = _natural_widths(columns, cells)
        slack = width - sum(actual) - _table_overhead(len(columns))
        bound = next((i for i, column in enumerate(columns)
                      if column.shrink is not None and natural[i] > widths[i] <= actual[i]), None)
        if slack <= 0 or bound is None:
            break
        widths = list(actual)
        widths[bound] = min(natural[bound], actual[bound] + slack)
        cells = _shrunk_rows(columns, rows, natural, widths)
    headers = [shorten(column.header, column_width) for column, column_width in zip(columns, widths)]
    return _rich_table(columns, headers, cells, styles)


def _shrunk_rows(columns: Sequence[Column], rows: Sequence[Sequence[str]], natural: list[int],
                 widths: list[int]) -> list[list[str]]:
    cells = [list(row) for row in rows]
    for index, column in enumerate(columns):
        if widths[index] < natural[index] and column.shrink is not None:
            for row, text in zip(cells, _shrunk_column([row[index] for row in rows], column, widths[index])):
                row[index] = text
    return cells


def _natural_widths(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max([len(column.header), *(_cell_width(row[i]) for row in rows)]) for i, column in enumerate(columns)]


def _cell_width(text: str) -> int:
    return max((len(line) for line in text.split("\n")), default=0)


def _fitted_widths(natural: list[int], columns: Sequence[Column], width: int) -> tuple[list[int], bool]:
    """Column widths for ``width`` with the table's edges and padding, taken from the widest shrinkable
    column first; and whether they fit."""
    widths = list(natural)
    excess = sum(widths) + _table_overhead(len(widths)) - width
    while excess > 0:
        shrinkable = [i for i, column in enumerate(columns)
                      if column.shrink is not None and widths[i] > min(column.floor, natural[i])]
        if not shrinkable:
            return widths, False
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths, True


def _table_overhead(columns: int) -> int:
    """Characters a SIMPLE_HEAD table adds to its cells: one of padding on each side of a cell, one between
    cells and at each edge."""
    return 3 * columns + 1


def _shrunk_column(cells: list[str], column: Column, width: int) -> list[str]:
    """The lines of every cell of a column shortened to ``width`` (multi-line cells line by line)."""
    assert column.shrink is not None
    lines = [cell.split("\n") for cell in cells]
    flat = column.shrink([line for cell in lines for line in cell], width)
    out, start = [], 0
    for cell in lines:
        out.append("\n".join(flat[start:start + len(cell)]))
        start += len(cell)
    return out


def _rich_table(columns: Sequence[Column], headers: list[str], cells: list[list[str]],
                styles: Sequence[Sequence[str]] | None) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD)
    for column, header in zip(columns, headers):
        table.add_column(Text(safe(header)), justify=column.justify, no_wrap=True, overflow="ellipsis")
    for index, row in enumerate(cells):
        row_styles = styles[index] if styles is not None else [""] * len(row)
        table.add_row(*(Text(text, style=style) for text, style in zip(row, row_styles)))
    return table
