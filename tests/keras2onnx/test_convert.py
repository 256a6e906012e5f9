"""The library API: one error for every unconvertible layer, nothing written; options; the report; big files."""

from __future__ import annotations

import importlib
import json

import numpy as np
import onnx
import pytest

import weightkit
from weightkit import convert
from weightkit.errors import UnsupportedError, UsageError
from weightkit.keras2onnx import convert_keras

from .conftest import keras_outputs, run_onnx


@pytest.fixture
def custom_model_file(keras, tmp_path):
    """A model with a custom layer class and an arbitrary Lambda, saved as .keras (nothing of it is run)."""

    @keras.saving.register_keras_serializable(package="tests")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="dense")(inputs)
    x = Doubler(name="doubler")(x)
    x = keras.layers.Lambda(lambda t: t + 1, name="plus_one")(x)
    path = tmp_path / "custom.keras"
    keras.Model(inputs, x).save(path)
    return path


def test_unsupported_layers_are_listed_together_and_nothing_is_written(custom_model_file, tmp_path):
    output = tmp_path / "out.onnx"
    with pytest.raises(UnsupportedError) as caught:
        convert(custom_model_file, output)
    message = str(caught.value)
    assert "2 layer(s)" in message and "doubler (Doubler)" in message and "plus_one (Lambda)" in message
    assert "anonymous function" in message and "nothing was written" in message
    assert list(tmp_path.iterdir()) == [custom_model_file]


def test_convert_writes_a_checked_model_and_a_report(keras, tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Flatten(name="flat")(x)))
    model.save(tmp_path / "m.keras")
    report = convert(tmp_path / "m.keras", tmp_path / "m.onnx")
    loaded = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(loaded, full_check=True)
    assert report.output_path == str(tmp_path / "m.onnx") and report.opset == 20
    assert [layer.path for layer in report.layers] == ["conv", "flat", "head"]
    assert report.layers[0].class_name == "Conv2D" and "conv" in report.layers[0].nodes
    assert report.inputs[0].shape == ["batch", 6, 6, 3] and report.outputs[0].name == "head"
    json.dumps(report.to_dict())
    assert {p.key: p.value for p in loaded.metadata_props}["source"] == "m.keras"
    x = np.ones((1, 6, 6, 3), np.float32)
    np.testing.assert_allclose(run_onnx(loaded, [x])[0], keras_outputs(model, [x])[0], atol=1e-5)


def test_existing_output_needs_force_and_inputs_are_never_overwritten(fixtures, tmp_path):
    source = fixtures / "tfkeras" / "tfk_cnn_full.h5"
    output = tmp_path / "out.onnx"
    output.write_bytes(b"keep")
    with pytest.raises(UsageError, match="already exists"):
        convert(source, output)
    assert output.read_bytes() == b"keep"
    convert(source, output, force=True)
    assert output.stat().st_size > 1000
    copy = tmp_path / "copy.h5"
    copy.write_bytes(source.read_bytes())
    with pytest.raises(UsageError, match="is an input"):
        convert(copy, copy, force=True)


@pytest.mark.parametrize("opset", [12, 29])
def test_opset_out_of_range(fixtures, opset):
    with pytest.raises(UsageError, match=f"opset {opset}"):
        convert_keras(fixtures / "tfkeras" / "tfk_cnn_full.h5", opset=opset)


@pytest.mark.parametrize("opset", [13, 17, 18, 21, 28])
def test_every_opset_in_range_runs(fixtures, opset):
    path = fixtures / "tfkeras" / "tfk_cnn_full.h5"
    result = convert_keras(path, opset=opset)
    onnx.checker.check_model(result.model, full_check=True)
    io = np.load(f"{path}.io.npz")
    np.testing.assert_allclose(run_onnx(result.model, [io["input"]])[0], io["output"], atol=1e-5)


def test_weightkit_convert_is_the_library_entry_point(fixtures, tmp_path):
    path = fixtures / "tfkeras" / "tfk_cnn_full.h5"
    report = weightkit.convert(path, tmp_path / "a.onnx")
    assert report.output_path == str(tmp_path / "a.onnx") and report.outputs[0].name == "probs"
    importlib.import_module("weightkit.keras2onnx.builder")  # importing the converter leaves the function alone
    assert callable(weightkit.convert) and weightkit.convert.__module__ == "weightkit"


def test_models_over_two_gigabytes_store_weights_beside_the_file(fixtures, tmp_path, monkeypatch):
    """The 2 GB protobuf limit, lowered so a small model crosses it: weights go to <name>.data."""
    from weightkit.keras2onnx import proto

    monkeypatch.setattr(proto, "PROTOBUF_LIMIT", 1000)
    monkeypatch.setattr(proto, "_EXTERNAL_SAFETY", 0)
    path = fixtures / "tfkeras" / "tfk_cnn_full.h5"
    convert(path, tmp_path / "big.onnx")
    assert (tmp_path / "big.onnx.data").stat().st_size > 30_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]
    onnx.checker.check_model(str(tmp_path / "big.onnx"), full_check=True)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "big.onnx"), providers=["CPUExecutionProvider"])
    io = np.load(f"{path}.io.npz")
    np.testing.assert_allclose(session.run(None, {"image": io["input"]})[0], io["output"], atol=1e-5)
    with pytest.raises(UsageError):
        convert(path, tmp_path / "big.onnx")
    convert(path, tmp_path / "big.onnx", force=True)


def test_unknown_sizes_fall_back_to_same_upper_with_a_warning(keras, tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    model = keras.Model(inputs, x)
    model.save(tmp_path / "free.keras")
    result = convert_keras(tmp_path / "free.keras")
    assert len(result.report.warnings) == 2 and "SAME_UPPER" in result.report.warnings[0]
    for size in ((9, 12), (16, 15)):
        x = np.random.default_rng(0).standard_normal((2, *size, 3)).astype(np.float32)
        np.testing.assert_allclose(run_onnx(result.model, [x])[0], keras_outputs(model, [x])[0], atol=1e-5)
    batch, height, width, channels = result.report.inputs[0].shape
    assert batch == "batch" and height.endswith("_dim1") and width.endswith("_dim2") and channels == 3
