"""``weightkit inspect FILE``: what a file is and what it holds, without reading tensor data."""

from __future__ import annotations

import argparse
from typing import Any

from .render import (
    Column,
    console,
    fitted_table,
    fmt_bytes,
    fmt_count,
    fmt_shape,
    folding,
    print_json,
    safe,
    shorten_distinct,
    styled,
    table_fits,
)

# A table is shown whole where it fits the terminal; else its columns fold (class and kind into the
# kind, tensors into their shapes on one line) and long names lose their middle: a row stays a line.
_LAYER_COLUMNS = (Column("#", "right"), Column("layer", shrink=shorten_distinct, floor=16),
                  Column("class", shrink=shorten_distinct, floor=12), Column("kind"), Column("tensors"),
                  Column("params", "right"))
_FOLDED_LAYER_COLUMNS = (Column("#", "right"), Column("layer", shrink=shorten_distinct, floor=10), Column("kind"),
                         Column("tensors", shrink=folding(), floor=8), Column("params", "right"))
_TENSOR_COLUMNS = (Column("tensor", shrink=shorten_distinct, floor=20), Column("layer", shrink=shorten_distinct),
                   Column("role"), Column("shape"), Column("dtype"), Column("layout"), Column("params", "right"))
_FOLDED_TENSOR_COLUMNS = (Column("tensor", shrink=shorten_distinct, floor=10), Column("role"), Column("shape"),
                          Column("dtype"), Column("params", "right"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a weight file (.h5, .keras, .weights.h5, ...)")
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--tree", action="store_true", help="show nested models as a tree")
    view.add_argument("--tensors", action="store_true", help="list every tensor instead of layers")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document, layers and tensors alike (see docs/json.md)")


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
            out.print(_tensor_table(model, out.width))
        elif args.tree:
            out.print(_tree(model))
        else:
            out.print(_layer_table(model, out.width))
        out.print(_footer(model, totals(model)))
    return 0


def _header(model: Any) -> Any:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    metadata = dict(model.metadata)
    grid.add_row("file", safe(model.source))
    grid.add_row("format", safe(f"{model.format} — {_contents(model, metadata.pop('description', None))}"))
    writer = metadata.pop("writer", None) or model.framework or "unknown"
    backend = metadata.pop("backend", None)
    grid.add_row("written by", safe(f"{writer}, {backend} backend" if backend else writer))
    for spec in model.inputs:
        grid.add_row("input", safe(f"{spec.name} {fmt_shape(spec.shape)} {spec.dtype or ''}".rstrip()))
    for spec in model.outputs:
        grid.add_row("output", safe(f"{spec.name} {fmt_shape(spec.shape)} {spec.dtype or ''}".rstrip()))
    grid.add_row("architecture", safe(_architecture(model)))
    verdict = _backbone_verdict(model)
    if verdict:
        grid.add_row("looks like", safe(verdict))
    for key, value in metadata.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items() if v is not None)
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(item) for item in value)
        grid.add_row(safe(key.replace("_", " ")), safe(value))
    return grid


def _architecture(model: Any) -> str:
    """The catalog architecture `identify` names, or the closest one (read from shapes only)."""
    from ..ops.identify import identify_model

    return identify_model(model, top=1, training=False).summary()


def _contents(model: Any, described: str | None) -> str:
    """What the file holds, as its reader describes it (a TorchScript module) or as its graph tells."""
    if described:
        return str(described)
    return "architecture and weights" if model.has_graph else "weights only (no architecture)"


def _backbone_verdict(model: Any) -> str:
    """What a weights-only file looks like, when it looks like a backbone saved without its head ('' if not)."""
    from ..ops.inspect import headless_backbone

    found = headless_backbone(model)
    if found is None:
        return ""
    return (f"a backbone (feature extractor) without a head: its last weighted layer {found.layer!r} "
            f"puts out {found.channels} channels")


def _layer_table(model: Any, width: int) -> Any:
    """One row per layer: every tensor on a line of its own where that fits, else each layer on one line."""
    from ..ops.inspect import layer_params

    whole, folded = [], []
    for index, layer in enumerate(model.layers):
        nested = sum(1 for _ in layer.walk()) - 1 if layer.layers else 0
        params = fmt_count(layer_params(model, layer))
        name, kind = safe(layer.name), safe(layer.kind)
        whole.append([str(index), name, safe(layer.type_name or ""), kind, _tensor_lines(layer, nested), params])
        folded.append([str(index), name, kind, _tensor_shapes(layer, nested), params])
    if table_fits(_LAYER_COLUMNS, whole, width):
        return fitted_table(_LAYER_COLUMNS, whole, width)
    return fitted_table(_FOLDED_LAYER_COLUMNS, folded, width)


def _tensor_lines(layer: Any, nested: int) -> str:
    if nested:
        return f"nested model: {nested} layers (--tree shows them)"
    lines = []
    for role, tensor in layer.tensors.items():
        layout = f" {tensor.layout}" if tensor.layout else ""
        lines.append(safe(f"{role} {fmt_shape(tensor.shape)} {tensor.dtype}{layout}"))
    return "\n".join(lines) or "-"


def _tensor_shapes(layer: Any, nested: int) -> str:
    """A layer's tensors on one line: their shapes, repeats counted (a norm's ``(16,)×4``)."""
    if nested:
        return f"nested model: {nested} layers"
    shapes = [_compact_shape(tensor.shape) for tensor in layer.tensors.values()]
    grouped: list[list[Any]] = []
    for shape in shapes:
        if grouped and grouped[-1][0] == shape:
            grouped[-1][1] += 1
        else:
            grouped.append([shape, 1])
    return ", ".join(shape + (f"×{count}" if count > 1 else "") for shape, count in grouped) or "-"


def _compact_shape(shape: Any) -> str:
    return fmt_shape(shape).replace(" ", "")


def _tree(model: Any) -> Any:
    from rich.tree import Tree

    from ..ops.inspect import layer_params

    root = Tree(styled(f"{model.format} ({len(model.layers)} layers)"))

    def add(node: Any, layer: Any) -> None:
        params = fmt_count(layer_params(model, layer))
        branch = node.add(styled(safe(layer.name), "  ", (safe(layer.type_name or layer.kind), "dim"), f"  {params}"))
        for tensor in layer.tensors.values():
            branch.add(styled(f"{safe(tensor.role)} {fmt_shape(tensor.shape)} {safe(tensor.dtype)}  ",
                              (safe(tensor.name), "dim")))
        for sub in layer.layers:
            add(branch, sub)

    for layer in model.layers:
        add(root, layer)
    return root


def _tensor_table(model: Any, width: int) -> Any:
    """One row per tensor (extras last, their group as the layer); folded like the layer table where narrow."""
    found = [(tensor, path) for path, layer in model.walk() for tensor in layer.tensors.values()]
    found += [(tensor, f"({group})") for group, tensors in model.extras.items() for tensor in tensors]
    whole = [[safe(t.name), safe(path), safe(t.role), fmt_shape(t.shape), safe(t.dtype), safe(t.layout or ""),
              fmt_count(t.size)] for t, path in found]
    if table_fits(_TENSOR_COLUMNS, whole, width):
        return fitted_table(_TENSOR_COLUMNS, whole, width)
    folded = [[safe(t.name), safe(t.role), _compact_shape(t.shape), safe(t.dtype), fmt_count(t.size)] for t, _ in found]
    return fitted_table(_FOLDED_TENSOR_COLUMNS, folded, width)


def _footer(model: Any, total: Any) -> Any:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    split = ""
    if total.trainable is not None:
        split = f" (trainable {fmt_count(total.trainable)}, non-trainable {fmt_count(total.non_trainable)})"
    grid.add_row("parameters", fmt_count(total.params) + split)
    if total.buffers:
        grid.add_row("buffers", f"{fmt_count(total.buffers)} values (running statistics and counters, not "
                                "parameters: as torch counts them)")
    grid.add_row("tensors", f"{fmt_count(total.tensors)} in {fmt_count(total.layers)} layers")
    sizes = ", ".join(f"{dtype} {fmt_bytes(size)}" for dtype, size in total.bytes_by_dtype.items())
    grid.add_row("data", f"{fmt_bytes(total.nbytes)}" + (f" ({sizes})" if sizes else ""))
    for group, tensors in model.extras.items():
        values = sum(t.size for t in tensors)
        grid.add_row(safe(group.replace("_", " ")),
                     f"{len(tensors)} tensors, {fmt_count(values)} values (not counted above)")
    return grid
