"""weightkit.formats._parsers.protobuf: the one protobuf encoder, field by field against protobuf's own
serializer (onnx's message classes), and the wire reader on what the encoder wrote."""

from __future__ import annotations

import math
import struct

import pytest
from google.protobuf import wrappers_pb2
from onnx import AttributeProto, StringStringEntryProto, TensorProto, TensorShapeProto, helper

from weightkit.formats._parsers import protobuf as wire

INT64_CASES = [0, 1, 127, 128, 300, 16383, 16384, 2**31 - 1, 2**31, 2**62, 2**63 - 1, -1, -2, -128, -2**31,
               -2**63]


# ---- varints ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", INT64_CASES)
def test_int64_varint_field_matches_onnx(value):
    """A TensorShapeProto.Dimension's ``dim_value`` (int64 in a oneof, so 0 is written too): negatives take
    ten bytes, as in protobuf."""
    expected = TensorShapeProto.Dimension(dim_value=value).SerializeToString()
    assert wire.encode_int_field(1, value) == expected
    assert wire.encode_varint(value) == wire.encode_int_field(1, value)[1:]


@pytest.mark.parametrize("value, encoded", [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"),
                                            (2**63, b"\x80" * 9 + b"\x01"), (2**64 - 1, b"\xff" * 9 + b"\x01"),
                                            (-1, b"\xff" * 9 + b"\x01")])
def test_varint_bytes(value, encoded):
    assert wire.encode_varint(value) == encoded


@pytest.mark.parametrize("value", [0, 127, 128, 2**32, 2**63, 2**64 - 1])
def test_uint64_varint_matches_protobuf(value):
    expected = wrappers_pb2.UInt64Value(value=value).SerializeToString()
    assert (wire.encode_int_field(1, value) if value else b"") == expected


@pytest.mark.parametrize("value", [2**64, -2**63 - 1])
def test_varint_refuses_numbers_over_64_bits(value):
    with pytest.raises(ValueError, match="64 bits"):
        wire.encode_varint(value)


def test_repeated_int64_dims_match_onnx():
    """TensorProto.dims (repeated int64, field 1) is written unpacked by onnx: one varint field per dim."""
    dims = [0, 1, 127, 128, 2**40, -1]
    expected = TensorProto(dims=dims).SerializeToString()
    assert b"".join(wire.encode_int_field(1, d) for d in dims) == expected


# ---- tags ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number, wire_type, encoded", [(1, wire.VARINT, b"\x08"), (2, wire.LEN, b"\x12"),
                                                        (15, wire.I32, b"\x7d"), (16, wire.VARINT, b"\x80\x01"),
                                                        (20, wire.VARINT, b"\xa0\x01"), (9, wire.I64, b"\x49"),
                                                        (2**29 - 1, wire.LEN, b"\xfa\xff\xff\xff\x0f")])
def test_tags(number, wire_type, encoded):
    assert wire.encode_tag(number, wire_type) == encoded


def test_two_byte_tag_matches_onnx():
    """AttributeProto.type is field 20: its tag takes two bytes."""
    attribute = AttributeProto(name="k", i=-3, type=AttributeProto.INT)
    expected = attribute.SerializeToString()
    assert wire.encode_string_field(1, "k") + wire.encode_int_field(3, -3) + wire.encode_int_field(20, 2) == expected


# ---- length-delimited -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key, value", [("k", "v"), ("location", "model.onnx.data"), ("ключ", "値 ✓"),
                                        ("long", "x" * 127), ("longer", "y" * 128), ("big", "z" * 70000)])
def test_string_fields_match_onnx(key, value):
    expected = StringStringEntryProto(key=key, value=value).SerializeToString()
    assert wire.encode_string_field(1, key) + wire.encode_string_field(2, value) == expected


def test_nested_messages_and_bytes_match_onnx():
    payload = bytes(range(256)) * 3
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3, 64], raw_data=payload)
    tensor.external_data.add(key="location", value="w.bin")
    expected = tensor.SerializeToString()
    entry = wire.encode_string_field(1, "location") + wire.encode_string_field(2, "w.bin")
    mine = (wire.encode_int_field(1, 3) + wire.encode_int_field(1, 64) + wire.encode_int_field(2, TensorProto.FLOAT)
            + wire.encode_string_field(8, "w") + wire.encode_len_field(9, payload) + wire.encode_len_field(13, entry))
    assert mine == expected
    assert wire.encode_len_header(9, len(payload)) + payload == wire.encode_len_field(9, payload)


def test_packed_floats_match_onnx():
    values = [1.0, -2.5, 3.25]
    expected = TensorProto(float_data=values).SerializeToString()
    assert wire.encode_len_field(4, struct.pack("<3f", *values)) == expected


def test_a_node_matches_onnx():
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[0, -1, 1, 2], alpha=0.5, mode="same")
    attributes = sorted(node.attribute, key=lambda a: a.name)
    del node.attribute[:]
    node.attribute.extend(attributes)
    alpha = wire.encode_string_field(1, "alpha") + wire.encode_float_field(2, 0.5) + wire.encode_int_field(20, 1)
    mode = wire.encode_string_field(1, "mode") + wire.encode_len_field(4, b"same") + wire.encode_int_field(20, 3)
    pads = wire.encode_string_field(1, "pads") + b"".join(wire.encode_int_field(8, p) for p in [0, -1, 1, 2])
    pads += wire.encode_int_field(20, 7)
    mine = (wire.encode_string_field(1, "x") + wire.encode_string_field(1, "w") + wire.encode_string_field(2, "y")
            + wire.encode_string_field(3, "conv") + wire.encode_string_field(4, "Conv")
            + b"".join(wire.encode_len_field(5, a) for a in (alpha, mode, pads)))
    assert mine == node.SerializeToString()


# ---- floats ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.1, -0.1, 1.0, 1e-45, 1e-38, 3.4028234663852886e38, math.inf, -math.inf, -0.0])
def test_float_fields_match_onnx(value):
    expected = AttributeProto(f=value).SerializeToString()
    assert wire.encode_float_field(2, value) == expected


@pytest.mark.parametrize("value", [3.40282356e38, 3.4028236e38, 1e39, -1e39, 1e308, -1e308])
def test_doubles_beyond_float32_round_as_protobuf_does(value):
    """Just above FLT_MAX rounds down to it; further out becomes an infinity of the value's sign
    (``struct.pack`` alone raises OverflowError)."""
    expected = AttributeProto(f=value).SerializeToString()
    assert wire.encode_float_field(2, value) == expected


def test_float_nan():
    assert wire.encode_float_field(2, math.nan)[1:] == struct.pack("<f", math.nan)
    assert math.isnan(AttributeProto.FromString(wire.encode_float_field(2, math.nan)).f)


# ---- the reader on what the encoder wrote -----------------------------------------------------------------


@pytest.mark.parametrize("value", [*INT64_CASES, 2**63, 2**64 - 1])
def test_read_varint_reads_back(value):
    encoded = b"\x99" + wire.encode_varint(value) + b"\x99"
    decoded, end = wire.read_varint(encoded, 1, len(encoded))
    assert decoded == value % 2**64 and end == len(encoded) - 1


def test_fields_read_back_what_was_encoded():
    message = (wire.encode_int_field(1, 7) + wire.encode_int_field(20, -1) + wire.encode_string_field(2, "name")
               + wire.encode_float_field(3, 0.25) + wire.encode_len_field(300, b"\x00" * 200))
    found = list(wire.fields(message, 0, len(message)))
    assert [(f.number, f.wire) for f in found] == [(1, wire.VARINT), (20, wire.VARINT), (2, wire.LEN),
                                                   (3, wire.I32), (300, wire.LEN)]
    assert found[0].value == 7 and found[1].value == 2**64 - 1
    assert message[found[2].value_start:found[2].end] == b"name"
    assert struct.unpack("<f", message[found[3].value_start:found[3].end]) == (0.25,)
    assert found[4].end - found[4].value_start == 200 and found[4].end == len(message)
    assert [f.start for f in found[1:]] == [f.end for f in found[:-1]]


def test_reader_reads_a_model_onnx_wrote_with_the_encoder_s_bytes():
    graph = helper.make_graph([], "g", [], [])
    model = helper.make_model(graph, producer_name="weightkit")
    data = model.SerializeToString()
    assert wire.looks_like_model(data, len(data))
    first = next(wire.fields(data, 0, len(data)))
    assert (first.number, first.value) == (1, model.ir_version)
    assert data.startswith(wire.encode_int_field(1, model.ir_version) + wire.encode_string_field(2, "weightkit"))


@pytest.mark.parametrize("broken", [wire.encode_string_field(2, "name")[:-1], wire.encode_int_field(1, 2**40)[:-1],
                                    b"\x08" + b"\xff" * 11, b"\x00\x01"],
                         ids=["truncated-string", "truncated-varint", "overlong-varint", "field-zero"])
def test_reader_refuses_broken_fields(broken):
    with pytest.raises(wire.WireError):
        list(wire.fields(broken, 0, len(broken)))
