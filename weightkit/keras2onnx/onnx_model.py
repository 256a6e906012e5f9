"""The graph's ends and the model: inputs declared from the Keras config, outputs named after
Keras's output layers in Keras's layout (or channels-first with ``nchw``), and writing the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._atomic import atomic_output
from .._version import __version__
from ..errors import FileFormatError, UsageError
from ..formats.keras import ConfigLayer
from ..model import Dim
from .builder import GraphBuilder, Value, channels_first_perm, identity
from .nodes import endpoints
from .proto import OnnxGraph, ValueInfo
from .report import PortReport

__all__ = ["graph_inputs", "graph_outputs", "make_model", "save_model"]


def graph_inputs(builder: GraphBuilder, root: ConfigLayer, nchw: bool,
                 batch_size: int | None) -> tuple[list[ValueInfo], list[Value], list[PortReport]]:
    """ONNX graph inputs from the config's input shapes; the batch dimension is symbolic unless fixed."""
    infos, values, reports = [], [], []
    for spec in root.input_specs():
        if spec.shape is None:
            raise FileFormatError(f"the architecture states no shape for input {spec.name!r}",
                                  hint="a Sequential model needs an Input or an input_shape on its first layer")
        shape: tuple[Dim, ...] = (batch_size, *spec.shape[1:])
        rank = len(shape)
        perm = channels_first_perm(rank) if nchw and rank >= 3 else None
        name = builder.unique(spec.name)
        value = Value(name, shape, perm)
        dims = _dims(value.onnx_shape() or (), name)
        infos.append(ValueInfo(name, dims))
        values.append(value)
        reports.append(PortReport(name, spec.name, dims, _layout(value)))
    return infos, values, reports


def graph_outputs(builder: GraphBuilder, root: ConfigLayer, outputs: list[Value], nchw: bool,
                  input_names: set[str]) -> tuple[list[ValueInfo], list[PortReport]]:
    """Outputs in Keras's layout (channels-first with ``nchw``), named after Keras's output layers."""
    infos: list[ValueInfo] = []
    reports: list[PortReport] = []
    for keras_name, value in zip(_output_names(root, len(outputs)), outputs):
        rank = value.rank or 0
        value = builder.relayout(value, channels_first_perm(rank) if nchw and rank >= 3 else identity(rank))
        if value.name != keras_name or value.name in input_names or keras_name in {r.name for r in reports}:
            value = _named(builder, value, keras_name, input_names)
        dims = _dims(value.onnx_shape() or (), value.name)
        infos.append(ValueInfo(value.name, dims if value.shape else None))
        reports.append(PortReport(value.name, keras_name, dims, _layout(value)))
    return infos, reports


def _named(builder: GraphBuilder, value: Value, wanted: str, input_names: set[str]) -> Value:
    """``value`` under the name ``wanted`` where possible: its producer is renamed, or an Identity added."""
    producer = next((node for node in reversed(builder.nodes) if value.name in node.outputs), None)
    free = wanted not in builder._names or _rename_holder(builder, wanted, input_names)
    if producer is None or not free or value.name in input_names:
        output = builder.node("Identity", [value.name], f"{wanted}/output")
        return value.with_name(output)
    _rename(builder, value.name, wanted)
    return value.with_name(wanted)


def _rename_holder(builder: GraphBuilder, name: str, input_names: set[str]) -> bool:
    """Move an internal tensor off ``name`` so an output can take it; False if it cannot move."""
    if name in input_names or any(init.name == name for init in builder.initializers):
        return False
    _rename(builder, name, builder.unique(f"{name}/inner"))
    return True


def _rename(builder: GraphBuilder, old: str, new: str) -> None:
    builder._names.add(new)
    for node in builder.nodes:
        for names in (node.inputs, node.outputs):
            for index, name in enumerate(names):
                if name == old:
                    names[index] = new


def _output_names(root: ConfigLayer, count: int) -> list[str]:
    refs = endpoints(root.config, "output_layers")
    if not refs:
        return [root.layers[-1].name] * count if count == 1 else [f"output_{i}" for i in range(count)]
    return [ref.layer if ref.tensor == 0 else f"{ref.layer}_{ref.tensor}" for ref in refs]


def _dims(shape: tuple[Dim, ...], name: str) -> list[Dim]:
    dims: list[Dim] = []
    for axis, dim in enumerate(shape):
        if isinstance(dim, int):
            dims.append(dim)
        else:
            dims.append("batch" if axis == 0 else f"{name}_dim{axis}")
    return dims


def _layout(value: Value) -> str:
    rank = value.rank or 0
    if rank < 3 or value.perm is None:
        return "keras (channels-last)" if rank >= 3 else "keras"
    return "channels-first" if value.perm == channels_first_perm(rank) else f"perm {list(value.perm)}"


def make_model(builder: GraphBuilder, inputs: list[ValueInfo], outputs: list[ValueInfo], name: str,
               metadata: dict[str, str]) -> OnnxGraph:
    """The whole model as records: one graph in the default domain at the builder's opset."""
    return OnnxGraph(name, builder.nodes, builder.initializers, inputs, outputs, builder.opset, metadata,
                     ("weightkit", __version__))


def save_model(graph: OnnxGraph, path: str | os.PathLike[str], *, force: bool = False,
               inputs: tuple[Any, ...] = ()) -> None:
    """Write ``graph`` atomically; its weights go to ``<name>.data`` beside it when the file would pass 2 GB."""
    target = Path(path)
    data_name = target.name + ".data" if graph.needs_external_data() else None
    data_file = target.with_name(data_name) if data_name else None
    if data_file is not None and data_file.exists() and not force:
        raise UsageError(f"{data_file} already exists", hint="pass --force to replace it")
    with atomic_output(target, force=force, inputs=tuple(i for i in inputs if i is not None)) as temporary:
        if data_file is None:
            graph.write(temporary)
            return
        with atomic_output(data_file, force=True) as data_temporary:
            graph.write(temporary, data_name, data_temporary)
