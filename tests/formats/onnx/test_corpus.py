"""Models other people made: onnx's own backend test data, and the real files in shared/real-weights/onnx."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

import weightkit
from tests.formats.onnx.test_read import assert_reads_like_onnx, onnx_arrays
from weightkit.cli import main

BACKEND_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
BACKEND_MODELS = sorted(BACKEND_DATA.rglob("*.onnx"))


def test_the_onnx_wheel_ships_backend_models():
    assert len(BACKEND_MODELS) > 100, f"expected onnx's backend test models under {BACKEND_DATA}"


@pytest.mark.parametrize("path", BACKEND_MODELS, ids=lambda p: str(p.relative_to(BACKEND_DATA)))
def test_every_backend_model_inspects_and_reads_like_onnx(path, capsys):
    with weightkit.load(path) as model:
        proto = onnx.load(path, load_external_data=False)
        assert model.format == "onnx" and model.has_graph
        assert model.metadata["ir_version"] == proto.ir_version
        assert sum(model.metadata.get("op_histogram", {}).values()) >= len(proto.graph.node)
        named = {t.name for t in model.tensors()} | {t.name for g in model.extras.values() for t in g}
        arrays = onnx_arrays(path)
        compared = assert_reads_like_onnx(model, path)
        assert compared == len(named & set(arrays)), f"{path}: {compared} of {len(named & set(arrays))} compared"
    assert main(["inspect", "--json", str(path)]) == 0, capsys.readouterr().err
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "onnx"


def test_float_data_initializers_listed_as_inputs(real_weights):
    """onnxmltools, IR 3: typed float_data, every initializer also a graph input."""
    path = real_weights / "onnx" / "op9_onnxmltools_floatdata__hls4ml_three_layer_keras.onnx"
    with weightkit.load(path) as model:
        assert [spec.name for spec in model.inputs] == ["input_1_0"]
        assert model.metadata["ir_version"] == 3 and model.metadata["writer"] == "OnnxMLTools 1.2.2.0129"
        dense = [layer for layer in model.layers if layer.kind == "dense"]
        weights = [layer.tensors["weight"] for layer in dense]
        assert [(w.name, w.shape, w.layout) for w in weights] == [
            ("W", (16, 64), "IO"), ("W1", (64, 32), "IO"), ("W2", (32, 32), "IO"), ("W3", (32, 5), "IO")]
        assert all(layer.tensors["bias"].name.startswith("B") for layer in dense)
        assert assert_reads_like_onnx(model, path) == 8
        assert model.num_params == 16 * 64 + 64 + 64 * 32 + 32 + 32 * 32 + 32 + 32 * 5 + 5


def test_numeric_tensor_names_from_pytorch_0_3(real_weights):
    path = real_weights / "onnx" / "op9_pytorch0.3__hls4ml_three_layer_pytorch.onnx"
    with weightkit.load(path) as model:
        assert [spec.name for spec in model.inputs] == ["0"]
        gemms = [layer for layer in model.layers if layer.type_name == "Gemm"]
        assert [layer.kind for layer in gemms] == ["dense"] * 4
        assert [layer.tensors["weight"].name for layer in gemms] == ["1", "3", "5", "7"]
        assert gemms[0].tensors["weight"].layout == "OI" and gemms[0].name == "Gemm_0"
        assert assert_reads_like_onnx(model, path) == 8


def test_brevitas_custom_domain_with_407_initializers(real_weights, capsys):
    path = real_weights / "onnx" / "op17_brevitas_customdomain__hls4ml_tiny_unet_ch_last.onnx"
    with weightkit.load(path) as model:
        assert len(model.tensors()) + len(model.extras.get("unused_constants", [])) == 407
        assert assert_reads_like_onnx(model, path) == 407
        assert model.metadata["opsets"] == {"ai.onnx": 17, "onnx.brevitas": 1}
        histogram = model.metadata["op_histogram"]
        assert histogram["qonnx.custom_op.general::Quant"] == 113
        assert histogram["qonnx.custom_op.channels_last::Conv"] == 40
        quant = model.layers[0]
        assert quant.kind == "quant" and quant.config["domain"] == "qonnx.custom_op.general"
        assert list(quant.tensors) == ["input0", "input1", "input2", "input3"]
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "onnx.brevitas 1" in out and "qonnx.custom_op.general::Quant 113" in out
