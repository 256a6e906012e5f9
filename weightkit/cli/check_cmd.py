"""``weightkit check``: does a head fit a backbone, and what would loading a checkpoint into a model do."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import UsageError
from .render import console, print_json

_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("first", metavar="BACKBONE|CHECKPOINT", help="a backbone, or the checkpoint to load")
    parser.add_argument("head", nargs="?", metavar="HEAD", help="the head to put on the backbone")
    parser.add_argument("--into", metavar="MODEL", help="the model the checkpoint is to be loaded into")
    parser.add_argument("--input-shape", metavar="H,W,C", help="backbone input size, for the feature-map shape")
    parser.add_argument("--fix", metavar="OUT", help="write the checkpoint with the fixes applied (with --into)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--json", action="store_true", help="print one JSON document (see docs/json.md)")


def run(args: argparse.Namespace) -> int:
    from .. import load
    from ..ops.check import check_document, check_into, fixed_checkpoint
    from ..ops.junction import check_junction

    if (args.head is None) == (args.into is None):
        raise UsageError("give either BACKBONE HEAD or CHECKPOINT --into MODEL")
    if args.fix and not args.into:
        raise UsageError("--fix works with CHECKPOINT --into MODEL")
    with load(args.first) as first, load(args.into or args.head) as second:
        if args.into:
            report = check_into(first, second)
        else:
            report = check_junction(first, second, input_shape=_shape(args.input_shape))
        if args.fix:
            from .. import save

            save(fixed_checkpoint(first, second, report), args.fix, force=args.force)
        if args.json:
            print_json(check_document(report))
        else:
            _render(report, args)
    return 0 if report.ok else 1


def _shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"--input-shape {text!r} is not a list of integers like 224,224,3") from None


def _render(report: Any, args: argparse.Namespace) -> None:
    out = console()
    for finding in report.findings:
        style = _STYLE.get(finding.severity, "")
        out.print(f"[{style}]{finding.severity}[/{style}] {finding.kind}: {finding.message}")
        if finding.fix:
            out.print(f"    fix: {finding.fix}")
    if args.fix:
        out.print(f"wrote {args.fix}")
    verdict = "fits" if report.ok else f"{len(report.errors())} problem(s)" if report.errors() else "warnings"
    out.print(f"[bold]{verdict}[/bold] ({report.semantics} semantics)")
