"""Files written by others: tf.keras 2.21 fixtures (TensorFlow's own outputs) and a Keras 2.0.5 model from GitHub."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from weightkit.keras2onnx import convert_keras

from .conftest import assert_close, keras_outputs, run_onnx

TFKERAS = ["tfk_cnn_full.h5", "tfk_cnn.keras", "tfk_mobilenetv2_full.h5"]
FACE = "keras_h5/keras2.0.5_fullmodel__face_classification_tiny_XCEPTION_KDEF.hdf5"


@pytest.mark.parametrize("name", TFKERAS)
def test_tfkeras_files_match_tensorflow(fixtures, name):
    """ONNX Runtime against the output TensorFlow computed when the fixture was made."""
    path = fixtures / "tfkeras" / name
    result = convert_keras(path)
    onnx.checker.check_model(result.model, full_check=True)
    io = np.load(f"{path}.io.npz")
    assert_close(run_onnx(result.model, [io["input"]]), [io["output"]], atol=1e-5)
    assert result.report.keras_major == 2


def test_tfkeras_tensorflow_semantics(fixtures):
    """TFOpLambda arithmetic, TF's transposed-conv cropping, bilinear upsampling, 'same' pooling on odd sizes,
    a nested model called three times: against TensorFlow's outputs (fixtures/tfkeras_convert)."""
    path = fixtures / "tfkeras_convert" / "tfk_ops.h5"
    result = convert_keras(path)
    onnx.checker.check_model(result.model, full_check=True)
    io = np.load(f"{path}.io.npz")
    assert_close(run_onnx(result.model, [io["input"]]), [io["logits"], io["third"]], atol=1e-5)
    classes = {layer.class_name for layer in result.report.layers}
    assert {"TFOpLambda", "Conv2DTranspose", "UpSampling2D", "AveragePooling2D"} <= classes


def test_tfkeras_recurrent_layers(fixtures):
    """tf.keras 2's GRU (reset_after), LSTM gate order, go_backwards and Bidirectional, against TensorFlow."""
    path = fixtures / "tfkeras_convert" / "tfk_rnn.h5"
    result = convert_keras(path)
    onnx.checker.check_model(result.model, full_check=True)
    io = np.load(f"{path}.io.npz")
    assert_close(run_onnx(result.model, [io["input"]]), [io["output"]], atol=1e-5)


def test_tfkeras_weights_file_with_full_model_as_architecture(fixtures):
    folder = fixtures / "tfkeras"
    result = convert_keras(folder / "tfk_cnn_weights.h5", arch=folder / "tfk_cnn_full.h5")
    io = np.load(folder / "tfk_cnn_weights.h5.io.npz")
    assert_close(run_onnx(result.model, [io["input"]]), [io["output"]], atol=1e-5)


def test_tfkeras_nchw(fixtures):
    path = fixtures / "tfkeras" / "tfk_mobilenetv2_full.h5"
    io = np.load(f"{path}.io.npz")
    result = convert_keras(path, nchw=True)
    assert_close(run_onnx(result.model, [io["input"].transpose(0, 3, 1, 2)]), [io["output"]], atol=1e-5)


def test_face_classification_keras205_against_keras3(keras, real_weights):
    """Keras 3 loads this Keras 2.0.5 file itself (SeparableConv2D, BN, residual Adds, softmax head).
    Softmax outputs are small, so the logits (the pooled tensor before it) are compared too."""
    path = real_weights / FACE
    model = keras.saving.load_model(path, compile=False)
    result = convert_keras(path)
    onnx.checker.check_model(result.model, full_check=True)
    x = np.random.default_rng(0).standard_normal((4, 64, 64, 1)).astype(np.float32)
    assert_close(run_onnx(result.model, [x]), keras_outputs(model, [x]), atol=1e-5)
    logits = keras.Model(model.inputs, model.get_layer("global_average_pooling2d_1").output)
    graph = result.model.graph
    graph.output.append(onnx.helper.make_tensor_value_info("global_average_pooling2d_1", onnx.TensorProto.FLOAT, None))
    expected = keras_outputs(logits, [x])
    assert np.max(np.abs(expected[0])) > 0.1
    assert_close(run_onnx(result.model, [x])[1:], expected, atol=1e-5)
