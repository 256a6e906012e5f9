"""The graph builder's layout bookkeeping: one Transpose per value and layout, broadcasting as Keras does."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnxruntime

from weightkit.keras2onnx.builder import GraphBuilder, Value, channels_first_perm
from weightkit.keras2onnx.proto import OnnxGraph, ValueInfo


def run(builder, inputs, outputs):
    """The builder's graph written to a file, run by ONNX Runtime from that file."""
    infos = [ValueInfo(n, list(a.shape)) for n, a in inputs.items()]
    graph = OnnxGraph("g", builder.nodes, builder.initializers, infos,
                      [ValueInfo(o, None) for o in outputs], builder.opset)
    with tempfile.TemporaryDirectory() as folder:
        graph.write(Path(folder) / "g.onnx")
        session = onnxruntime.InferenceSession(str(Path(folder) / "g.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def test_relayout_is_cached_and_axes_follow():
    builder = GraphBuilder(17)
    x = Value("x", (None, 4, 5, 3))
    first = builder.channels_first(x)
    assert builder.channels_first(x) is first and len(builder.nodes) == 1
    assert first.onnx_axis(-1) == 1 and first.onnx_shape() == (None, 3, 4, 5)
    back = builder.keras_order(first)
    assert back.perm is None and [n.op_type for n in builder.nodes] == ["Transpose", "Transpose"]
    assert channels_first_perm(3) == (0, 2, 1)


def test_align_and_broadcast_constants_match_numpy():
    builder = GraphBuilder(17)
    image = builder.channels_first(Value("image", (None, 2, 3, 4)))
    vector = Value("vector", (None, 4))
    aligned = builder.align([image, vector], "mul", expand_at=1)  # as Keras merge layers do
    product = builder.node("Mul", [a.name for a in aligned], "mul")
    scale = builder.broadcast_constant(np.arange(4.0), image, "scale")
    scaled = builder.node("Mul", [product, scale], "scaled")
    result = builder.keras_order(Value(scaled, image.shape, image.perm))
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 4)).astype(np.float32)
    v = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    got = run(builder, {"image": x, "vector": v}, [result.name])[0]
    np.testing.assert_allclose(got, x * v[:, None, None, :] * np.arange(4.0), rtol=1e-6)


def test_numpy_broadcasting_for_operations():
    builder = GraphBuilder(17)
    image = builder.channels_first(Value("image", (None, 2, 3, 4)))
    row = Value("row", (3, 4))
    aligned = builder.align([image, row], "add")
    total = builder.keras_order(Value(builder.node("Add", [a.name for a in aligned], "add"), image.shape, image.perm))
    x = np.ones((2, 2, 3, 4), np.float32)
    r = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(run(builder, {"image": x, "row": r}, [total.name])[0], x + r)


def test_names_are_unique_and_shared_constants_are_stored_once():
    builder = GraphBuilder(17)
    assert [builder.unique("a"), builder.unique("a"), builder.unique("a")] == ["a", "a_1", "a_2"]
    assert builder.scalar(1.0, "one") == builder.scalar(1.0, "one")
    assert builder.ints([1, 2], "axes") == builder.ints([1, 2], "axes") != builder.ints([2, 1], "axes")
    calls = []
    make = lambda: calls.append(1) or np.zeros(3)  # noqa: E731  # a one-expression factory that counts its calls
    assert builder.weight(("layer", "w"), "w", make) == builder.weight(("layer", "w"), "w", make)
    assert len(calls) == 1 and len(builder.initializers) == 4
