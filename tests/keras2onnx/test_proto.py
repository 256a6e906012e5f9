"""The hand-written protobuf encoding: byte-for-byte what onnx's own serializer makes of the same model,
every attribute type ONNX defines, read back from the written file."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from weightkit.keras2onnx import convert_keras
from weightkit.keras2onnx.proto import (
    ATTRIBUTE_TYPES,
    MAX_OPSET,
    Initializer,
    Node,
    OnnxGraph,
    SparseTensor,
    TensorType,
    Typed,
    ValueInfo,
    ir_version,
)


def sample_graph() -> OnnxGraph:
    nodes = [Node("Conv", ["x", "w"], ["c"], "conv", {"pads": [0, -1, 1, 2], "group": 1, "auto_pad": "NOTSET"}),
             Node("LeakyRelu", ["c"], ["y"], "act", {"alpha": 0.1}),
             Node("Resize", ["y", "", "s"], ["z"], "up", {"mode": "nearest"}),
             Node("Clip", ["z", "lo", ""], ["out"], "clip", {})]
    initializers = [Initializer("w", np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)),
                    Initializer("s", np.array([1, 1, 2, 2], np.float32)), Initializer("lo", np.array(0.5, np.float32)),
                    Initializer("axes", np.array([-1, 3], np.int64))]
    return OnnxGraph("sample", nodes, initializers, [ValueInfo("x", ["batch", 3, 5, 5])],
                     [ValueInfo("out", None)], 20, {"source": "test"}, ("weightkit", "0"))


def recurrent_graph() -> OnnxGraph:
    """An LSTM with the string-list attribute every recurrent layer needs (``activations``)."""
    rng = np.random.default_rng(0)
    weights = [Initializer("W", rng.standard_normal((1, 8, 3)).astype(np.float32)),
               Initializer("R", rng.standard_normal((1, 8, 2)).astype(np.float32))]
    attrs = {"hidden_size": 2, "activations": ["HardSigmoid", "Tanh", "Tanh"], "activation_alpha": [0.2],
             "activation_beta": [0.5], "direction": "forward"}
    outputs = [ValueInfo("seq", [4, 1, "batch", 2]), ValueInfo("h", [1, "batch", 2])]
    return OnnxGraph("rnn", [Node("LSTM", ["x", "W", "R"], ["seq", "h"], "lstm", attrs)], weights,
                     [ValueInfo("x", [4, "batch", 3])], outputs, 20)


def onnx_helper_model(graph: OnnxGraph) -> onnx.ModelProto:
    """The same records turned into a ModelProto by onnx.helper alone (nothing of weightkit's encoder)."""
    nodes = [helper.make_node(n.op_type, n.inputs, n.outputs, name=n.name, **n.attrs) for n in graph.nodes]
    initializers = [numpy_helper.from_array(i.array, i.name) for i in graph.initializers]
    inputs = [helper.make_tensor_value_info(i.name, TensorProto.FLOAT, i.dims) for i in graph.inputs]
    outputs = [helper.make_tensor_value_info(o.name, TensorProto.FLOAT, o.dims) for o in graph.outputs]
    model = helper.make_model(helper.make_graph(nodes, graph.name, inputs, outputs, initializers),
                              ir_version=ir_version(graph.opset), opset_imports=[helper.make_opsetid("", graph.opset)],
                              producer_name=graph.producer[0], producer_version=graph.producer[1])
    helper.set_model_props(model, graph.metadata)
    return model


@pytest.mark.parametrize("make", [sample_graph, recurrent_graph])
def test_written_bytes_equal_onnx_serialization(make, tmp_path):
    graph = make()
    graph.write(tmp_path / "m.onnx")
    written = (tmp_path / "m.onnx").read_bytes()
    assert written == onnx_helper_model(graph).SerializeToString()
    assert written == graph.to_proto().SerializeToString()


def test_recurrent_node_runs_from_the_file(tmp_path):
    import onnxruntime

    graph = recurrent_graph()
    graph.write(tmp_path / "rnn.onnx")
    onnx.checker.check_model(str(tmp_path / "rnn.onnx"), full_check=True)
    session = onnxruntime.InferenceSession(str(tmp_path / "rnn.onnx"), providers=["CPUExecutionProvider"])
    sequence, state = session.run(None, {"x": np.ones((4, 2, 3), np.float32)})
    assert sequence.shape == (4, 1, 2, 2) and np.array_equal(sequence[-1], state)


def test_converted_model_written_equals_proto(fixtures, tmp_path):
    result = convert_keras(fixtures / "tfkeras" / "tfk_mobilenetv2_full.h5")
    result.graph.write(tmp_path / "m.onnx")
    assert onnx.load(tmp_path / "m.onnx") == result.model


# ---- attributes, one ONNX type at a time -----------------------------------------------------------------


def _subgraph() -> tuple[OnnxGraph, onnx.GraphProto]:
    ours = OnnxGraph("body", [Node("Add", ["x", "one"], ["y"], "add")], [Initializer("one", np.ones(2, np.float32))],
                     [ValueInfo("x", ["n", 2])], [ValueInfo("y", None)], 20)
    theirs = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"], name="add")], "body",
                               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                               [numpy_helper.from_array(np.ones(2, np.float32), "one")])
    return ours, theirs


def _sparse() -> tuple[SparseTensor, onnx.SparseTensorProto]:
    values, indices = np.array([1.5, -2.0], np.float32), np.array([0, 3], np.int64)
    ours = SparseTensor(Initializer("v", values), Initializer("", indices), [2, 2])
    theirs = helper.make_sparse_tensor(numpy_helper.from_array(values, "v"), numpy_helper.from_array(indices), [2, 2])
    return ours, theirs


def _tensor(array: np.ndarray, name: str = "t") -> tuple[Initializer, TensorProto]:
    return Initializer(name, array), numpy_helper.from_array(array, name or None)


GRAPH, GRAPH_PROTO = _subgraph()
SPARSE, SPARSE_PROTO = _sparse()
TENSOR, TENSOR_PROTO = _tensor(np.arange(6, dtype=np.int32).reshape(2, 3))
TYPE, TYPE_PROTO = TensorType(np.int64, ["batch", 3, None]), helper.make_tensor_type_proto(TensorProto.INT64,
                                                                                             ["batch", 3, None])

#: (ONNX type, weightkit's value, onnx.helper's value): bytes must be equal.
CASES = [
    ("FLOAT", 0.5, 0.5), ("FLOAT", 0.0, 0.0), ("FLOAT", np.float32(0.1), np.float32(0.1)),
    ("FLOAT", -1e40, -1e40),  # past float32: -inf, as protobuf stores it
    ("INT", 7, 7), ("INT", 0, 0), ("INT", -2**63, -2**63), ("INT", 2**63 - 1, 2**63 - 1), ("INT", True, True),
    ("INT", np.int64(-3), np.int64(-3)),
    ("STRING", "NOTSET", "NOTSET"), ("STRING", "", ""), ("STRING", "ключ ✓", "ключ ✓"),
    ("STRING", b"\xff\x00", b"\xff\x00"),
    ("TENSOR", TENSOR, TENSOR_PROTO),
    ("TENSOR", *_tensor(np.array(1.5, np.float16), "")),  # unnamed scalar: no name field, as numpy_helper writes it
    ("TENSOR", *_tensor(np.array([True, False]))),
    ("TENSOR", Initializer("be", np.arange(3, dtype=">i4")), numpy_helper.from_array(np.arange(3, dtype="<i4"), "be")),
    ("GRAPH", GRAPH, GRAPH_PROTO), ("SPARSE_TENSOR", SPARSE, SPARSE_PROTO), ("TYPE_PROTO", TYPE, TYPE_PROTO),
    ("TYPE_PROTO", TensorType(), helper.make_tensor_type_proto(TensorProto.FLOAT, None)),
    ("FLOATS", [1.0, -2.5], [1.0, -2.5]), ("FLOATS", (1, 0.5), (1, 0.5)),
    ("FLOATS", Typed("FLOATS", [1, 2]), [1.0, 2.0]),
    ("INTS", [1, -2, 2**40], [1, -2, 2**40]), ("INTS", (0, 2, 1, 3), (0, 2, 1, 3)), ("INTS", [True, 0], [1, 0]),
    ("STRINGS", ["Sigmoid", "Tanh", "Tanh"], ["Sigmoid", "Tanh", "Tanh"]), ("STRINGS", ["a", b"\xff"], ["a", b"\xff"]),
    ("TENSORS", [TENSOR, TENSOR], [TENSOR_PROTO, TENSOR_PROTO]), ("GRAPHS", [GRAPH, GRAPH], [GRAPH_PROTO, GRAPH_PROTO]),
    ("SPARSE_TENSORS", [SPARSE, SPARSE], [SPARSE_PROTO, SPARSE_PROTO]),
    ("TYPE_PROTOS", [TYPE, TensorType(np.bool_, [])],
     [TYPE_PROTO, helper.make_tensor_type_proto(TensorProto.BOOL, [])]),
    *((kind, Typed(kind, []), None) for kind in
      ("FLOATS", "INTS", "STRINGS", "TENSORS", "GRAPHS", "SPARSE_TENSORS", "TYPE_PROTOS")),
]


def written_attribute(value, tmp_path) -> AttributeProto:
    """The attribute as read back by onnx from a file weightkit wrote."""
    graph = OnnxGraph("g", [Node("Custom", [], ["y"], "n", {"key": value})], [], [], [ValueInfo("y", None)], 20)
    graph.write(tmp_path / "a.onnx")
    return onnx.load(tmp_path / "a.onnx").graph.node[0].attribute[0]


@pytest.mark.parametrize("kind, ours, theirs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_attribute_bytes_equal_onnx_helper(kind, ours, theirs, tmp_path):
    expected = (helper.make_attribute("key", theirs) if theirs is not None
                else helper.make_attribute("key", [], attr_type=ATTRIBUTE_TYPES[kind]))
    found = written_attribute(ours, tmp_path)
    assert found.type == getattr(AttributeProto, kind)
    assert found.SerializeToString() == expected.SerializeToString()


def test_every_onnx_attribute_type_is_covered():
    onnx_types = {name: number for name, number in AttributeProto.AttributeType.items() if name != "UNDEFINED"}
    assert ATTRIBUTE_TYPES == onnx_types
    assert {kind for kind, _, _ in CASES} == set(onnx_types)


@pytest.mark.parametrize("value, message", [
    (None, "cannot encode a NoneType"),
    (np.array([1, 2]), "numpy array is ambiguous"),
    (np.array(1.0), "numpy array is ambiguous"),
    ([], r"empty list has no type; spell it out, e.g. Typed\('INTS', \[\]\)"),
    ([1, "a"], "a list of int and str has no ONNX type"),
    ([[1, 2]], "a list of list has no ONNX type"),
    ({"a": 1}, "cannot encode a dict"),
    (Typed("FLOAT", [1.0]), "not a number"),
    (Typed("INTS", [1.5]), "1.5 is not an integer"),
    (Typed("STRINGS", "abc"), "a STRINGS value is a list or tuple"),
    (Typed("TENSOR", np.zeros(2)), "ndarray is not a Initializer"),
    (Typed("DOUBLE", 1.0), "no ONNX attribute type 'DOUBLE'"),
    (Initializer("s", np.array(["a"])), "raw data cannot hold <U1"),
    (TensorType(object), "no ONNX element type"),
])
def test_values_without_one_onnx_type_are_refused_when_the_node_is_made(value, message):
    with pytest.raises(TypeError, match=message):
        Node("Custom", [], ["y"], "n", {"key": value})


@pytest.mark.parametrize("value", [2**63, -2**63 - 1, Typed("INTS", [2**64])])
def test_ints_beyond_int64_are_refused(value):
    with pytest.raises(ValueError, match="does not fit in int64"):
        Node("Custom", [], ["y"], "n", {"key": value})


# ---- external data, IR versions ------------------------------------------------------------------------


def test_external_data_is_aligned_and_loads(tmp_path):
    graph = sample_graph()
    graph.initializers.append(Initializer("big", np.random.default_rng(0).standard_normal((40, 40)).astype(np.float32)))
    graph.write(tmp_path / "m.onnx", "m.onnx.data")
    model = onnx.load(tmp_path / "m.onnx")
    big = next(t for t in model.graph.initializer if t.name == "big")
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(big), graph.initializers[-1].array)
    offset = int(next(e.value for e in onnx.load(tmp_path / "m.onnx", load_external_data=False)
                      .graph.initializer[-1].external_data if e.key == "offset"))
    assert offset % 4096 == 0


@pytest.mark.parametrize("opset", range(13, MAX_OPSET + 1))
def test_ir_versions_match_onnx(opset):
    assert ir_version(opset) == onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
