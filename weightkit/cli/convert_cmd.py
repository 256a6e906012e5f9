"""``weightkit convert MODEL -o OUT.onnx``: a Keras model to ONNX, optionally checked against Keras."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import WeightkitError
from .render import console, fmt_bytes, print_json, safe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..keras2onnx import DEFAULT_OPSET

    parser.add_argument("model", help="a Keras full-model .h5/.keras, or weights (.h5, .weights.h5) with --arch")
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write (in a folder that exists)")
    parser.add_argument("--arch", help="architecture for a weights-only file: a Keras JSON config or a full-model file")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default %(default)s)")
    parser.add_argument("--nchw", action="store_true", help="image inputs and outputs channels-first (NCHW)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="fix the batch size, 1 or more (default: symbolic)")
    parser.add_argument("--verify", action="store_true",
                        help="run Keras (if importable) and ONNX Runtime on the same random input and compare")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--json", action="store_true", help="print one JSON document (the conversion report)")


def run(args: argparse.Namespace) -> int:
    from .. import convert

    folder = Path(args.output).parent
    before = set(folder.iterdir()) if folder.is_dir() else set()
    with _status("converting", args.json):
        report = convert(args.model, args.output, arch=args.arch, opset=args.opset, nchw=args.nchw,
                         batch_size=args.batch_size, force=args.force)
    verification = None
    if args.verify:
        from ..keras2onnx.verify import verify

        try:
            with _status("verifying against Keras", args.json):
                verification = verify(args.model, args.output, arch=args.arch, nchw=args.nchw)
        except WeightkitError:
            # A refused verification is a refused command: leave no converted file behind it.
            for created in set(folder.iterdir()) - before:
                created.unlink(missing_ok=True)
            raise
    if args.json:
        print_json(_document(report, verification))
    else:
        _print_summary(report, verification)
    return 1 if verification is not None and verification.passed is False else 0


def _document(report: Any, verification: Any) -> dict[str, Any]:
    """``convert --json`` in the vocabulary of every document (docs/json.md): a layer's class is its ``type``."""
    from ..ops.inspect import SCHEMA_VERSION

    conversion = report.to_dict()
    conversion["layers"] = _typed(conversion["layers"])
    document = {"schema_version": SCHEMA_VERSION, "conversion": conversion}
    if verification is not None:
        checked = verification.to_dict()
        if isinstance(checked.get("differences"), list):
            checked["differences"] = _typed(checked["differences"])
        document["verification"] = checked
    return document


def _typed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with their Keras ``class_name`` called ``type``, as in every other document."""
    return [{("type" if key == "class_name" else key): value for key, value in item.items()} for item in items]


def _status(text: str, quiet: bool) -> Any:
    """A spinner on stderr when it is a terminal (conversions of big models take seconds)."""
    from contextlib import nullcontext

    if quiet or not sys.stderr.isatty():
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(text)


def _print_summary(report: Any, verification: Any) -> None:
    rows = [("converted", f"{report.source} → {report.output_path}")]
    if report.arch:
        rows.append(("architecture", report.arch))
    rows.append(("onnx", f"opset {report.opset}, {report.nodes} nodes, {report.initializers} initializers "
                         f"({fmt_bytes(report.initializer_bytes)})"))
    rows.append(("keras layers", f"{len(report.layers)} calls converted"))
    rows += [("input", f"{p.name} {_dims(p.shape)} {p.layout}") for p in report.inputs]
    rows += [("output", f"{p.name} {_dims(p.shape)} {p.layout}") for p in report.outputs]
    rows += [("warning", warning) for warning in report.warnings]
    if verification is not None:
        rows.append(("verify", verification.summary()))
    rows = [(label, safe(text)) for label, text in rows]  # names and paths come from the files
    if not sys.stdout.isatty():  # plain text, and no rich import, when piped
        width = max(len(label) for label, _ in rows)
        print("\n".join(f"{label:<{width}}  {text}" for label, text in rows))
        return
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, text in rows:
        grid.add_row(label, text, style="yellow" if label == "warning" else None)
    console().print(grid)


def _dims(shape: list[Any]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"
