"""``weightkit merge BACKBONE HEAD -o OUT``: one file from two, after checking the junction; OUT is read back."""

from __future__ import annotations

import argparse

from .render import console, print_json, safe
from .split_cmd import WritableFormats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backbone", help="the backbone part")
    parser.add_argument("head", help="the head part")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="the merged file (format from its suffix)")
    parser.add_argument("--format", choices=WritableFormats(), metavar="FORMAT",
                        help="output format, when the suffix does not say: %(choices)s")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--ignore-junction", action="store_true",
                        help="merge even if the head does not fit the backbone (the problems are still reported)")
    parser.add_argument("--json", action="store_true", help="print one JSON document (see docs/json.md)")


def run(args: argparse.Namespace) -> int:
    from .. import merge
    from ..ops.merge import merge_document

    with merge(args.backbone, args.head, args.output, format=args.format, force=args.force,
               ignore_junction=args.ignore_junction) as result:
        document = merge_document(result)
        report = result.report
    if args.json:
        print_json(document)
        return 0
    out = console()
    for finding in report.findings:
        out.print(safe(f"{finding.severity} {finding.kind}: {finding.message}"))
    out.print(safe(f"wrote {result.output} ({result.output_format})")
              + (", joined although the head does not fit (--ignore-junction)" if document["junction_ignored"]
                 else ""))
    return 0
