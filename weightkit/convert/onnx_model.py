"""The graph's ends and the ModelProto: inputs declared from the Keras config, outputs named after
Keras's output layers in Keras's layout (or channels-first with ``nchw``), and saving the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._atomic import atomic_output
from ..errors import FileFormatError, UsageError
from ..keras_arch import ConfigLayer
from ..model import Dim
from .builder import GraphBuilder, Value, channels_first_perm, identity
from .nodes import endpoints
from .report import PortReport

__all__ = ["graph_inputs", "graph_outputs", "make_model", "save_model", "PROTOBUF_LIMIT"]

PROTOBUF_LIMIT = 2**31 - 1
_EXTERNAL_SAFETY = 64 * 2**20  # the graph around the weights needs room too


def graph_inputs(builder: GraphBuilder, root: ConfigLayer, nchw: bool,
                 batch_size: int | None) -> tuple[list[Any], list[Value], list[PortReport]]:
    """ONNX graph inputs from the config's input shapes; the batch dimension is symbolic unless fixed."""
    from onnx import TensorProto, helper

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
        infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
        values.append(value)
        reports.append(PortReport(name, spec.name, dims, _layout(value)))
    return infos, values, reports


def graph_outputs(builder: GraphBuilder, root: ConfigLayer, outputs: list[Value], nchw: bool,
                  input_names: set[str]) -> tuple[list[Any], list[PortReport]]:
    """Outputs in Keras's layout (channels-first with ``nchw``), named after Keras's output layers."""
    from onnx import TensorProto, helper

    infos, reports = [], []
    for keras_name, value in zip(_output_names(root, len(outputs)), outputs):
        rank = value.rank or 0
        value = builder.relayout(value, channels_first_perm(rank) if nchw and rank >= 3 else identity(rank))
        if value.name != keras_name or value.name in input_names or keras_name in {r.name for r in reports}:
            value = _named(builder, value, keras_name, input_names)
        dims = _dims(value.onnx_shape() or (), value.name)
        infos.append(helper.make_tensor_value_info(value.name, TensorProto.FLOAT, dims if value.shape else None))
        reports.append(PortReport(value.name, keras_name, dims, _layout(value)))
    return infos, reports


def _named(builder: GraphBuilder, value: Value, wanted: str, input_names: set[str]) -> Value:
    """``value`` under the name ``wanted`` where possible: its producer is renamed, or an Identity added."""
    producer = next((node for node in reversed(builder.nodes) if value.name in node.output), None)
    free = wanted not in builder._names or _rename_holder(builder, wanted, input_names)
    if producer is None or not free or value.name in input_names:
        output = builder.node("Identity", [value.name], f"{wanted}/output")
        return value.with_name(output)  # type: ignore[arg-type]
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
        for field in (node.input, node.output):
            for index, name in enumerate(field):
                if name == old:
                    field[index] = new


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


def make_model(builder: GraphBuilder, inputs: list[Any], outputs: list[Any], name: str,
               metadata: dict[str, str]) -> Any:
    """The ModelProto: one graph, the default-domain opset, the lowest IR version that carries it."""
    from onnx import helper

    graph = helper.make_graph(builder.nodes, name, inputs, outputs, builder.initializers)
    opsets = [helper.make_opsetid("", builder.opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="weightkit")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    helper.set_model_props(model, metadata)
    return model


def save_model(model: Any, path: str | os.PathLike[str], *, force: bool = False,
               inputs: tuple[Any, ...] = ()) -> None:
    """Write ``model`` atomically; weights go to ``<name>.data`` beside it when the file would pass 2 GB."""
    import onnx

    target = Path(path)
    external = model.ByteSize() > PROTOBUF_LIMIT - _EXTERNAL_SAFETY
    data_file = target.with_name(target.name + ".data")
    if external and data_file.exists():
        if not force:
            raise UsageError(f"{data_file} already exists", hint="pass --force to replace it")
    with atomic_output(target, force=force, inputs=tuple(i for i in inputs if i is not None)) as temporary:
        if external:
            if data_file.exists():
                data_file.unlink()
            onnx.save_model(model, temporary, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_file.name, size_threshold=1024)
        else:
            onnx.save_model(model, temporary)
