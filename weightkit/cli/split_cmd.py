"""``weightkit split FILE``: write the backbone and the head as two files."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .render import console, fmt_count, fmt_shape, parse_shape, print_json, safe


class WritableFormats:
    """``--format`` choices from the format registry, read only when argparse checks or shows them,
    so that ``weightkit --help`` does not import every reader."""

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    @staticmethod
    def _names() -> list[str]:
        from ..formats import writable

        return sorted(f.name for f in writable())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the weight file to cut")
    parser.add_argument("--arch", metavar="FILE",
                        help="architecture for a Keras weights-only file: a JSON config or a full-model file")
    parser.add_argument("--at", metavar="LAYER", help="the last layer of the backbone (default: proposed)")
    parser.add_argument("--head-input-shape", metavar="H,W,C",
                        help="the shape at the cut (no batch dim), where the config cannot tell it")
    parser.add_argument("--head-prefix", metavar="PREFIX", action="append",
                        help="keys under PREFIX are the head (state dicts; repeatable)")
    parser.add_argument("--out", metavar="DIR", help="where to write backbone.EXT and head.EXT")
    parser.add_argument("--format", choices=WritableFormats(), metavar="FORMAT",
                        help="write the parts in this format: %(choices)s")
    parser.add_argument("--backbone-name", default="backbone", help="file name of the backbone part (no suffix)")
    parser.add_argument("--head-name", default="head", help="file name of the head part (no suffix)")
    parser.add_argument("--strip-prefixes", action="store_true", help="drop a key prefix every tensor of a part shares")
    parser.add_argument("--list-boundaries", action="store_true", help="list the places the model can be cut")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    parser.add_argument("--json", action="store_true", help="print one JSON document (see docs/json.md)")


def run(args: argparse.Namespace) -> int:
    from .. import load, save
    from ..formats import by_name, output_format_for
    from ..ops.split import boundaries, propose_boundary, split_model

    with load(args.file, arch=args.arch) as model:
        if args.list_boundaries:
            return _list(model, boundaries(model), args)
        if not args.out:
            raise UsageError("--out DIR is required to split (or use --list-boundaries)")
        if not args.at and not args.head_prefix:
            proposal = propose_boundary(model)
            if not args.json:
                console().print(safe(f"cutting after {proposal.at!r}: {proposal.reason}"), style="dim")
        written = by_name(args.format) if args.format else output_format_for(model)
        suffix = written.suffixes[0]
        paths = [Path(args.out) / f"{args.backbone_name}{suffix}", Path(args.out) / f"{args.head_name}{suffix}"]
        if paths[0] == paths[1]:
            raise UsageError(f"the backbone and the head would both be written to {paths[0]}",
                             hint="give --backbone-name and --head-name different names")
        head_input = parse_shape(args.head_input_shape, "--head-input-shape", "the shape at the cut, e.g. 13,13,1024")
        with split_model(model, args.at, head_prefixes=args.head_prefix, strip_prefixes=args.strip_prefixes,
                         head_input_shape=head_input) as result:
            for part, path in zip((result.backbone, result.head), paths):
                save(part, path, args.format, force=args.force)
        document = _split_document(model, result.boundary, paths)
    boundary = result.boundary
    if args.json:
        print_json(document)
    else:
        where = (f"cut after {boundary.at} {fmt_shape(boundary.shape) if boundary.shape else ''}".rstrip()
                 if boundary.at else f"head: the keys under {', '.join(boundary.head_prefixes)}")
        console().print(f"{safe(where)}\n"
                        f"{safe(f'wrote {paths[0]}')} ({fmt_count(boundary.backbone_params)} parameters)\n"
                        f"{safe(f'wrote {paths[1]}')} ({fmt_count(boundary.head_params)} parameters)")
    return 0


def _split_document(model: Any, boundary: Any, paths: list[Path]) -> dict[str, Any]:
    """``split --json``: the two files written, their format as ``inspect`` names it, and the cut (docs/json.md)."""
    from .. import load
    from ..ops.inspect import SCHEMA_VERSION

    with load(paths[0]) as written:
        format = written.format
    return {"schema_version": SCHEMA_VERSION, "file": model.source, "backbone": str(paths[0]), "head": str(paths[1]),
            "format": format, **_boundary_document(model, boundary), "head_prefixes": boundary.head_prefixes}


def _boundary_document(model: Any, boundary: Any) -> dict[str, Any]:
    from ..ops.inspect import shape_document

    return {"at": boundary.at, "shape": shape_document(model, boundary.shape),
            "backbone_params": boundary.backbone_params, "head_params": boundary.head_params}


def _list(model: Any, found: list, args: argparse.Namespace) -> int:
    if args.json:
        from ..ops.inspect import SCHEMA_VERSION

        print_json({"schema_version": SCHEMA_VERSION, "file": model.source,
                    "boundaries": [_boundary_document(model, b) for b in found]})
        return 0
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    for column in ("cut after", "shape there", "backbone params", "head params"):
        table.add_column(column, justify="right" if "params" in column else "left")
    for boundary in found:
        table.add_row(safe(boundary.at), fmt_shape(boundary.shape), fmt_count(boundary.backbone_params),
                      fmt_count(boundary.head_params))
    console().print(table)
    return 0
