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
from collections.abc import Callable, Iterator
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

__all__ = ["Node", "Initializer", "ValueInfo", "OnnxGraph", "SparseTensor", "TensorType", "Typed",
           "ATTRIBUTE_TYPES", "ir_version", "MAX_OPSET", "PROTOBUF_LIMIT"]

#: Opset → the lowest IR version that carries it (onnx.helper.VERSION_TABLE).
_IR_VERSION = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10, 22: 10, 23: 11, 24: 12, 25: 13,
               26: 13, 27: 13, 28: 14}
MAX_OPSET = max(_IR_VERSION)
PROTOBUF_LIMIT = 2**31 - 1
_EXTERNAL_SAFETY = 64 * 2**20  # room for the graph around the weights
_EXTERNAL_ALIGNMENT = 4096
_EXTERNAL_MIN_BYTES = 1024

#: TensorProto.DataType of the numpy types whose bytes ONNX stores as they are in ``raw_data``.
_ELEMENT_TYPE = {np.dtype(t): number for t, number in (
    (np.float32, 1), (np.uint8, 2), (np.int8, 3), (np.uint16, 4), (np.int16, 5), (np.int32, 6), (np.int64, 7),
    (np.bool_, 9), (np.float16, 10), (np.float64, 11), (np.uint32, 12), (np.uint64, 13), (np.complex64, 14),
    (np.complex128, 15))}
_FLOAT = _ELEMENT_TYPE[np.dtype(np.float32)]
_INT64_RANGE = range(-2**63, 2**63)

#: AttributeProto.AttributeType by name, and the AttributeProto field that holds a value of each type.
ATTRIBUTE_TYPES = {"FLOAT": 1, "INT": 2, "STRING": 3, "TENSOR": 4, "GRAPH": 5, "FLOATS": 6, "INTS": 7, "STRINGS": 8,
                   "TENSORS": 9, "GRAPHS": 10, "SPARSE_TENSOR": 11, "SPARSE_TENSORS": 12, "TYPE_PROTO": 13,
                   "TYPE_PROTOS": 14}
_VALUE_FIELD = {"FLOAT": 2, "INT": 3, "STRING": 4, "TENSOR": 5, "GRAPH": 6, "FLOATS": 7, "INTS": 8, "STRINGS": 9,
                "TENSORS": 10, "GRAPHS": 11, "TYPE_PROTO": 14, "TYPE_PROTOS": 15, "SPARSE_TENSOR": 22,
                "SPARSE_TENSORS": 23}
_TYPE_FIELD = 20


def ir_version(opset: int) -> int:
    return _IR_VERSION[opset]


@dataclass
class Node:
    """One ONNX node. Attribute values and the ONNX type each becomes (as ``onnx.helper.make_attribute``):

    - int or bool → INT, float → FLOAT, str (UTF-8) or bytes → STRING;
    - `Initializer` → TENSOR, `OnnxGraph` → GRAPH (its graph part), `SparseTensor` → SPARSE_TENSOR,
      `TensorType` → TYPE_PROTO;
    - a non-empty list or tuple of one of these → the list type (ints and floats mixed → FLOATS);
    - `Typed` spells the type out: an empty list (``Typed("FLOATS", [])``), or ints meant as FLOATS.

    Anything else (None, a numpy array, a dict, an empty or mixed list) is refused when the node is
    made, with TypeError (ValueError for an int beyond int64), so an emitter's mistake surfaces as its
    layer's conversion error, before anything is written.
    """

    op_type: str
    inputs: list[str]
    outputs: list[str]
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, value in self.attrs.items():
            _attribute(key, value)


@dataclass
class Initializer:
    """A named array: a graph's weight, or the value of a TENSOR attribute (where the name may be empty).

    A graph's weights are little-endian and C-contiguous (`GraphBuilder.constant` makes them so); the
    element type is one of those whose bytes ONNX stores as they are (no strings).
    """

    name: str
    array: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.array.nbytes


@dataclass(frozen=True)
class TensorType:
    """An ONNX tensor type: element type (a numpy dtype) and ``dims`` (ints, symbolic names, None for an
    unnamed unknown size), or no shape at all (``dims`` None). The value of a TYPE_PROTO attribute."""

    dtype: Any = np.float32
    dims: list[Dim] | None = None


@dataclass
class SparseTensor:
    """A SPARSE_TENSOR attribute's value (``onnx.helper.make_sparse_tensor``): the non-zero ``values``
    (1-D), their int64 ``indices`` (``(n,)`` linearized or ``(n, rank)``), and the dense shape ``dims``."""

    values: Initializer
    indices: Initializer
    dims: list[int]


@dataclass(frozen=True)
class Typed:
    """An attribute value with its ONNX type named (a key of `ATTRIBUTE_TYPES`): ``Typed("FLOATS", [])``."""

    type: str
    value: Any


@dataclass
class ValueInfo:
    """A graph input or output: a tensor of ``dtype`` (float32 by default) with ``dims`` (ints or symbolic
    names), or no shape (None)."""

    name: str
    dims: list[Dim] | None
    dtype: Any = np.float32


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
        from onnx import ModelProto

        model = ModelProto()
        model.ir_version = ir_version(self.opset)
        model.producer_name, model.producer_version = self.producer
        model.opset_import.add(domain="", version=self.opset)
        graph = model.graph
        graph.name = self.name
        for node in self.nodes:  # parsed from the writer's own bytes: the file and the proto cannot differ
            graph.node.add().ParseFromString(_node(node))
        for init in self.initializers:
            tensor = graph.initializer.add()
            tensor.name = init.name
            tensor.dims.extend(init.array.shape)
            tensor.data_type = _element_type(init)
            tensor.raw_data = _little_endian(init.array).tobytes()
        for infos, target in ((self.inputs, graph.input), (self.outputs, graph.output)):
            for info in infos:
                target.add().ParseFromString(_value_info(info))
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
    """An AttributeProto: ``name``, the value in its type's field, ``type`` — in field-number order, as
    protobuf serializes (so ``type``, field 20, comes before a sparse tensor's field 22 or 23)."""
    kind, value = (value.type, value.value) if isinstance(value, Typed) else (_attribute_type(name, value), value)
    if kind not in ATTRIBUTE_TYPES:
        raise TypeError(f"attribute {name!r}: no ONNX attribute type {kind!r} (one of {', '.join(ATTRIBUTE_TYPES)})")
    number, element_kind = _VALUE_FIELD[kind], kind.removesuffix("S")
    elements = _elements(name, kind, value)
    encode = _ELEMENT_ENCODERS[element_kind]
    values = b"".join(encode(name, number, element) for element in elements)
    head, tail = encode_string_field(1, name), encode_int_field(_TYPE_FIELD, ATTRIBUTE_TYPES[kind])
    return head + (tail + values if number > _TYPE_FIELD else values + tail)


def _attribute_type(name: str, value: Any) -> str:
    """The ONNX type of an attribute value, as ``onnx.helper.make_attribute`` infers it; TypeError where
    it cannot be told."""
    kind = _element_kind(value)
    if kind is not None:
        return kind
    if isinstance(value, np.ndarray):
        raise TypeError(f"attribute {name!r}: a numpy array is ambiguous; pass array.tolist() for INTS or FLOATS, "
                        "or Initializer(name, array) for a TENSOR")
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"attribute {name!r}: cannot encode a {type(value).__name__} ({value!r:.60})")
    if not value:
        raise TypeError(f"attribute {name!r}: an empty list has no type; spell it out, e.g. Typed('INTS', [])")
    kinds = {_element_kind(element) for element in value}
    if kinds == {"INT"}:
        return "INTS"
    if kinds == {"INT", "FLOAT"} or kinds == {"FLOAT"}:
        return "FLOATS"
    if len(kinds) == 1 and None not in kinds:
        return f"{kinds.pop()}S"
    found = sorted({type(element).__name__ for element in value})
    raise TypeError(f"attribute {name!r}: a list of {' and '.join(found)} has no ONNX type "
                    "(its elements must be all numbers, all strings, or all of one record type)")


def _element_kind(value: Any) -> str | None:
    if isinstance(value, (bool, int, np.integer, np.bool_)):
        return "INT"
    if isinstance(value, (float, np.floating)):
        return "FLOAT"
    if isinstance(value, (str, bytes)):
        return "STRING"
    for record, kind in ((Initializer, "TENSOR"), (OnnxGraph, "GRAPH"), (SparseTensor, "SPARSE_TENSOR"),
                         (TensorType, "TYPE_PROTO")):
        if isinstance(value, record):
            return kind
    return None


def _elements(name: str, kind: str, value: Any) -> list[Any]:
    if not kind.endswith("S"):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"attribute {name!r}: a {kind} value is a list or tuple, not a {type(value).__name__}")
    return list(value)


def _int_element(name: str, number: int, value: Any) -> bytes:
    if not isinstance(value, (bool, int, np.integer, np.bool_)):
        raise TypeError(f"attribute {name!r}: {value!r} is not an integer")
    if int(value) not in _INT64_RANGE:
        raise ValueError(f"attribute {name!r}: {value} does not fit in int64")
    return encode_int_field(number, int(value))


def _float_element(name: str, number: int, value: Any) -> bytes:
    if not isinstance(value, (bool, int, float, np.integer, np.floating)):
        raise TypeError(f"attribute {name!r}: {value!r} is not a number")
    return encode_float_field(number, float(value))


def _string_element(name: str, number: int, value: Any) -> bytes:
    if isinstance(value, str):
        return encode_string_field(number, value)
    if isinstance(value, bytes):
        return encode_len_field(number, value)
    raise TypeError(f"attribute {name!r}: {value!r} is not a str or bytes")


def _record_element(record: type, encode: Callable[[Any], bytes]) -> Callable[[str, int, Any], bytes]:
    def element(name: str, number: int, value: Any) -> bytes:
        if not isinstance(value, record):
            raise TypeError(f"attribute {name!r}: {type(value).__name__} is not a {record.__name__}")
        return encode_len_field(number, encode(value))
    return element


def _tensor(init: Initializer) -> bytes:
    """A TensorProto with its data inline (``raw_data``, little-endian); no name field when unnamed."""
    array = _little_endian(init.array)
    head = b"".join(encode_int_field(1, dim) for dim in array.shape) + encode_int_field(2, _element_type(init))
    if init.name:
        head += encode_string_field(8, init.name)
    return head + encode_len_field(9, array.tobytes())


def _sparse_tensor(sparse: SparseTensor) -> bytes:
    dims = b"".join(encode_int_field(3, dim) for dim in sparse.dims)
    return encode_len_field(1, _tensor(sparse.values)) + encode_len_field(2, _tensor(sparse.indices)) + dims


def _subgraph(graph: OnnxGraph) -> bytes:
    return b"".join(graph._graph_pieces(None, None))


def _type_proto(tensor_type: TensorType) -> bytes:
    """A TypeProto holding a tensor type (``onnx.helper.make_tensor_type_proto``)."""
    try:
        element = _ELEMENT_TYPE[np.dtype(tensor_type.dtype)]
    except (KeyError, TypeError):
        raise TypeError(f"no ONNX element type for {tensor_type.dtype!r} that weightkit writes") from None
    tensor = encode_int_field(1, element)
    if tensor_type.dims is not None:
        tensor += encode_len_field(2, b"".join(encode_len_field(1, _dimension(d)) for d in tensor_type.dims))
    return encode_len_field(1, tensor)


def _dimension(dim: Dim) -> bytes:
    if dim is None:
        return b""
    return encode_int_field(1, dim) if isinstance(dim, int) else encode_string_field(2, str(dim))


_ELEMENT_ENCODERS: dict[str, Callable[[str, int, Any], bytes]] = {
    "INT": _int_element, "FLOAT": _float_element, "STRING": _string_element,
    "TENSOR": _record_element(Initializer, _tensor), "GRAPH": _record_element(OnnxGraph, _subgraph),
    "SPARSE_TENSOR": _record_element(SparseTensor, _sparse_tensor),
    "TYPE_PROTO": _record_element(TensorType, _type_proto),
}


def _little_endian(array: np.ndarray) -> np.ndarray:
    """``array`` itself when little-endian and C-contiguous (as `GraphBuilder.constant` makes them), else a copy."""
    if array.dtype.byteorder == ">" or not array.flags.c_contiguous:
        return array.astype(array.dtype.newbyteorder("<"), order="C")
    return array


def _element_type(init: Initializer) -> int:
    found = _ELEMENT_TYPE.get(init.array.dtype.newbyteorder("="))
    if found is None:
        raise TypeError(f"tensor {init.name!r}: ONNX raw data cannot hold {init.array.dtype} elements")
    return found


def _initializer(init: Initializer, data_file: IO[bytes] | None, data_name: str | None) -> Iterator[Any]:
    head = b"".join(encode_int_field(1, dim) for dim in init.array.shape)
    head += encode_int_field(2, _element_type(init)) + encode_string_field(8, init.name)
    data = _little_endian(init.array).reshape(-1).data.cast("B")
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
    return encode_string_field(1, info.name) + encode_len_field(2, _type_proto(TensorType(info.dtype, info.dims)))
