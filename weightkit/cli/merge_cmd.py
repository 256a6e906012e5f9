"""``weightkit merge BACKBONE HEAD -o OUT``: one file from two, after checking the junction; OUT is read back."""

from __future__ import annotations

import argparse

from .render import console, print_json
from .split_cmd import WritableFormats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backbone", help="the backbone part")
    parser.add_argument("head", help="the head part")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="the merged file (format from its suffix)")
    parser.add_argument("--format", choices=WritableFormats(), metavar="FORMAT",
                        help="output format, when the suffix does not say: %(choices)s")
    parser.add_argument("--force", action="store_true", help="merge even if the junction does not fit; replace OUT")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    from .. import merge
    from ..ops.check import check_document

    with merge(args.backbone, args.head, args.output, format=args.format, force=args.force) as result:
        report = result.report
    if args.json:
        print_json({"output": args.output, "check": check_document(report)})
        return 0
    out = console()
    for finding in report.findings:
        out.print(f"{finding.severity} {finding.kind}: {finding.message}")
    out.print(f"wrote {args.output}")
    return 0
