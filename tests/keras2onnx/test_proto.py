"""The hand-written protobuf encoding: byte-for-byte what onnx's own serializer makes of the same model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from weightkit.keras2onnx import convert_keras
from weightkit.keras2onnx.proto import MAX_OPSET, Initializer, Node, OnnxGraph, ValueInfo, ir_version


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


def test_written_bytes_equal_onnx_serialization(tmp_path):
    graph = sample_graph()
    graph.write(tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").read_bytes() == graph.to_proto().SerializeToString()


def test_converted_model_written_equals_proto(fixtures, tmp_path):
    result = convert_keras(fixtures / "tfkeras" / "tfk_mobilenetv2_full.h5")
    result.graph.write(tmp_path / "m.onnx")
    assert onnx.load(tmp_path / "m.onnx") == result.model


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
