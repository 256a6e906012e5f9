"""``weightkit diff A B``: two architectures aligned layer by layer, in any format pair."""

from __future__ import annotations

import argparse
from typing import Any

from .render import console, fmt_shape, print_json


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
            if args.all or result.differs or any(pair.changes for pair in result.pairs):
                out.print(_table(result, show_all=args.all))
            out.print(_summary(result))
    return 1 if result.differs else 0


def _table(result: Any, show_all: bool) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    table.add_column(f"A: {result.a.source}")
    table.add_column(f"B: {result.b.source}")
    table.add_column("matched by")
    table.add_column("differences")
    for pair in result.pairs:
        if not show_all and not pair.differs and not pair.changes:
            continue
        table.add_row(_side(pair.a), _side(pair.b), pair.matched_by or "", _changes(pair))
    return table


def _side(unit: Any) -> str:
    if unit is None:
        return "—"
    shapes = ", ".join(fmt_shape(t.shape) for t in unit.tensors.values())
    return f"{unit.path} [dim]{unit.layer.type_name or unit.kind}[/dim]" + (f"\n[dim]{shapes}[/dim]" if shapes else "")


def _changes(pair: Any) -> str:
    if pair.a is None:
        return "[green]only in B[/green]"
    if pair.b is None:
        return "[red]only in A[/red]"
    return "\n".join(f"{change.role}: {change.what} {change.detail}".rstrip() for change in pair.changes) or "same"


def _summary(result: Any) -> str:
    counts = result.counts()
    by_name = sum(1 for p in result.pairs if p.matched_by == "name")
    by_structure = sum(1 for p in result.pairs if p.matched_by == "structure")
    text = (f"{counts['matched']} layers paired ({by_name} by name, {by_structure} by structure), "
            f"{counts['only_a']} only in A, {counts['only_b']} only in B")
    changes = {k: v for k, v in counts.items() if k not in ("matched", "only_a", "only_b")}
    if changes:
        text += "; tensors " + ", ".join(f"{what} {count}" for what, count in changes.items())
    verdict = "differ" if result.differs else "match"
    return f"{text}\n[bold]the two {verdict}[/bold]"
