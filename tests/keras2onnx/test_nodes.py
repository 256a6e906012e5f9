"""Reading the calls a config records, in every generation's spelling."""

from __future__ import annotations

import numpy as np

from weightkit.keras2onnx.nodes import TensorRef, endpoints, layer_calls, raw_layers


def tensor(name, node=0, index=0):
    return {"class_name": "__keras_tensor__", "config": {"shape": [None, 3], "keras_history": [name, node, index]}}


def test_keras3_calls_keep_constants_and_order():
    record = {"inbound_nodes": [
        {"args": [2.0, tensor("x")], "kwargs": {}},
        {"args": [[tensor("a"), tensor("b", 1, 2)]], "kwargs": {"mask": None}},
        {"args": [tensor("x"), {"class_name": "__numpy__", "config": {"value": [1, 2], "dtype": "float32"}}]},
    ]}
    first, second, third = layer_calls(record)
    assert first.args == [2.0, TensorRef("x")] and first.positional == 2 and not first.legacy
    assert second.tensors() == [TensorRef("a"), TensorRef("b", 1, 2)] and second.positional == 1
    assert isinstance(third.args[1], np.ndarray) and third.args[1].dtype == np.float32


def test_legacy_calls():
    record = {"inbound_nodes": [[["a", 0, 0, {}], ["b", 1, 0, {"y": 3}]], [["c", 0, 0]]]}
    merged, single = layer_calls(record)
    assert merged.args == [[TensorRef("a"), TensorRef("b", 1, 0)]] and merged.kwargs == {"y": 3} and merged.legacy
    assert single.args == [TensorRef("c")]


def test_endpoints_and_layers():
    assert endpoints({"input_layers": ["in", 0, 0]}, "input_layers") == [TensorRef("in")]
    assert endpoints({"output_layers": [["a", 1, 0], ["b", 0, 1]]}, "output_layers") == [
        TensorRef("a", 1, 0), TensorRef("b", 0, 1)]
    assert endpoints({}, "output_layers") == []
    assert len(raw_layers({"config": [{"class_name": "Dense"}, "junk"]})) == 1
    assert layer_calls({"inbound_nodes": "junk"}) == []


def test_tfoplambda_calls_keep_keyword_tensors():
    """tf.keras writes a TFOpLambda call as one unwrapped entry; a tensor operand sits in its kwargs."""
    constant, tensor = layer_calls({"inbound_nodes": [["relu", 0, 0, {"y": 0.5, "name": None}],
                                                      ["stem", 1, 0, {"y": ["identity", 1, 0], "name": None}]]})
    assert constant.args == [TensorRef("relu")] and constant.kwargs["y"] == 0.5 and constant.keyword_tensors() == []
    assert tensor.args == [TensorRef("stem", 1, 0)] and tensor.keyword_tensors() == [TensorRef("identity", 1, 0)]
