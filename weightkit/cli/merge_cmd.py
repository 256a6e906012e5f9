"""``weightkit merge BACKBONE HEAD -o OUT``: one file from two, after checking the junction."""

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
    from .. import load, save
    from ..ops.check import check_document
    from ..ops.merge import merge_models

    with load(args.backbone) as backbone, load(args.head) as head:
        with merge_models(backbone, head, force=args.force) as result:
            save(result.model, args.output, args.format, force=args.force)
    if args.json:
        print_json({"output": args.output, "check": check_document(result.report)})
        return 0
    out = console()
    for finding in result.report.findings:
        out.print(f"{finding.severity} {finding.kind}: {finding.message}")
    out.print(f"wrote {args.output}")
    return 0
