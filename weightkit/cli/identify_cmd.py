"""``weightkit identify FILE``: which architecture a file holds, its head, where its backbone ends."""

from __future__ import annotations

import argparse
from typing import Any

from .render import console, print_json, safe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a weight file of any format weightkit reads")
    parser.add_argument("--top", type=_positive, default=3, metavar="K", help="show the K closest architectures (3)")
    parser.add_argument("--no-data", action="store_true",
                        help="read no tensor data (skips the trained-or-not question)")
    parser.add_argument("--json", action="store_true", help="print one JSON document (see docs/json.md)")


def run(args: argparse.Namespace) -> int:
    from .. import load
    from ..ops.identify import identify_document, identify_model

    with load(args.file) as model:
        result = identify_model(model, top=args.top, training=not args.no_data)
    if args.json:
        print_json(identify_document(result, args.file))
    else:
        console().print(_report(result, args.file))
    return 0 if result.named is not None else 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _report(result: Any, file: str) -> Any:
    from rich.console import Group
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("file", safe(file))
    grid.add_row("architecture", safe(result.summary()))
    named = result.named
    if named is not None:
        grid.add_row("confidence", f"{named.confidence:.0%}")
        constructors = ", ".join(entry.constructor for entry in named.entries)
        grid.add_row("built by", safe(constructors))
        for difference in named.differences:
            grid.add_row("differs", safe(difference))
    end = named.backbone_end if named is not None else result.anatomy.backbone_end
    if end is not None:
        grid.add_row("backbone ends", safe(_end_text(end)))
    head = named.head if named is not None else result.anatomy.head
    grid.add_row("head", safe(head.description + (f" ({', '.join(head.layers)})" if head.layers else "")))
    if named is not None:
        entry = named.entry
        expected = named.preprocessing
        if expected is not None:
            grid.add_row("preprocessing", safe(f"{expected.name}: {expected.description}"))
        elif len(named.entries) > 1:
            grid.add_row("preprocessing", "depends on whose weights these are (see differs)")
        if entry.input_size:
            grid.add_row("input size", f"{entry.input_size[0]}×{entry.input_size[1]} (as trained)")
        if entry.epsilon is not None:
            grid.add_row("batch norm ε", f"{entry.epsilon:g}")
    if result.training is not None:
        grid.add_row("trained", safe(_training_text(result.training)))
    return Group(grid, _candidates(result)) if len(result.matches) > 1 or named is None else grid


def _end_text(end: Any) -> str:
    facts = [f"{end.channels} channels" if end.channels else None, f"stride {end.stride}" if end.stride else None]
    shown = ", ".join(fact for fact in facts if fact)
    return f"{end.layer or '?'}" + (f" — {shown}" if shown else "")


def _training_text(training: Any) -> str:
    verdict = {True: "yes", False: "no, the weights look freshly initialized", None: "cannot tell"}[training.trained]
    return verdict + (f": {'; '.join(training.evidence)}" if training.evidence else "")


def _candidates(result: Any) -> Any:
    from rich.table import Table

    table = Table(title="closest catalog architectures", title_justify="left", show_edge=False)
    for header in ("architecture", "source", "match", "how"):
        table.add_column(header, justify="right" if header == "match" else "left")
    for match in result.matches:
        table.add_row(safe(match.architecture), safe(", ".join(match.sources)), f"{match.confidence:.0%}",
                      safe(match.relation))
    return table
