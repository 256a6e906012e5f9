"""The protobuf wire format, just enough to move ONNX tensor bytes without parsing them.

An ONNX file is one serialized ``ModelProto``; almost all of its bytes are tensor
payloads (``raw_data`` of initializers). Parsing it with protobuf copies every
payload into memory. This module walks the message tree by hand instead, descending
only into the submessages that can hold tensors (graphs, nodes, attributes,
functions) and only when they are big enough to matter, and lets a visitor rewrite
each ``TensorProto`` it meets: the reader swaps payloads for references into the
file, the writer swaps references back for payloads. Everything else is copied as
bytes and parsed by onnx's own classes.

It is also weightkit's one protobuf encoder: ``encode_*`` make single fields exactly as
protobuf's own serializer does (varints, tags, length-delimited fields, floats), for
every writer that builds ONNX messages without importing onnx.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator
from typing import Any

from ... import limits

__all__ = [
    "WireError", "Field", "Payload", "Chunk", "VARINT", "I64", "LEN", "I32",
    "read_varint", "encode_varint", "encode_tag", "encode_int_field", "encode_len_header", "encode_len_field",
    "encode_string_field", "encode_float_field", "fields",
    "rewrite", "chunks_size", "looks_like_model", "MODEL", "TENSOR",
]

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_INT64_LIMIT = 2**63
_WIRE_TYPES = (VARINT, I64, LEN, I32)
_PROTOBUF_DEPTH = 100  # protobuf's own parsers refuse deeper messages, whatever weightkit allows


MODEL, GRAPH, NODE, ATTRIBUTE, FUNCTION, TRAINING, SPARSE, TENSOR = (
    "model", "graph", "node", "attribute", "function", "training", "sparse", "tensor")

#: Fields that are messages able to hold tensors, by message (numbers from onnx.proto).
_CHILDREN: dict[str, dict[int, str]] = {
    MODEL: {7: GRAPH, 20: TRAINING, 25: FUNCTION},
    GRAPH: {1: NODE, 5: TENSOR, 15: SPARSE},
    NODE: {5: ATTRIBUTE},
    ATTRIBUTE: {5: TENSOR, 6: GRAPH, 10: TENSOR, 11: GRAPH, 22: SPARSE, 23: SPARSE},
    FUNCTION: {7: NODE, 11: ATTRIBUTE},
    TRAINING: {1: GRAPH, 2: GRAPH},
    SPARSE: {1: TENSOR, 2: TENSOR},
}

#: ModelProto fields and their wire types, for recognising a file by its first bytes.
_MODEL_FIELDS = {1: VARINT, 2: LEN, 3: LEN, 4: LEN, 5: VARINT, 6: LEN, 7: LEN, 8: LEN,
                 14: LEN, 20: LEN, 25: LEN, 26: LEN}
_GRAPH_FIELDS = {1: LEN, 2: LEN, 5: LEN, 10: LEN, 11: LEN, 12: LEN, 13: LEN, 14: LEN, 15: LEN, 16: LEN}
_MAX_IR_VERSION = 64


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message (truncated, bad tag, too deep)."""


class Field:
    """One field of a message: its number, wire type, where it starts, and its value or payload range."""

    __slots__ = ("number", "wire", "start", "value_start", "end", "value")

    def __init__(self, number: int, wire: int, start: int, value_start: int, end: int, value: int):
        self.number, self.wire, self.start = number, wire, start
        self.value_start, self.end, self.value = value_start, end, value


class Payload:
    """Bytes to be produced later (a tensor's data when writing): their size and a producer."""

    __slots__ = ("size", "produce")

    def __init__(self, size: int, produce: Callable[[], Any]):
        self.size = size
        self.produce = produce

    def __len__(self) -> int:
        return self.size


#: A piece of a rewritten message: bytes copied from the input, new bytes, or a deferred payload.
Chunk = Any


def read_varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    """Decode the varint at ``pos``; returns (value, position after it)."""
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError("a number runs past the end of its message")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("a number is longer than 10 bytes")


def encode_varint(value: int) -> bytes:
    """``value`` as a base-128 varint; a negative int64 as its 64-bit two's complement (ten bytes), as
    protobuf encodes ``int64`` fields.

    Raises:
        ValueError: ``value`` fits neither int64 nor uint64.
    """
    if not -_INT64_LIMIT <= value < 2 * _INT64_LIMIT:
        raise ValueError(f"{value} does not fit in 64 bits")
    value &= 2 * _INT64_LIMIT - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_tag(number: int, wire: int) -> bytes:
    """The key that starts field ``number`` of wire type ``wire``."""
    return encode_varint(number << 3 | wire)


def encode_int_field(number: int, value: int) -> bytes:
    """A complete varint field (int32, int64, enum or bool; negatives as two's complement)."""
    return encode_tag(number, VARINT) + encode_varint(value)


def encode_len_header(number: int, size: int) -> bytes:
    """The tag and length of a length-delimited field whose ``size`` payload bytes follow separately."""
    return encode_tag(number, LEN) + encode_varint(size)


def encode_len_field(number: int, payload: bytes) -> bytes:
    """A complete length-delimited field (bytes, a submessage, or a packed repeated field)."""
    return encode_len_header(number, len(payload)) + payload


def encode_string_field(number: int, text: str) -> bytes:
    """A complete string field, UTF-8 encoded."""
    return encode_len_field(number, text.encode("utf-8"))


def encode_float_field(number: int, value: float) -> bytes:
    """A complete ``float`` field: four little-endian IEEE 754 bytes; a double beyond float32's range
    becomes an infinity of its sign, as protobuf stores it."""
    try:
        packed = struct.pack("<f", value)
    except OverflowError:
        packed = struct.pack("<f", math.copysign(math.inf, value))
    return encode_tag(number, I32) + packed


def fields(buf: Any, start: int, end: int) -> Iterator[Field]:
    """The fields of the message in ``buf[start:end]``, in file order, bounds-checked."""
    for number, wire, field_start, value_start, field_end, value in _spans(buf, start, end):
        yield Field(number, wire, field_start, value_start, field_end, value)


def _spans(buf: Any, start: int, end: int) -> Iterator[tuple[int, int, int, int, int, int]]:
    """`fields` as plain tuples, with one-byte tags and lengths decoded inline (the common case)."""
    pos = start
    while pos < end:
        tag = buf[pos]
        value_start = pos + 1
        if tag >= 0x80:
            tag, value_start = read_varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        value = 0
        if wire == LEN:
            if value_start >= end:
                raise WireError(f"field {number} at byte {pos} runs past the end of its message")
            length = buf[value_start]
            if length < 0x80:
                value_start += 1
            else:
                length, value_start = read_varint(buf, value_start, end)
            field_end = value_start + length
        elif wire == VARINT:
            value, field_end = read_varint(buf, value_start, end)
        elif wire == I64 or wire == I32:
            field_end = value_start + (8 if wire == I64 else 4)
        else:
            raise WireError(f"invalid field tag {tag} at byte {pos}")
        if number == 0:
            raise WireError(f"invalid field tag {tag} at byte {pos}")
        if field_end > end:
            raise WireError(f"field {number} at byte {pos} runs past the end of its message")
        yield number, wire, pos, value_start, field_end, value
        pos = field_end


def chunks_size(chunks: list[Chunk]) -> int:
    return sum(len(chunk) for chunk in chunks)


TensorVisitor = Callable[[Any, int, int], "list[Chunk] | None"]


def rewrite(buf: Any, start: int, end: int, visit: TensorVisitor, *, message: str = MODEL,
            threshold: int = 0, needle: bytes | None = None, depth: int = 0) -> list[Chunk] | None:
    """Re-encode the message in ``buf[start:end]`` with ``visit`` applied to every tensor in it.

    ``visit(buf, start, end)`` returns a tensor's new chunks, or None to keep it as
    it is. Submessages smaller than ``threshold`` bytes, or (for bytes ``buf``) without
    ``needle`` in them, are copied without a look. Returns the message's new chunks,
    or None when nothing in it changed.

    Raises:
        WireError: the bytes are not a well-formed message, or nest deeper than protobuf parses.
        UnsafeFileError: messages nest deeper than `limits.NESTING`.
    """
    if depth > limits.NESTING.value:
        raise limits.NESTING.refusal(depth, "the protobuf message")
    if depth > _PROTOBUF_DEPTH:
        raise WireError(f"messages nest more than {_PROTOBUF_DEPTH} levels deep, more than protobuf parses")
    if message == TENSOR:
        return visit(buf, start, end)
    children = _CHILDREN[message]
    out: list[Chunk] | None = None
    copied = start
    for number, wire, field_start, value_start, field_end, _ in _spans(buf, start, end):
        if wire != LEN or field_end - value_start < threshold or number not in children:
            continue
        if needle is not None and buf.find(needle, value_start, field_end) < 0:
            continue
        inner = rewrite(buf, value_start, field_end, visit, message=children[number], threshold=threshold,
                        needle=needle, depth=depth + 1)
        if inner is None:
            continue
        if out is None:
            out = []
        out.append(buf[copied:field_start])
        out.append(encode_len_header(number, chunks_size(inner)))
        out.extend(inner)
        copied = field_end
    if out is not None:
        out.append(buf[copied:end])
    return out


def looks_like_model(head: bytes, size: int) -> bool:
    """True when ``head`` (a file's first bytes) starts like a serialized ONNX ModelProto.

    Protobufs have no magic number, so every field tag read must be a ModelProto field
    with its wire type, ``ir_version`` must be present and sensible, lengths must fit
    in the file, and a graph starting within ``head`` must start like a GraphProto.
    """
    seen: dict[int, int] = {}
    pos = 0
    try:
        while pos < min(len(head), size):
            tag, value_start = read_varint(head, pos, len(head))
            number, wire = tag >> 3, tag & 7
            if _MODEL_FIELDS.get(number) != wire:
                return False
            if wire == VARINT:
                value, pos = read_varint(head, value_start, len(head))
                seen[number] = value
                continue
            length, value_start = read_varint(head, value_start, len(head))
            if value_start + length > size:
                return False
            if number == 7 and not _starts_like_graph(head, value_start, value_start + length):
                return False
            seen[number] = length
            pos = value_start + length
        return 1 <= seen.get(1, 0) <= _MAX_IR_VERSION and len(seen) >= 2
    except WireError:  # a field cut by the end of ``head``: judge what came before it
        return pos > 0 and 1 <= seen.get(1, 0) <= _MAX_IR_VERSION and len(seen) >= 2


def _starts_like_graph(head: bytes, start: int, end: int) -> bool:
    if start >= len(head) or start == end:
        return True
    tag, _ = read_varint(head, start, min(end, len(head)))
    return _GRAPH_FIELDS.get(tag >> 3) == tag & 7
