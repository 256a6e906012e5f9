"""The library API: one error for every unconvertible layer, nothing written; options and where the file
may go, refused before any work; the report; big files. Every conversion is read back from the file."""

from __future__ import annotations

import importlib
import json

import numpy as np
import onnx
import pytest

import weightkit
from tests.cli import run
from weightkit import convert
from weightkit.errors import UnsupportedError, UsageError
from weightkit.keras2onnx import convert_keras

from .conftest import convert_to_file, keras_outputs


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
    written = convert_to_file(tmp_path / "m.keras", tmp_path)
    report = written.report
    assert report.output_path == str(tmp_path / "m.keras.onnx") and report.opset == 20
    assert [layer.path for layer in report.layers] == ["conv", "flat", "head"]
    assert report.layers[0].class_name == "Conv2D" and "conv" in report.layers[0].nodes
    assert report.inputs[0].shape == ["batch", 6, 6, 3] and report.outputs[0].name == "head"
    assert json.loads(json.dumps(report.to_dict()))["unused_weights"] == []
    assert {p.key: p.value for p in written.model.metadata_props}["source"] == "m.keras"
    x = np.ones((1, 6, 6, 3), np.float32)
    np.testing.assert_allclose(written.run([x])[0], keras_outputs(model, [x])[0], atol=1e-5)


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
def test_opset_out_of_range(fixtures, tmp_path, opset):
    with pytest.raises(UsageError, match=f"opset {opset}"):
        convert_keras(fixtures / "tfkeras" / "tfk_cnn_full.h5", opset=opset)
    with pytest.raises(UsageError, match=f"opset {opset}"):
        convert(fixtures / "tfkeras" / "tfk_cnn_full.h5", tmp_path / "x.onnx", opset=opset)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("opset", [13, 17, 18, 21, 28])
def test_every_opset_in_range_runs(fixtures, tmp_path, opset):
    path = fixtures / "tfkeras" / "tfk_cnn_full.h5"
    written = convert_to_file(path, tmp_path, opset=opset)
    assert written.model.opset_import[0].version == opset
    io = np.load(f"{path}.io.npz")
    np.testing.assert_allclose(written.run([io["input"]])[0], io["output"], atol=1e-5)


@pytest.mark.parametrize("batch_size", [0, -3, True, 2.0])
def test_batch_size_must_be_a_positive_integer(fixtures, tmp_path, batch_size):
    """Refused before the file is read: ONNX would otherwise get a dimension of 0 or -3."""
    with pytest.raises(UsageError, match=f"batch size {batch_size!r} is not a positive integer"):
        convert(fixtures / "tfkeras" / "tfk_cnn_full.h5", tmp_path / "x.onnx", batch_size=batch_size)
    with pytest.raises(UsageError, match="positive integer"):
        convert_keras(tmp_path / "not even read.h5", batch_size=batch_size)
    assert list(tmp_path.iterdir()) == []


def test_fixed_batch_size_is_in_the_file(fixtures, tmp_path):
    path = fixtures / "tfkeras" / "tfk_cnn_full.h5"
    written = convert_to_file(path, tmp_path, batch_size=1)
    dims = [d.dim_value for d in written.model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 32, 32, 3] and written.report.inputs[0].shape == [1, 32, 32, 3]
    io = np.load(f"{path}.io.npz")
    np.testing.assert_allclose(written.run([io["input"][:1]])[0], io["output"][:1], atol=1e-5)


def test_output_folder_must_exist(fixtures, tmp_path):
    """No folder is created for the output: a typo in -o is an error, not a new directory tree."""
    source = fixtures / "tfkeras" / "tfk_cnn_full.h5"
    missing = tmp_path / "missing" / "deeper"
    with pytest.raises(UsageError, match=f"the folder {missing} does not exist") as caught:
        convert(source, missing / "x.onnx")
    assert "create the folder first" in str(caught.value)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UsageError, match="a_file is a file, not a folder"):
        convert(source, tmp_path / "a_file" / "x.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


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
    result = convert_to_file(tmp_path / "free.keras", tmp_path)
    assert len(result.report.warnings) == 2 and "SAME_UPPER" in result.report.warnings[0]
    for size in ((9, 12), (16, 15)):
        x = np.random.default_rng(0).standard_normal((2, *size, 3)).astype(np.float32)
        np.testing.assert_allclose(result.run([x])[0], keras_outputs(model, [x])[0], atol=1e-5)
    batch, height, width, channels = result.report.inputs[0].shape
    assert batch == "batch" and height.endswith("_dim1") and width.endswith("_dim2") and channels == 3


# ---- the command line (tests/cli/test_convert_cmd.py is another engineer's; these cover this change) ------


@pytest.mark.parametrize("value", ["0", "-3"])
def test_cli_refuses_a_batch_size_below_one(capsys, fixtures, tmp_path, value):
    code, out, err = run(capsys, "convert", fixtures / "tfkeras" / "tfk_cnn_full.h5", "-o", tmp_path / "x.onnx",
                         f"--batch-size={value}")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"weightkit: error: batch size {value} is not a positive integer") and "--batch-size" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_missing_output_folder(capsys, fixtures, tmp_path):
    target = tmp_path / "missing" / "dir" / "x.onnx"
    code, _, err = run(capsys, "convert", fixtures / "tfkeras" / "tfk_cnn_full.h5", "-o", target)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"the folder {target.parent} does not exist" in err
    assert not (tmp_path / "missing").exists()


def test_cli_converts_recurrent_models(capsys, fixtures, tmp_path):
    """Issue #12: every recurrent model ended in 'unexpected ValueError: could not convert string to float'."""
    import onnxruntime

    path = fixtures / "tfkeras_convert" / "tfk_rnn.h5"
    code, out, err = run(capsys, "convert", path, "-o", tmp_path / "rnn.onnx")
    assert code == 0 and err == "" and "out (batch, 2)" in out
    onnx.checker.check_model(str(tmp_path / "rnn.onnx"), full_check=True)
    session = onnxruntime.InferenceSession(str(tmp_path / "rnn.onnx"), providers=["CPUExecutionProvider"])
    io = np.load(f"{path}.io.npz")
    np.testing.assert_allclose(session.run(None, {"sequence": io["input"]})[0], io["output"], atol=1e-5)


def test_an_attribute_without_an_onnx_type_is_the_layer_s_error(fixtures, tmp_path, monkeypatch):
    """An emitter's bad attribute value is refused when its node is made: a conversion error naming the layer,
    before anything is written (the writer used to fail afterwards, with 'unexpected ValueError')."""
    from weightkit.keras2onnx.layers import recurrent

    monkeypatch.setattr(recurrent, "_attributes", lambda *args, **kwargs: {"hidden_size": 4, "activations": []})
    with pytest.raises(UnsupportedError, match=r"layer '\w+' \(Bidirectional\) cannot be converted: TypeError: "
                                               r"attribute 'activations': an empty list has no type"):
        convert(fixtures / "tfkeras_convert" / "tfk_rnn.h5", tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []
