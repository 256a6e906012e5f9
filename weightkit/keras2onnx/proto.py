"""The converted graph as plain records, turned into an ``onnx.ModelProto`` or written straight to a file.

Writing does not go through ``onnx``: the records are encoded in protobuf's wire
format field by field (numbers from onnx.proto) with the shared encoder in
``weightkit.formats._parsers.protobuf``, and each weight's bytes are written
from its numpy array, so a conversion holds its weights once and never builds the
whole serialized model in memory (nor pays for importing onnx). Past 2 GB the
weights go to ``<name>.data`` beside the model as ONNX external data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..formats._parsers.protobuf import (
    encode_float_field,
    encode_int_field,
    encode_len_field,
    encode_len_header,
    encode_string_field,
)
from ..model import Dim

__all__ = ["Node", "Initializer", "ValueInfo", "OnnxGraph", "ir_version", "MAX_OPSET", "PROTOBUF_LIMIT"]

#: Opset → the lowest IR version that carries it (onnx.helper.VERSION_TABLE).
_IR_VERSION = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10, 22: 10, 23: 11, 24: 12, 25: 13,
               26: 13, 27: 13, 28: 14}
MAX_OPSET = max(_IR_VERSION)
PROTOBUF_LIMIT = 2**31 - 1
_EXTERNAL_SAFETY = 64 * 2**20  # room for the graph around the weights
_EXTERNAL_ALIGNMENT = 4096
_EXTERNAL_MIN_BYTES = 1024

_FLOAT, _INT64 = 1, 7
_ELEMENT_TYPE = {np.dtype(np.float32): _FLOAT, np.dtype(np.int64): _INT64}
# AttributeProto.AttributeType
_A_FLOAT, _A_INT, _A_STRING, _A_FLOATS, _A_INTS = 1, 2, 3, 6, 7


def ir_version(opset: int) -> int:
    return _IR_VERSION[opset]


@dataclass
class Node:
    """One ONNX node; attribute values are Python ints, floats, strings or lists of ints/floats."""

    op_type: str
    inputs: list[str]
    outputs: list[str]
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Initializer:
    """A weight: its name and a little-endian, C-contiguous float32 or int64 array."""

    name: str
    array: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.array.nbytes


@dataclass
class ValueInfo:
    """A graph input or output: float32 with ``dims`` (ints or symbolic names), or no shape (None)."""

    name: str
    dims: list[Dim] | None


@dataclass
class OnnxGraph:
    """Everything a ModelProto holds, as records."""

    name: str
    nodes: list[Node]
    initializers: list[Initializer]
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    opset: int
    metadata: dict[str, str] = field(default_factory=dict)
    producer: tuple[str, str] = ("weightkit", "")

    @property
    def weight_bytes(self) -> int:
        return sum(init.nbytes for init in self.initializers)

    def needs_external_data(self) -> bool:
        """True when the weights would push a single file past protobuf's 2 GB limit."""
        return self.weight_bytes > PROTOBUF_LIMIT - _EXTERNAL_SAFETY

    # -- onnx.ModelProto ----------------------------------------------------------------------
    def to_proto(self) -> Any:
        """An ``onnx.ModelProto`` (each weight copied once into it)."""
        from onnx import ModelProto, helper

        model = ModelProto()
        model.ir_version = ir_version(self.opset)
        model.producer_name, model.producer_version = self.producer
        model.opset_import.add(domain="", version=self.opset)
        graph = model.graph
        graph.name = self.name
        for node in self.nodes:
            graph.node.append(helper.make_node(node.op_type, node.inputs, node.outputs, name=node.name, **node.attrs))
        for init in self.initializers:
            tensor = graph.initializer.add()
            tensor.name = init.name
            tensor.dims.extend(init.array.shape)
            tensor.data_type = _ELEMENT_TYPE[init.array.dtype]
            tensor.raw_data = init.array.tobytes()
        for infos, target in ((self.inputs, graph.input), (self.outputs, graph.output)):
            for info in infos:
                target.append(helper.make_tensor_value_info(info.name, _FLOAT, info.dims))
        for key, value in self.metadata.items():
            model.metadata_props.add(key=key, value=value)
        return model

    # -- writing ------------------------------------------------------------------------------
    def write(self, path: str | os.PathLike[str], data_name: str | None = None,
              data_path: str | os.PathLike[str] | None = None) -> None:
        """Serialize to ``path``; with ``data_name``, weights of 1 KB or more go to external data, written
        to ``data_path`` (by default ``data_name`` beside ``path``) and referred to as ``data_name``."""
        target = Path(path)
        if data_name and data_path is None:
            data_path = target.with_name(data_name)
        data_file = open(data_path, "wb") if data_name and data_path else None  # noqa: SIM115  # optional file: closed in the finally below
        try:
            pieces = list(self._model_pieces(data_file, data_name))
            with open(target, "wb") as handle:
                for piece in pieces:
                    handle.write(piece)
        finally:
            if data_file is not None:
                data_file.close()

    def _model_pieces(self, data_file: IO[bytes] | None, data_name: str | None) -> Iterator[Any]:
        graph = list(self._graph_pieces(data_file, data_name))
        yield encode_int_field(1, ir_version(self.opset))
        yield encode_string_field(2, self.producer[0])
        yield encode_string_field(3, self.producer[1])
        yield encode_len_header(7, sum(len(p) for p in graph))
        yield from graph
        yield encode_len_field(8, encode_string_field(1, "") + encode_int_field(2, self.opset))
        for key, value in self.metadata.items():
            yield encode_len_field(14, encode_string_field(1, key) + encode_string_field(2, value))

    def _graph_pieces(self, data_file: IO[bytes] | None, data_name: str | None) -> Iterator[Any]:
        for node in self.nodes:
            yield encode_len_field(1, _node(node))
        yield encode_string_field(2, self.name)
        for init in self.initializers:
            yield from _initializer(init, data_file, data_name)
        for number, infos in ((11, self.inputs), (12, self.outputs)):
            for info in infos:
                yield encode_len_field(number, _value_info(info))


# -- messages ------------------------------------------------------------------------------------
def _node(node: Node) -> bytes:
    parts = [encode_string_field(1, name) for name in node.inputs]
    parts += [encode_string_field(2, name) for name in node.outputs]
    parts += [encode_string_field(3, node.name), encode_string_field(4, node.op_type)]
    parts += [encode_len_field(5, _attribute(key, value)) for key, value in sorted(node.attrs.items())]
    return b"".join(parts)


def _attribute(name: str, value: Any) -> bytes:
    head = encode_string_field(1, name)
    if isinstance(value, (bool, int, np.integer)):
        return head + encode_int_field(3, int(value)) + encode_int_field(20, _A_INT)
    if isinstance(value, (float, np.floating)):
        return head + encode_float_field(2, float(value)) + encode_int_field(20, _A_FLOAT)
    if isinstance(value, str):
        return head + encode_string_field(4, value) + encode_int_field(20, _A_STRING)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, np.integer)) for v in value):
        return head + b"".join(encode_int_field(8, int(v)) for v in value) + encode_int_field(20, _A_INTS)
    if isinstance(value, (list, tuple)):
        return head + b"".join(encode_float_field(7, float(v)) for v in value) + encode_int_field(20, _A_FLOATS)
    raise TypeError(f"attribute {name!r}: cannot encode {type(value).__name__}")


def _initializer(init: Initializer, data_file: IO[bytes] | None, data_name: str | None) -> Iterator[Any]:
    head = b"".join(encode_int_field(1, dim) for dim in init.array.shape)
    head += encode_int_field(2, _ELEMENT_TYPE[init.array.dtype]) + encode_string_field(8, init.name)
    data = init.array.reshape(-1).data.cast("B")
    if data_file is not None and data_name is not None and init.nbytes >= _EXTERNAL_MIN_BYTES:
        offset = _aligned_end(data_file)
        data_file.write(data)
        entries = (("location", data_name), ("offset", str(offset)), ("length", str(init.nbytes)))
        head += b"".join(encode_len_field(13, encode_string_field(1, key) + encode_string_field(2, value))
                         for key, value in entries)
        head += encode_int_field(14, 1)  # data_location = EXTERNAL
        yield encode_len_field(5, head)
        return
    raw = encode_len_header(9, init.nbytes)
    yield encode_len_header(5, len(head) + len(raw) + init.nbytes)
    yield head + raw
    yield data


def _aligned_end(data_file: IO[bytes]) -> int:
    position = data_file.tell()
    padding = -position % _EXTERNAL_ALIGNMENT
    if padding:
        data_file.write(b"\0" * padding)
    return position + padding


def _value_info(info: ValueInfo) -> bytes:
    tensor = encode_int_field(1, _FLOAT)
    if info.dims is not None:
        dims = b"".join(encode_len_field(1, encode_int_field(1, d) if isinstance(d, int)
                                         else encode_string_field(2, str(d))) for d in info.dims)
        tensor += encode_len_field(2, dims)
    return encode_string_field(1, info.name) + encode_len_field(2, encode_len_field(1, tensor))
