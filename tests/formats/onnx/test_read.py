"""ONNX models read as onnx itself reads them: layers, weights wherever they live, metadata, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import weightkit
from weightkit.cli import main
from weightkit.errors import FileFormatError
from weightkit.formats import detect
from weightkit.formats._parsers import protobuf as _onnx_wire
from weightkit.model import Model
from weightkit.ops.inspect import inspect_document

RNG = np.random.default_rng(0)


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _save(proto: onnx.ModelProto, path: Path, check: bool = True) -> Path:
    if check:
        onnx.checker.check_model(proto)
    onnx.save_model(proto, path)
    return path


def _model(nodes, inputs, outputs, initializers=(), opset=21, **kwargs) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kwargs)


def _value(name: str, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def onnx_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every initializer and Constant value of a model, subgraphs included, as onnx reads them."""
    model = onnx.load(path)
    arrays: dict[str, np.ndarray] = {}

    def walk(graph) -> None:
        for init in graph.initializer:
            arrays[init.name] = numpy_helper.to_array(init, str(path.parent))
        for node in graph.node:
            for attr in node.attribute:
                if node.op_type == "Constant" and attr.name == "value":
                    arrays[node.output[0]] = numpy_helper.to_array(attr.t, str(path.parent))
                elif node.op_type == "Constant" and attr.name.startswith("value_"):
                    arrays[node.output[0]] = np.asarray(helper.get_attribute_value(attr))
                for graph_ in [attr.g] if attr.type == attr.GRAPH else list(attr.graphs):
                    walk(graph_)

    walk(model.graph)
    return arrays


def assert_reads_like_onnx(model: Model, path: Path) -> int:
    """Every tensor weightkit found has onnx's bytes, shape and dtype; returns how many were compared."""
    expected = onnx_arrays(path)
    tensors = model.tensors() + [t for group in model.extras.values() for t in group]
    compared = 0
    for tensor in tensors:
        if tensor.loader is None or tensor.name not in expected:
            continue
        ours, theirs = tensor.read(), expected[tensor.name]
        assert ours.shape == theirs.shape == tensor.shape, tensor.name
        if theirs.dtype != object:
            assert ours.dtype == theirs.dtype, tensor.name
            assert ours.tobytes() == theirs.tobytes(), tensor.name
        compared += 1
    return compared


def mlp(path: Path) -> Path:
    w1, b1, w2 = _f32(4, 8), _f32(8), _f32(3, 8)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Add", ["h", "b1"], ["hb"], name="fc1_bias"),
             helper.make_node("Relu", ["hb"], ["r"]),
             helper.make_node("Gemm", ["r", "w2"], ["y"], name="fc2", transB=1)]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"))]
    return _save(_model(nodes, [_value("x", ["batch", 4])], [_value("y", ["batch", 3])], inits,
                        producer_name="tests", producer_version="1.0", doc_string="a small MLP\nfor tests",
                        model_version=7, domain="org.example"), path / "mlp.onnx")


# --------------------------------------------------------------------------- recognising files

def test_sniff_accepts_models_and_nothing_else(tmp_path):
    assert detect(mlp(tmp_path))[0].name == "onnx"
    tensor = tmp_path / "input_0.pb"
    tensor.write_bytes(numpy_helper.from_array(_f32(3, 4), "x").SerializeToString())
    text = tmp_path / "notes.txt"
    text.write_text("(this is not a model) " * 50)
    noise = tmp_path / "noise.bin"
    noise.write_bytes(np.random.default_rng(1).bytes(5000))
    for path in (tensor, text, noise):
        with pytest.raises(FileFormatError, match="not a weight file|not a"):
            weightkit.load(path)


def test_sniff_rejects_random_heads():
    rng = np.random.default_rng(2)
    claimed = sum(_onnx_wire.looks_like_model(rng.bytes(256), 10**6) for _ in range(20000))
    assert claimed == 0


def test_sniff_needs_ir_version_and_model_fields(tmp_path):
    path = mlp(tmp_path)
    head = path.read_bytes()
    assert _onnx_wire.looks_like_model(head[:4096], len(head))
    assert not _onnx_wire.looks_like_model(head[2:4096], len(head))
    assert not _onnx_wire.looks_like_model(b"\x08\x07", 2)  # an ir_version alone is not a model
    graph_only = helper.make_graph([], "g", [], []).SerializeToString()
    assert not _onnx_wire.looks_like_model(graph_only, len(graph_only))


# --------------------------------------------------------------------------- layers and metadata

def test_mlp_layers_roles_layouts_and_bias_fusion(tmp_path):
    path = mlp(tmp_path)
    with weightkit.load(path) as model:
        assert model.format == "onnx" and model.framework == "onnx" and model.has_graph
        assert model.framework_version == "21"
        assert [layer.name for layer in model.layers] == ["fc1", "Relu_2", "fc2"]
        fc1, relu, fc2 = model.layers
        assert fc1.kind == "dense" and fc1.type_name == "MatMul"
        assert {role: (t.name, t.layout) for role, t in fc1.tensors.items()} == {
            "weight": ("w1", "IO"), "bias": ("b1", None)}
        assert fc1.config["folded"] == ["fc1_bias"]
        assert relu.kind == "relu" and relu.inbound == ["fc1"]
        assert fc2.kind == "dense" and fc2.tensors["weight"].layout == "OI" and fc2.inbound == ["Relu_2"]
        assert fc2.config["attributes"]["transB"] == 1
        assert assert_reads_like_onnx(model, path) == 3


def test_metadata_inputs_outputs(tmp_path):
    path = mlp(tmp_path)
    model_proto = onnx.load(path)
    helper.set_model_props(model_proto, {"author": "me", "license": "MIT"})
    model_proto.opset_import.append(helper.make_opsetid("com.example", 3))
    onnx.save_model(model_proto, path)
    with weightkit.load(path) as model:
        meta = model.metadata
        assert meta["writer"] == "tests 1.0"
        assert meta["producer"] == {"name": "tests", "version": "1.0"}
        assert meta["ir_version"] == model_proto.ir_version
        assert meta["opsets"] == {"ai.onnx": 21, "com.example": 3}
        assert meta["model_domain"] == "org.example" and meta["model_version"] == 7
        assert meta["doc_string"] == "a small MLP for tests"
        assert meta["metadata_props"] == {"author": "me", "license": "MIT"}
        assert meta["op_histogram"] == {"MatMul": 1, "Add": 1, "Relu": 1, "Gemm": 1}
        json.dumps(meta)
        assert [(s.name, s.shape, s.dtype) for s in model.inputs] == [("x", ("batch", 4), "float32")]
        assert [(s.name, s.shape, s.dtype) for s in model.outputs] == [("y", ("batch", 3), "float32")]


def test_unknown_dims_and_non_tensor_types(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.INT64, ["n", None, 3])
    y.type.tensor_type.shape.dim[1].Clear()
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Shape", ["x"], ["y"]), helper.make_node("SequenceConstruct", ["x"], ["s"])]
    path = _save(_model(nodes, [x], [y, seq]), tmp_path / "m.onnx", check=False)
    with weightkit.load(path) as model:
        assert model.inputs[0].shape is None and model.inputs[0].dtype == "float32"
        assert model.outputs[0].shape == ("n", None, 3) and model.outputs[0].dtype == "int64"
        assert model.outputs[1].shape is None and model.outputs[1].dtype == "sequence"


def test_conv_bn_and_friends(tmp_path):
    conv_w, conv_b = _f32(8, 3, 3, 3), _f32(8)
    dw = _f32(8, 1, 3, 3)
    bn = [np.abs(_f32(8)) + 0.5 for _ in range(4)]
    conv1d, conv3d, deconv = _f32(4, 8, 3), _f32(2, 8, 1, 1, 1), _f32(8, 5, 2, 2)
    prelu, ln_s, ln_b = _f32(8, 1, 1), _f32(6), _f32(6)
    emb = _f32(10, 6)
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="bn"),
        helper.make_node("Conv", ["n", "dw"], ["d"], name="dw", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["d", "slope"], ["p"], name="prelu"),
        helper.make_node("ConvTranspose", ["p", "deconv"], ["t"], name="deconv"),
        helper.make_node("InstanceNormalization", ["t", "s5", "b5"], ["i"], name="inorm"),
        helper.make_node("Gather", ["emb", "tok"], ["e"], name="embedding"),
        helper.make_node("LayerNormalization", ["e", "lns", "lnb"], ["l"], name="ln", axis=-1),
        helper.make_node("Conv", ["x1", "c1"], ["o1"], name="conv1d"),
        helper.make_node("Conv", ["x3", "c3"], ["o3"], name="conv3d"),
    ]
    arrays = {"cw": conv_w, "cb": conv_b, "s": bn[0], "b": bn[1], "m": bn[2], "v": bn[3], "dw": dw, "slope": prelu,
              "deconv": deconv, "s5": _f32(5), "b5": _f32(5), "emb": emb, "lns": ln_s, "lnb": ln_b,
              "c1": conv1d, "c3": conv3d}
    inits = [numpy_helper.from_array(a, n) for n, a in arrays.items()]
    inputs = [_value("x", [1, 3, 8, 8]), helper.make_tensor_value_info("tok", TensorProto.INT64, [2]),
              _value("x1", [1, 8, 10]), _value("x3", [1, 8, 2, 2, 2])]
    outputs = [_value("i", None), _value("l", None), _value("o1", None), _value("o3", None)]
    path = _save(_model(nodes, inputs, outputs, inits), tmp_path / "cnn.onnx", check=False)
    with weightkit.load(path) as model:
        layers = {layer.name: layer for layer in model.layers}
        summary = {name: (layer.kind, {r: (t.name, t.layout) for r, t in layer.tensors.items()})
                   for name, layer in layers.items()}
        assert summary == {
            "conv": ("conv2d", {"weight": ("cw", "OIHW"), "bias": ("cb", None)}),
            "bn": ("batch_norm", {"weight": ("s", None), "bias": ("b", None), "running_mean": ("m", None),
                                  "running_var": ("v", None)}),
            "dw": ("depthwise_conv2d", {"weight": ("dw", "OIHW")}),
            "prelu": ("prelu", {"weight": ("slope", None)}),
            "deconv": ("conv_transpose2d", {"weight": ("deconv", "IOHW")}),
            "inorm": ("instance_norm", {"weight": ("s5", None), "bias": ("b5", None)}),
            "embedding": ("embedding", {"weight": ("emb", None)}),
            "ln": ("layer_norm", {"weight": ("lns", None), "bias": ("lnb", None)}),
            "conv1d": ("conv1d", {"weight": ("c1", "OIW")}),
            "conv3d": ("conv3d", {"weight": ("c3", "OIDHW")}),
        }
        assert layers["bn"].tensors["running_mean"].trainable is False
        assert layers["bn"].inbound == ["conv"] and layers["dw"].inbound == ["bn"]
        assert assert_reads_like_onnx(model, path) == len(arrays)


def test_recurrent_layers(tmp_path):
    hidden, size = 5, 3
    arrays = {"W": _f32(1, 4 * hidden, size), "R": _f32(1, 4 * hidden, hidden), "B": _f32(1, 8 * hidden),
              "gW": _f32(2, 3 * hidden, size), "gR": _f32(2, 3 * hidden, hidden),
              "rW": _f32(1, hidden, size), "rR": _f32(1, hidden, hidden)}
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B"], ["y"], name="lstm", hidden_size=hidden),
             helper.make_node("GRU", ["x", "gW", "gR"], ["g"], name="gru", hidden_size=hidden,
                              direction="bidirectional"),
             helper.make_node("RNN", ["x", "rW", "rR"], ["r"], name="rnn", hidden_size=hidden)]
    inits = [numpy_helper.from_array(a, n) for n, a in arrays.items()]
    model = _model(nodes, [_value("x", [2, 1, size])], [_value(n, None) for n in "ygr"], inits)
    path = _save(model, tmp_path / "r.onnx", check=False)
    with weightkit.load(path) as model:
        kinds = {layer.name: (layer.kind, sorted(layer.tensors)) for layer in model.layers}
        assert kinds == {"lstm": ("lstm", ["bias", "recurrent_weight", "weight"]),
                         "gru": ("gru", ["recurrent_weight", "weight"]),
                         "rnn": ("rnn", ["recurrent_weight", "weight"])}
        assert "gates in order i, o, f, c" in model.layer("lstm").tensors["weight"].note
        assert assert_reads_like_onnx(model, path) == len(arrays)


def test_generic_nodes_keep_op_type_and_constant_inputs(tmp_path):
    """Float constants are tensors of the layer; integer operands (shapes, axes) are part of its config."""
    scale = _f32(1, 4)
    nodes = [helper.make_node("Mul", ["x", "scale"], ["m"]),
             helper.make_node("Add", ["m", "shift"], ["a"], name="add_shift"),
             helper.make_node("Reshape", ["a", "shape"], ["r"], name="reshape")]
    inits = [numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(_f32(2, 4), "shift"),
             numpy_helper.from_array(np.array([8], np.int64), "shape")]
    path = _save(_model(nodes, [_value("x", [2, 4])], [_value("r", [8])], inits), tmp_path / "g.onnx")
    with weightkit.load(path) as model:
        mul, add, reshape = model.layers
        assert (mul.name, mul.kind, list(mul.tensors)) == ("Mul_0", "mul", ["b"])
        assert (add.kind, list(add.tensors), add.inbound) == ("add", ["b"], ["Mul_0"])
        assert (reshape.kind, reshape.tensors, reshape.config["constants"]) == ("reshape", {}, {"shape": [8]})


def test_shared_weight_belongs_to_its_weight_user(tmp_path):
    """A constant read first by Shape and then as a Conv's W belongs to the Conv."""
    w = _f32(4, 3, 1, 1)
    nodes = [helper.make_node("Shape", ["w"], ["s"], name="shape_of_w"),
             helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Conv", ["c", "w2"], ["c2"], name="conv2"),
             helper.make_node("Conv", ["c2", "w2"], ["c3"], name="conv3")]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(_f32(4, 4, 1, 1), "w2")]
    outputs = [helper.make_tensor_value_info("s", TensorProto.INT64, [4]), _value("c3", [1, 4, 2, 2])]
    path = _save(_model(nodes, [_value("x", [1, 3, 2, 2])], outputs, inits), tmp_path / "s.onnx")
    with weightkit.load(path) as model:
        layers = {layer.name: layer for layer in model.layers}
        assert not layers["shape_of_w"].tensors and layers["shape_of_w"].config["shared"] == {"data": "w"}
        assert layers["conv"].tensors["weight"].name == "w"
        assert layers["conv2"].tensors["weight"].name == "w2"
        assert layers["conv3"].config["shared"] == {"weight": "w2"} and not layers["conv3"].tensors
        assert len(model.tensors()) == 2


def test_constant_nodes_of_every_kind(tmp_path):
    w = _f32(2, 2)
    nodes = [
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w)),
        helper.make_node("Constant", [], ["f"], value_float=0.5),
        helper.make_node("Constant", [], ["fs"], value_floats=[1.0, 2.0]),
        helper.make_node("Constant", [], ["i"], value_int=3),
        helper.make_node("Constant", [], ["is"], value_ints=[4, 5]),
        helper.make_node("Constant", [], ["unused"], value_ints=[9]),
        helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
        helper.make_node("Mul", ["y", "f"], ["y1"], name="mul"),
        helper.make_node("Add", ["y1", "fs"], ["y2"], name="add"),
        helper.make_node("Reshape", ["y2", "is"], ["y3"], name="reshape"),
        helper.make_node("Unsqueeze", ["y3", "i"], ["y4"], name="unsqueeze"),
    ]
    path = _save(_model(nodes, [_value("x", [2, 2])], [_value("y4", None)]), tmp_path / "c.onnx", check=False)
    with weightkit.load(path) as model:
        layers = {layer.name: layer for layer in model.layers}
        assert "Constant_0" not in layers
        assert layers["mm"].kind == "dense" and layers["mm"].tensors["weight"].read().tobytes() == w.tobytes()
        assert layers["mul"].tensors["b"].read() == np.float32(0.5) and layers["mul"].tensors["b"].shape == ()
        assert layers["add"].tensors["b"].read().tolist() == [1.0, 2.0]
        assert layers["reshape"].config["constants"] == {"shape": [4, 5]}
        assert layers["unsqueeze"].config["constants"] == {"axes": 3}
        assert [t.name for t in model.extras["unused_constants"]] == ["unused"]
        assert model.metadata["op_histogram"]["Constant"] == 6


def _if_model(depth: int, path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Nested If nodes, each branch holding a weight as an initializer and one as a Constant node."""
    arrays: dict[str, np.ndarray] = {}

    def branch(level: int, side: str, prefix: str = "") -> onnx.GraphProto:
        side = prefix + side
        init_name, const_name = f"w_{side}{level}", f"k_{side}{level}"
        arrays[init_name], arrays[const_name] = _f32(3, 3), _f32(3)
        nodes = [helper.make_node("Constant", [], [const_name], value=numpy_helper.from_array(arrays[const_name])),
                 helper.make_node("MatMul", ["x", init_name], [f"m_{side}{level}"], name=f"mm_{side}{level}"),
                 helper.make_node("Add", [f"m_{side}{level}", const_name], [f"out_{side}{level}"],
                                  name=f"add_{side}{level}")]
        if level < depth:
            nodes.append(helper.make_node("If", ["cond"], [f"deep_{side}{level}"], name=f"if_{side}{level}",
                                          then_branch=branch(level + 1, "t", side),
                                          else_branch=branch(level + 1, "e", side)))
            nodes.append(helper.make_node("Add", [f"out_{side}{level}", f"deep_{side}{level}"], [f"sum_{side}{level}"]))
            result = f"sum_{side}{level}"
        else:
            result = f"out_{side}{level}"
        nodes.append(helper.make_node("Identity", [result], [f"res_{side}{level}"]))
        return helper.make_graph(nodes, f"b_{side}{level}", [], [_value(f"res_{side}{level}", [1, 3])],
                                 [numpy_helper.from_array(arrays[init_name], init_name)])

    nodes = [helper.make_node("If", ["cond"], ["y"], name="top",
                              then_branch=branch(1, "t"), else_branch=branch(1, "e"))]
    inputs = [_value("x", [1, 3]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])]
    return _save(_model(nodes, inputs, [_value("y", [1, 3])]), path), arrays


def test_weights_inside_nested_subgraphs(tmp_path):
    path, arrays = _if_model(3, tmp_path / "if.onnx")
    with weightkit.load(path) as model:
        names = {t.name for t in model.tensors()}
        assert names == set(arrays)
        assert assert_reads_like_onnx(model, path) == len(arrays)
        deep = model.layer("top/then_branch/if_t1/else_branch/if_te2/then_branch/mm_tet3")
        assert deep.kind == "dense"
        assert deep.tensors["weight"].name == "w_tet3" and deep.tensors["bias"].name == "k_tet3"
        assert model.layer("top/then_branch").kind == "subgraph"
        assert model.metadata["op_histogram"]["If"] == 1 + 2 + 4
        import onnxruntime as ort

        x = _f32(1, 3)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (y,) = session.run(None, {"x": x, "cond": np.array(True)})
        expected = x @ arrays["w_t1"] + arrays["k_t1"] + (x @ arrays["w_tt2"] + arrays["k_tt2"]
                                                          + x @ arrays["w_ttt3"] + arrays["k_ttt3"])
        np.testing.assert_allclose(y, expected, rtol=1e-5)


def test_loop_body_reads_outer_weights(tmp_path):
    w = _f32(3, 3)
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("MatMul", ["state", "w"], ["next"], name="step")],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []), _value("state", [1, 3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), _value("next", [1, 3])])
    trips = numpy_helper.from_array(np.array(2, np.int64), "trips")
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Loop", ["trips", "", "r"], ["y"], name="loop", body=body)]
    path = _save(_model(nodes, [_value("x", [1, 3])], [_value("y", [1, 3])], [numpy_helper.from_array(w, "w"), trips]),
                 tmp_path / "loop.onnx")
    with weightkit.load(path) as model:
        step = model.layer("loop/body/step")
        assert step.tensors["weight"].name == "w" and step.inbound == []
        assert model.layer("loop").config["constants"] == {"m": 2} and model.layer("loop").inbound == ["relu"]


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.int8, np.uint8, np.int16, np.uint16, np.int32,
                                   np.uint32, np.int64, np.uint64, np.float64, np.bool_, np.complex64, np.complex128,
                                   ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.float8_e4m3fnuz,
                                   ml_dtypes.float8_e5m2fnuz, ml_dtypes.float8_e8m0fnu, ml_dtypes.int4,
                                   ml_dtypes.uint4, ml_dtypes.float4_e2m1fn, ml_dtypes.int2, ml_dtypes.uint2])
@pytest.mark.parametrize("size", [3, 5000], ids=["inline", "in-file"])
@pytest.mark.parametrize("raw", [True, False], ids=["raw_data", "typed"])
def test_every_element_type_in_raw_and_typed_fields(tmp_path, dtype, size, raw):
    values = (RNG.standard_normal(size) * 3).astype(np.float32)
    if dtype in (ml_dtypes.uint4, ml_dtypes.uint2, np.uint8, np.uint16, np.uint32, np.uint64, ml_dtypes.float8_e8m0fnu):
        values = np.abs(values)
    two_bit = dtype in (ml_dtypes.int2, ml_dtypes.uint2)
    array = np.clip(values, -1, 1).astype(dtype) if two_bit else values.astype(dtype)
    code = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    if raw:
        tensor = numpy_helper.from_array(array, "t")
    else:
        tensor = helper.make_tensor("t", code, array.shape, array.tolist() if array.dtype.kind in "biufc" else
                                    array.astype(np.float32).tolist())
    path = _save(_model([], [], [helper.make_tensor_value_info("t", code, None)], [tensor]), tmp_path / "t.onnx",
                 check=False)
    expected = numpy_helper.to_array(onnx.load(path).graph.initializer[0])
    with weightkit.load(path) as model:
        (found,) = model.extras["unused_constants"]
        data = found.read()
        assert found.dtype == np.dtype(dtype).name
        assert data.dtype == expected.dtype and data.tobytes() == expected.tobytes()


def test_big_typed_float_data_is_not_loaded_until_read(tmp_path):
    """Typed float_data (as onnxmltools writes it) of a big tensor stays in the file too."""
    array = _f32(100, 100)
    tensor = helper.make_tensor("w", TensorProto.FLOAT, array.shape, array.ravel().tolist())
    path = _save(_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_value("x", [1, 100])],
                        [_value("y", [1, 100])], [tensor]), tmp_path / "f.onnx")
    with weightkit.load(path) as model:
        assert len(model.graph.SerializeToString()) < 1000
        assert model.tensors()[0].read().tobytes() == array.tobytes()


def test_tensor_bytes_are_read_lazily(tmp_path):
    """Change the payload on disk after loading: the read sees the new bytes, so nothing was read before."""
    w = np.zeros((64, 64), np.float32)
    path = _save(_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_value("x", [1, 64])], [_value("y", [1, 64])],
                        [numpy_helper.from_array(w, "w")]), tmp_path / "lazy.onnx")
    data = bytearray(path.read_bytes())
    start = bytes(data).index(w.tobytes())
    with weightkit.load(path) as model:
        with open(path, "r+b") as handle:
            handle.seek(start)
            handle.write(np.ones(64 * 64, np.float32).tobytes())
        assert model.tensors()[0].read().sum() == 64 * 64


def test_closed_model_refuses_reads(tmp_path):
    path = _save(_model([helper.make_node("Identity", ["w"], ["y"])], [], [_value("y", [64, 64])],
                        [numpy_helper.from_array(_f32(64, 64), "w")]), tmp_path / "c.onnx")
    model = weightkit.load(path)
    tensor = model.extras["unused_constants"][0] if model.extras else model.tensors()[0]
    model.close()
    with pytest.raises(weightkit.ModelClosedError, match="closed"):
        tensor.read()


# --------------------------------------------------------------------------- quantized models

def test_qdq_weights_fold_into_their_layer(tmp_path):
    wq = RNG.integers(-127, 127, (4, 3, 3, 3)).astype(np.int8)
    scale, zero = np.abs(_f32(4)) + 0.01, np.zeros(4, np.int8)
    bias_q, bias_scale = RNG.integers(-100, 100, 4).astype(np.int32), np.abs(_f32(4))
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dq_w", axis=0),
             helper.make_node("DequantizeLinear", ["bq", "bs"], ["bd"], name="dq_b", axis=0),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["y"], name="conv")]
    inits = [numpy_helper.from_array(a, n) for n, a in (
        ("xs", np.float32(0.1)), ("xz", np.int8(0)), ("wq", wq), ("ws", scale), ("wz", zero), ("bq", bias_q),
        ("bs", bias_scale))]
    path = _save(_model(nodes, [_value("x", [1, 3, 5, 5])], [_value("y", [1, 4, 3, 3])], inits), tmp_path / "qdq.onnx")
    with weightkit.load(path) as model:
        conv = model.layer("conv")
        assert conv.kind == "conv2d" and conv.inbound == ["dq"]
        assert {r: t.name for r, t in conv.tensors.items()} == {
            "weight": "wq", "weight_scale": "ws", "weight_zero_point": "wz", "bias": "bq", "bias_scale": "bs"}
        assert conv.tensors["weight"].dtype == "int8" and conv.tensors["weight"].layout == "OIHW"
        assert "weight_scale" in conv.tensors["weight"].note
        assert conv.config["folded"] == ["dq_w", "dq_b"]
        assert [layer.name for layer in model.layers] == ["q", "dq", "conv"]
        quantize = model.layer("q")
        assert quantize.kind == "quantizelinear" and set(quantize.tensors) == {"y_scale", "y_zero_point"}
        assert model.layer("dq").config["shared"] == {"x_scale": "xs", "x_zero_point": "xz"}
        assert assert_reads_like_onnx(model, path) == 7


def test_qlinear_and_integer_ops(tmp_path):
    w = RNG.integers(-127, 127, (4, 3, 1, 1)).astype(np.int8)
    b = RNG.integers(-127, 127, (3, 5)).astype(np.int8)
    f32, i8, u8 = (lambda v: np.float32(v)), np.int8, np.uint8
    arrays = {"xs": f32(0.1), "xz": u8(128), "w": w, "ws": f32(0.2), "wz": i8(0), "ys": f32(0.3), "yz": u8(128),
              "bias": RNG.integers(-100, 100, 4).astype(np.int32), "b": b, "bs": f32(0.5), "bz": i8(0),
              "w2": w.copy(), "w2z": i8(1), "b2": b.copy(), "b2z": i8(2)}
    nodes = [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "bias"], ["y"],
                              name="qconv"),
             helper.make_node("QLinearMatMul", ["m", "xs", "xz", "b", "bs", "bz", "ys", "yz"], ["mm"], name="qmm"),
             helper.make_node("ConvInteger", ["x", "w2", "xz", "w2z"], ["ci"], name="convint"),
             helper.make_node("MatMulInteger", ["m", "b2", "xz", "b2z"], ["mi"], name="mmint")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 2, 2]),
              helper.make_tensor_value_info("m", TensorProto.UINT8, [2, 3])]
    outputs = [helper.make_tensor_value_info(n, t, None) for n, t in (("y", 2), ("mm", 2), ("ci", 6), ("mi", 6))]
    inits = [numpy_helper.from_array(np.asarray(a), n) for n, a in arrays.items()]
    path = _save(_model(nodes, inputs, outputs, inits), tmp_path / "q.onnx", check=False)
    with weightkit.load(path) as model:
        layers = {layer.name: layer for layer in model.layers}
        assert layers["qconv"].kind == "conv2d" and layers["qconv"].tensors["weight"].name == "w"
        assert {"weight_scale", "weight_zero_point", "bias", "x_scale", "y_zero_point"} <= set(layers["qconv"].tensors)
        assert layers["qmm"].kind == "dense" and layers["qmm"].tensors["weight"].layout == "IO"
        assert layers["convint"].kind == "conv2d" and layers["convint"].tensors["weight_zero_point"].name == "w2z"
        assert layers["mmint"].kind == "dense" and layers["mmint"].tensors["weight"].name == "b2"
        assert assert_reads_like_onnx(model, path) == len(arrays)


def test_sparse_initializer_is_reported_not_read(tmp_path):
    values = numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "sp")
    indices = numpy_helper.from_array(np.array([0, 5], np.int64), "sp_indices")
    sparse = helper.make_sparse_tensor(values, indices, [2, 3])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "sp"], ["y"], name="mm")], "g", [_value("x", [1, 2])],
                              [_value("y", [1, 3])], sparse_initializer=[sparse])
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), tmp_path / "sp.onnx")
    with weightkit.load(path) as model:
        weight = model.layer("mm").tensors["weight"]
        assert weight.shape == (2, 3) and weight.dtype == "float32" and "sparse" in weight.note
        assert model.metadata["sparse_initializers"] == 1
        with pytest.raises(weightkit.UnsupportedError, match="sparse"):
            weight.read()


def test_ir3_initializers_listed_as_inputs_are_not_inputs(tmp_path):
    w = _f32(2, 2)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [_value("x", [1, 2]), _value("w", [2, 2])],
                              [_value("y", [1, 2])], [numpy_helper.from_array(w, "w")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)], ir_version=3)
    path = _save(proto, tmp_path / "ir3.onnx")
    with weightkit.load(path) as model:
        assert [spec.name for spec in model.inputs] == ["x"]
        assert model.metadata["ir_version"] == 3


def test_custom_domain_ops_and_unnamed_nodes(tmp_path):
    nodes = [helper.make_node("Quant", ["x", "s", "z", "bits"], ["q"], domain="org.custom", narrow=0),
             helper.make_node("Relu", ["q"], ["y"])]
    inits = [numpy_helper.from_array(np.float32(v), n) for n, v in (("s", 0.5), ("z", 0.0), ("bits", 8.0))]
    proto = _model(nodes, [_value("x", [2])], [_value("y", [2])], inits)
    proto.opset_import.append(helper.make_opsetid("org.custom", 1))
    path = _save(proto, tmp_path / "custom.onnx", check=False)
    with weightkit.load(path) as model:
        quant, relu = model.layers
        assert (quant.name, quant.kind, list(quant.tensors)) == ("Quant_0", "quant", ["input1", "input2", "input3"])
        assert quant.config["domain"] == "org.custom" and relu.inbound == ["Quant_0"]
        assert model.metadata["op_histogram"] == {"org.custom::Quant": 1, "Relu": 1}
        assert model.metadata["opsets"]["org.custom"] == 1


# --------------------------------------------------------------------------- the command line

def test_inspect_table_and_json(tmp_path, capsys):
    path = mlp(tmp_path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "onnx" in out and "fc1" in out and "dense" in out and "IO" in out
    assert "opsets" in out and "ai.onnx 21" in out and "op histogram" in out and "MatMul 1" in out
    assert "(batch, 4)" in out
    assert main(["inspect", "--json", str(path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "onnx" and document["has_graph"] is True
    assert document["metadata"]["op_histogram"]["Gemm"] == 1
    assert document["inputs"] == [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}]
    assert document["layers"][0]["tensors"][0]["name"] == "w1"
    assert document["totals"]["params"] == 4 * 8 + 8 + 3 * 8


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_file_is_one_clear_error(tmp_path, capsys, cut):
    path = mlp(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weightkit: error:" in err and str(path) in err
    assert "Traceback" not in err


def test_corrupted_lengths_and_deep_nesting(tmp_path, capsys):
    path = mlp(tmp_path)
    data = bytearray(path.read_bytes())
    graph_at = data.index(b"\x3a")  # field 7 (graph), length-delimited
    data[graph_at + 1:graph_at + 3] = b"\xff\x7f"
    path.write_bytes(bytes(data))
    assert main(["inspect", str(path)]) == 2
    assert "weightkit: error:" in capsys.readouterr().err
    for payload in (b"", b"\0" * 5000):  # small: protobuf refuses it; big: weightkit's own walk does
        graph = _onnx_wire.encode_len_field(5, numpy_helper.from_array(np.frombuffer(payload, np.uint8), "t")
                                            .SerializeToString()) if payload else b""
        for _ in range(150):  # graph → node → attribute → graph ...
            attribute = _onnx_wire.encode_len_field(1, b"g") + _onnx_wire.encode_len_field(6, graph)
            graph = _onnx_wire.encode_len_field(1, _onnx_wire.encode_len_field(5, attribute))
        deep = tmp_path / "deep.onnx"
        deep.write_bytes(b"\x08\x08" + _onnx_wire.encode_len_field(7, graph))
        with pytest.raises(FileFormatError, match="nest|protobuf"):
            weightkit.load(deep)


def test_protobuf_without_graph(tmp_path):
    path = tmp_path / "nograph.onnx"
    proto = onnx.ModelProto(ir_version=8, producer_name="x")
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(FileFormatError, match="without a graph"):
        weightkit.load(path)


def test_payload_that_does_not_match_the_shape(tmp_path):
    tensor = numpy_helper.from_array(_f32(32, 32), "w")
    tensor.dims[0] = 33
    proto = _model([helper.make_node("Identity", ["w"], ["y"])], [], [_value("y", None)], [tensor])
    path = _save(proto, tmp_path / "bad.onnx", check=False)
    with pytest.raises(FileFormatError, match="need"):
        weightkit.load(path)
    small = numpy_helper.from_array(_f32(2, 2), "w")
    small.dims[0] = 3
    proto = _model([helper.make_node("Identity", ["w"], ["y"])], [], [_value("y", None)], [small])
    with pytest.raises(FileFormatError, match="need"):
        weightkit.load(_save(proto, tmp_path / "bad2.onnx", check=False))



@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_bytes_never_escape_as_anything_but_a_weightkit_error(tmp_path, data):
    """Flip bytes, cut the file: loading, reading every tensor and inspecting either work or raise WeightkitError."""
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    original = bytearray((source / "mlp.onnx").read_bytes() if (source / "mlp.onnx").exists()
                         else mlp(source).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        original[data.draw(st.integers(0, len(original) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(original)))
    path = tmp_path / "broken.onnx"
    path.write_bytes(bytes(original[:cut]))
    try:
        with weightkit.load(path) as model:
            for tensor in model.tensors() + [t for group in model.extras.values() for t in group]:
                if tensor.loader is not None:
                    tensor.read()
            json.dumps(inspect_document(model), default=str)
    except weightkit.WeightkitError:
        pass


def test_names_that_are_not_utf8_are_a_clear_error(tmp_path):
    path = mlp(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"fc1_bias", b"fc1\xffbias"))
    with pytest.raises(FileFormatError, match="not valid UTF-8"):
        weightkit.load(path)
    path = mlp(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"for tests", b"for \xffests"))
    with weightkit.load(path) as model:  # a doc string is only text: shown with a replacement character
        assert model.metadata["doc_string"] == "a small MLP for \ufffdests"
