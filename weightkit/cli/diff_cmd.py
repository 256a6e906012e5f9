"""``weightkit diff A B``: two architectures aligned layer by layer, in any format pair."""

from __future__ import annotations

import argparse
from typing import Any

from .render import (
    Column,
    console,
    first_fitting,
    fitted_table,
    fmt_shape,
    print_json,
    safe,
    shorten,
    shorten_distinct,
    styled,
    table_fits,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", help="first weight file")
    parser.add_argument("b", help="second weight file")
    parser.add_argument("--values", action="store_true", help="also compare the data of paired tensors")
    parser.add_argument("--all", action="store_true", help="show matching layers too, not only differences")
    parser.add_argument("--json", action="store_true", help="print one JSON document (see docs/json.md)")


def run(args: argparse.Namespace) -> int:
    from .. import load
    from ..ops.diff import diff_document, diff_models

    with load(args.a) as a, load(args.b) as b:
        result = diff_models(a, b, values=args.values)
        if args.json:
            print_json(diff_document(result))
        else:
            out = console()
            if args.all or any(pair.differs or pair.changes for pair in result.pairs):
                out.print(_table(result, show_all=args.all, width=out.width))
            out.print(_summary(result))
    return 1 if result.differs else 0


def _table(result: Any, show_all: bool, width: int) -> Any:
    """The pairs shown, each side with its class and shapes where that fits; else each pair on one line,
    names shortened in the middle and the differences folded (see `weightkit.cli.render.fitted_table`)."""
    pairs = [pair for pair in result.pairs if show_all or pair.differs or pair.changes]
    whole = [[_plain(_side(p.a)), _plain(_side(p.b)), p.matched_by or "", _plain(_changes(p))] for p in pairs]
    headers = (_source_header("A", result.a.source, [row[0] for row in whole]),
               _source_header("B", result.b.source, [row[1] for row in whole]), "matched by", "differences")
    if table_fits([Column(header) for header in headers], whole, width):  # the marked table as it is
        return _marked_table(headers, pairs)
    lines = {_changes_line(p): _shorter_changes(p) for p in pairs}
    folded = [[_side_line(p.a), _side_line(p.b), p.matched_by or "", _changes_line(p)] for p in pairs]
    styles = [["", "", "", "green" if p.a is None else "red" if p.b is None else ""] for p in pairs]
    columns = [Column(headers[0], shrink=shorten_distinct, floor=10), Column(headers[1], shrink=shorten_distinct,
               floor=10), Column("by"), Column(headers[3], shrink=first_fitting(lines), floor=12)]
    return fitted_table(columns, folded, width, styles)


def _source_header(side: str, source: str | None, cells: list[str]) -> str:
    """``A: path/of/a.h5``, its middle left out where it is wider than the column's cells (the file name stays)."""
    widest = max((len(line) for cell in cells for line in cell.split("\n")), default=0)
    return shorten(safe(f"{side}: {source}"), max(widest, 24))


def _marked_table(headers: tuple[str, ...], pairs: list[Any]) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    for header in headers:
        table.add_column(header)
    for pair in pairs:
        table.add_row(_side(pair.a), _side(pair.b), pair.matched_by or "", _changes(pair))
    return table


def _plain(shown: Any) -> str:
    """The characters of a styled cell (see `_side`), for measuring and shortening."""
    return str(shown.plain)


def _side_line(unit: Any) -> str:
    """One side of a pair on one line: its path (a folded convolution's and its norm's)."""
    if unit is None:
        return "—"
    if unit.fold is not None:
        return safe(f"{unit.fold.conv.path} + {unit.fold.norm.path}")
    return safe(unit.path)


def _changes_line(pair: Any) -> str:
    """The differences of a pair on one line, ``; `` between them, shapes written without spaces."""
    if pair.a is None or pair.b is None:
        return _plain(_changes(pair))
    return safe("; ".join(_change_text(change) for change in pair.changes) or "same")


def _change_text(change: Any) -> str:
    import re

    detail = re.sub(r"\([^()]*\)", lambda shape: shape.group(0).replace(" ", ""), change.detail or "")
    return f"{change.role}: {change.what} {detail}".rstrip()


def _shorter_changes(pair: Any) -> list[str]:
    """Shorter forms of `_changes_line`: the first difference and how many more, then what changed in which roles."""
    changes = pair.changes if pair.a is not None and pair.b is not None else []
    if len(changes) < 2:
        return [safe(f"{changes[0].role}: {changes[0].what}")] if changes else []
    roles: dict[str, list[str]] = {}
    for change in changes:
        roles.setdefault(change.what, []).append(change.role)
    return [safe(f"{_change_text(changes[0])}; +{len(changes) - 1}"),
            safe("; ".join(f"{what} {', '.join(names)}" for what, names in roles.items()))]


def _side(unit: Any) -> Any:
    """One side of a pair as styled text: its path, its class dimmed, its shapes on a second line."""
    if unit is None:
        return styled("—")
    if unit.fold is not None:  # the convolution and its batch norm, as the one folded convolution
        return styled("").join([_side(unit.fold.conv), styled("\n+ "), _side(unit.fold.norm)])
    shapes = ", ".join(fmt_shape(t.shape) for t in unit.tensors.values())
    return styled(safe(unit.path), " ", (safe(unit.layer.type_name or unit.kind), "dim"),
                  ("\n" + safe(shapes), "dim") if shapes else "")


def _changes(pair: Any) -> Any:
    if pair.a is None:
        return styled(("only in B", "green"))
    if pair.b is None:
        return styled(("only in A", "red"))
    return styled("\n".join(safe(f"{change.role}: {change.what} {change.detail}".rstrip()) for change in pair.changes)
                  or "same")


def _summary(result: Any) -> Any:
    from ..ops.diff import VERDICTS

    counts = result.counts()
    by_name = sum(1 for p in result.pairs if p.matched_by == "name")
    by_structure = sum(1 for p in result.pairs if p.matched_by == "structure")
    text = (f"{counts['matched']} layers paired ({by_name} by name, {by_structure} by structure), "
            f"{counts['only_a']} only in A, {counts['only_b']} only in B")
    changes = {k: v for k, v in counts.items() if k not in ("matched", "only_a", "only_b", "folded")}
    if changes:
        text += "; tensors " + ", ".join(f"{what} {count}" for what, count in changes.items())
    if counts.get("folded"):
        text += f"; {counts['folded']} batch norm(s) folded into a convolution"
    lines = [text, *(f"{change.where} {change.index}: {change.what} {change.detail}" for change in result.shapes)]
    return styled("\n".join(safe(line) for line in lines) + "\n", (VERDICTS[result.verdict], "bold"))
