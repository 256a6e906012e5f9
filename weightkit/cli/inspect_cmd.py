"""``weightkit inspect FILE``: what a file is and what it holds, without reading tensor data."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .render import console, fmt_bytes, fmt_count, fmt_shape, print_json

if TYPE_CHECKING:
    from rich.console import JustifyMethod


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a weight file (.h5, .keras, .weights.h5, ...)")
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--tree", action="store_true", help="show nested models as a tree")
    view.add_argument("--tensors", action="store_true", help="list every tensor instead of layers")
    view.add_argument("--json", action="store_true", help="print one JSON document (see docs/json.md)")


def run(args: argparse.Namespace) -> int:
    from .. import load
    from ..ops.inspect import inspect_document, totals

    with load(args.file) as model:
        if args.json:
            print_json(inspect_document(model))
            return 0
        out = console()
        out.print(_header(model))
        if args.tensors:
            out.print(_tensor_table(model))
        elif args.tree:
            out.print(_tree(model))
        else:
            out.print(_layer_table(model))
        out.print(_footer(model, totals(model)))
    return 0


def _header(model: Any) -> Any:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    contents = "architecture and weights" if model.has_graph else "weights only (no architecture)"
    grid.add_row("file", str(model.source))
    grid.add_row("format", f"{model.format} — {contents}")
    metadata = dict(model.metadata)
    writer = metadata.pop("writer", None) or model.framework or "unknown"
    backend = metadata.pop("backend", None)
    grid.add_row("written by", writer + (f", {backend} backend" if backend else ""))
    for spec in model.inputs:
        grid.add_row("input", f"{spec.name} {fmt_shape(spec.shape)} {spec.dtype or ''}".rstrip())
    for spec in model.outputs:
        grid.add_row("output", f"{spec.name} {fmt_shape(spec.shape)} {spec.dtype or ''}".rstrip())
    verdict = _backbone_verdict(model)
    if verdict:
        grid.add_row("looks like", verdict)
    for key, value in metadata.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items() if v is not None)
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(item) for item in value)
        grid.add_row(key.replace("_", " "), str(value))
    return grid


def _backbone_verdict(model: Any) -> str:
    """What a weights-only file looks like, when it looks like a backbone saved without its head ('' if not)."""
    from ..ops.inspect import headless_backbone

    found = headless_backbone(model)
    if found is None:
        return ""
    return (f"a backbone (feature extractor) without a head: its last weighted layer {found.layer!r} "
            f"puts out {found.channels} channels")


def _layer_table(model: Any) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("#", "right"), ("layer", "left"), ("class", "left"), ("kind", "left"), ("tensors", "left"),
        ("params", "right"))
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for index, layer in enumerate(model.layers):
        if layer.layers:
            count = sum(1 for _ in layer.walk()) - 1
            described = f"nested model: {count} layers (--tree shows them)"
        else:
            described = _tensor_lines(layer)
        table.add_row(str(index), layer.name, layer.type_name or "", layer.kind, described, fmt_count(layer.num_params))
    return table


def _tensor_lines(layer: Any) -> str:
    lines = []
    for role, tensor in layer.tensors.items():
        layout = f" {tensor.layout}" if tensor.layout else ""
        lines.append(f"{role} {fmt_shape(tensor.shape)} {tensor.dtype}{layout}")
    return "\n".join(lines) or "-"


def _tree(model: Any) -> Any:
    from rich.tree import Tree

    root = Tree(f"{model.format} ({len(model.layers)} layers)")

    def add(node: Any, layer: Any) -> None:
        label = f"{layer.name}  [dim]{layer.type_name or layer.kind}[/dim]  {fmt_count(layer.num_params)}"
        branch = node.add(label)
        for tensor in layer.tensors.values():
            branch.add(f"{tensor.role} {fmt_shape(tensor.shape)} {tensor.dtype}  [dim]{tensor.name}[/dim]")
        for sub in layer.layers:
            add(branch, sub)

    for layer in model.layers:
        add(root, layer)
    return root


def _tensor_table(model: Any) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    for column in ("tensor", "layer", "role", "shape", "dtype", "layout", "params"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for path, layer in model.walk():
        for tensor in layer.tensors.values():
            table.add_row(tensor.name, path, tensor.role, fmt_shape(tensor.shape), tensor.dtype,
                          tensor.layout or "", fmt_count(tensor.size))
    for group, tensors in model.extras.items():
        for tensor in tensors:
            table.add_row(tensor.name, f"({group})", tensor.role, fmt_shape(tensor.shape), tensor.dtype, "",
                          fmt_count(tensor.size))
    return table


def _footer(model: Any, total: Any) -> Any:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    split = ""
    if total.trainable is not None:
        split = f" (trainable {fmt_count(total.trainable)}, non-trainable {fmt_count(total.non_trainable)})"
    grid.add_row("parameters", fmt_count(total.params) + split)
    grid.add_row("tensors", f"{fmt_count(total.tensors)} in {fmt_count(total.layers)} layers")
    sizes = ", ".join(f"{dtype} {fmt_bytes(size)}" for dtype, size in total.bytes_by_dtype.items())
    grid.add_row("data", f"{fmt_bytes(total.nbytes)}" + (f" ({sizes})" if sizes else ""))
    for group, tensors in model.extras.items():
        values = sum(t.size for t in tensors)
        grid.add_row(group.replace("_", " "), f"{len(tensors)} tensors, {fmt_count(values)} values (not counted above)")
    return grid
