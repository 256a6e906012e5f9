"""Writing ONNX: what weightkit writes passes onnx.checker and runs like the original in ONNX Runtime."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import weightkit
from tests.formats.onnx.test_read import _f32, _model, _save, _value, assert_reads_like_onnx, mlp
from weightkit.errors import UnsupportedError, UsageError
from weightkit.formats.onnx import read as wk_onnx
from weightkit.formats.onnx.write import PROTOBUF_LIMIT
from weightkit.model import Model


def run(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)


def big_mlp(folder: Path, width: int = 64) -> Path:
    """An MLP whose weights are big enough to live in the file, not inline."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Add", ["h", "b1"], ["hb"], name="fc1_bias"),
             helper.make_node("Relu", ["hb"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1)]
    arrays = {"w1": _f32(16, width), "b1": _f32(width), "w2": _f32(8, width), "b2": _f32(8)}
    inits = [numpy_helper.from_array(a, n) for n, a in arrays.items()]
    return _save(_model(nodes, [_value("x", ["n", 16])], [_value("y", ["n", 8])], inits), folder / "big_mlp.onnx")


@pytest.mark.parametrize("external", [False, True], ids=["single-file", "external-data"])
@pytest.mark.parametrize("builder", [mlp, big_mlp])
def test_round_trip_runs_like_the_original(tmp_path, builder, external):
    source = builder(tmp_path)
    out = tmp_path / "out" / "copy.onnx"
    with weightkit.load(source) as model:
        wk_onnx.write(model, out, external_data=external)
    onnx.checker.check_model(str(out), full_check=True)
    assert (tmp_path / "out" / "copy.onnx.data").exists() == (external and builder is big_mlp)
    x = _f32(3, 16 if builder is big_mlp else 4)
    for ours, theirs in zip(run(out, {"x": x}), run(source, {"x": x})):
        assert ours.tobytes() == theirs.tobytes()
    with weightkit.load(out) as copy:
        assert assert_reads_like_onnx(copy, out) == 4 if builder is big_mlp else 3


def test_unchanged_model_is_rewritten_byte_for_byte(tmp_path):
    source = big_mlp(tmp_path)
    with weightkit.load(source) as model:
        weightkit.save(model, tmp_path / "same.onnx")
    assert (tmp_path / "same.onnx").read_bytes() == source.read_bytes()


def test_replaced_tensors_are_written(tmp_path):
    source = big_mlp(tmp_path)
    new_w1, new_b2 = _f32(16, 64), _f32(8)
    with weightkit.load(source) as model:
        model.layer("fc1").tensors["weight"].loader = lambda: new_w1
        model.layer("fc2").tensors["bias"].loader = lambda: new_b2
        original = {t.name: t.read() for t in model.tensors()}
        wk_onnx.write(model, tmp_path / "changed.onnx")
    onnx.checker.check_model(str(tmp_path / "changed.onnx"))
    x = _f32(2, 16)
    (y,) = run(tmp_path / "changed.onnx", {"x": x})
    expected = np.maximum(x @ new_w1 + original["b1"], 0) @ original["w2"].T + new_b2
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_external_data_is_aligned_and_checks_by_path(tmp_path):
    source = big_mlp(tmp_path, width=1024)
    out = tmp_path / "ext.onnx"
    with weightkit.load(source) as model:
        wk_onnx.write(model, out, external_data=True)
    proto = onnx.load(out, load_external_data=False)
    offsets = {init.name: {e.key: e.value for e in init.external_data} for init in proto.graph.initializer
               if init.data_location == TensorProto.EXTERNAL}
    assert sorted(offsets) == ["b1", "w1", "w2"]  # b2 (32 bytes) stays inline, as onnx would keep it
    assert {o["location"] for o in offsets.values()} == {"ext.onnx.data"}
    assert all(int(o["offset"]) % 4096 == 0 for o in offsets.values())
    onnx.checker.check_model(str(out), full_check=True)
    x = _f32(2, 16)
    assert run(out, {"x": x})[0].tobytes() == run(source, {"x": x})[0].tobytes()
    with weightkit.load(out) as copy:
        assert copy.metadata["external_data"] == ["ext.onnx.data"]
        wk_onnx.write(copy, tmp_path / "back.onnx", external_data=False)  # external → single file
    assert run(tmp_path / "back.onnx", {"x": x})[0].tobytes() == run(source, {"x": x})[0].tobytes()


def test_alias_of_a_shared_weight_gets_its_own_initializer_when_changed(tmp_path):
    """Exporters store equal weights once (b2 = Identity(b1)); changing the copy must not change the original."""
    shared = _f32(4)
    nodes = [helper.make_node("Identity", ["b1"], ["b2"], name="copy"),
             helper.make_node("Add", ["x", "b1"], ["h"], name="add1"),
             helper.make_node("Add", ["h", "b2"], ["y"], name="add2")]
    path = _save(_model(nodes, [_value("x", [4])], [_value("y", [4])], [numpy_helper.from_array(shared, "b1")]),
                 tmp_path / "alias.onnx")
    replacement = _f32(4)
    with weightkit.load(path) as model:
        alias = model.layer("add2").tensors["b"]
        assert alias.name == "b2" and "same data as 'b1'" in alias.note
        assert alias.read().tobytes() == shared.tobytes()
        alias.loader = lambda: replacement
        wk_onnx.write(model, tmp_path / "out.onnx")
    onnx.checker.check_model(str(tmp_path / "out.onnx"))
    assert [n.op_type for n in onnx.load(tmp_path / "out.onnx").graph.node] == ["Add", "Add"]
    x = _f32(4)
    np.testing.assert_allclose(run(tmp_path / "out.onnx", {"x": x})[0], x + shared + replacement, rtol=1e-6)


def test_constant_node_values_can_be_replaced(tmp_path):
    nodes = [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(_f32(300))),
             helper.make_node("Mul", ["x", "k"], ["y"], name="scale")]
    path = _save(_model(nodes, [_value("x", [300])], [_value("y", [300])]), tmp_path / "k.onnx")
    new = _f32(300)
    with weightkit.load(path) as model:
        model.layer("scale").tensors["b"].loader = lambda: new
        wk_onnx.write(model, tmp_path / "k2.onnx")
    x = _f32(300)
    np.testing.assert_allclose(run(tmp_path / "k2.onnx", {"x": x})[0], x * new, rtol=1e-6)


def test_a_model_built_in_memory_is_written_from_its_proto(tmp_path):
    w = _f32(3, 3)
    proto = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_value("x", [1, 3])], [_value("y", [1, 3])],
                   [numpy_helper.from_array(w, "w")])
    model = Model(format="onnx", framework="onnx", has_graph=True, graph=proto)
    wk_onnx.write(model, tmp_path / "mem.onnx")
    x = _f32(1, 3)
    np.testing.assert_allclose(run(tmp_path / "mem.onnx", {"x": x})[0], x @ w, rtol=1e-6)


def test_refusals(tmp_path):
    source = big_mlp(tmp_path)
    with weightkit.load(source) as model:
        with pytest.raises(UsageError, match="is an input"):
            wk_onnx.write(model, tmp_path / "big_mlp.onnx", force=True)
        (tmp_path / "taken.onnx").write_bytes(b"x")
        with pytest.raises(UsageError, match="already exists"):
            wk_onnx.write(model, tmp_path / "taken.onnx")
        wk_onnx.write(model, tmp_path / "taken.onnx", force=True)
        model.layer("fc1").tensors["weight"].loader = lambda: np.zeros((2, 2), np.float32)
        with pytest.raises(UsageError, match="reads as float32"):
            wk_onnx.write(model, tmp_path / "wrong.onnx")
        assert not (tmp_path / "wrong.onnx").exists()
        assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]
    with pytest.raises(UnsupportedError, match="no ONNX graph"):
        wk_onnx.write(Model(format="safetensors"), tmp_path / "x.onnx")
    closed = weightkit.load(source)
    closed.close()
    with pytest.raises(weightkit.ModelClosedError, match="closed"):
        wk_onnx.write(closed, tmp_path / "closed.onnx")


def test_over_2gb_goes_to_external_data(tmp_path):
    """A model past protobuf's 2 GiB limit reads, and is written with external data (a sparse file here)."""
    elements = (PROTOBUF_LIMIT // 4) + 1024
    data = tmp_path / "huge.bin"
    with open(data, "wb") as handle:
        handle.truncate(elements * 4)
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[elements], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "huge.bin"), ("offset", "0"), ("length", str(elements * 4))):
        tensor.external_data.add(key=key, value=value)
    small = numpy_helper.from_array(np.arange(4, dtype=np.float32), "small")
    nodes = [helper.make_node("ReduceSum", ["w"], ["s"]), helper.make_node("Add", ["s", "small"], ["y"], name="add")]
    proto = _model(nodes, [], [_value("y", [4])], [tensor, small])
    (tmp_path / "huge.onnx").write_bytes(proto.SerializeToString())
    with weightkit.load(tmp_path / "huge.onnx") as model:
        weight = model.extras.get("unused_constants", []) + model.tensors()
        assert {t.name: t.nbytes for t in weight}["w"] == elements * 4
        assert model.layer("add").tensors["b"].read().tolist() == [0, 1, 2, 3]
        wk_onnx.write(model, tmp_path / "out" / "copy.onnx")
    assert (tmp_path / "out" / "copy.onnx.data").stat().st_size >= elements * 4
    onnx.checker.check_model(str(tmp_path / "out" / "copy.onnx"))
