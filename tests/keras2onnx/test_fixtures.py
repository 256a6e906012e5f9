"""Files written by others: tf.keras 2.21 fixtures (TensorFlow's own outputs) and a Keras 2.0.5 model from GitHub,
each converted to a file that ONNX Runtime then runs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from .conftest import assert_close, convert_to_file, keras_outputs, run_onnx

TFKERAS = ["tfk_cnn_full.h5", "tfk_cnn.keras", "tfk_mobilenetv2_full.h5"]
FACE = "keras_h5/keras2.0.5_fullmodel__face_classification_tiny_XCEPTION_KDEF.hdf5"


@pytest.mark.parametrize("name", TFKERAS)
def test_tfkeras_files_match_tensorflow(fixtures, tmp_path, name):
    """ONNX Runtime against the output TensorFlow computed when the fixture was made."""
    path = fixtures / "tfkeras" / name
    result = convert_to_file(path, tmp_path)
    io = np.load(f"{path}.io.npz")
    assert_close(result.run([io["input"]]), [io["output"]], atol=1e-5)
    assert result.report.keras_major == 2


def test_tfkeras_tensorflow_semantics(fixtures, tmp_path):
    """TFOpLambda arithmetic, TF's transposed-conv cropping, bilinear upsampling, 'same' pooling on odd sizes,
    a nested model called three times: against TensorFlow's outputs (fixtures/tfkeras_convert)."""
    path = fixtures / "tfkeras_convert" / "tfk_ops.h5"
    result = convert_to_file(path, tmp_path)
    io = np.load(f"{path}.io.npz")
    assert_close(result.run([io["input"]]), [io["logits"], io["third"]], atol=1e-5)
    classes = {layer.class_name for layer in result.report.layers}
    assert {"TFOpLambda", "Conv2DTranspose", "UpSampling2D", "AveragePooling2D"} <= classes


def test_tfkeras_recurrent_layers(fixtures, tmp_path):
    """tf.keras 2's GRU (reset_after), LSTM gate order, go_backwards and Bidirectional, against TensorFlow —
    through the written file, whose recurrent nodes carry string-list attributes (``activations``)."""
    path = fixtures / "tfkeras_convert" / "tfk_rnn.h5"
    result = convert_to_file(path, tmp_path)
    io = np.load(f"{path}.io.npz")
    assert_close(result.run([io["input"]]), [io["output"]], atol=1e-5)
    recurrent = [node for node in result.model.graph.node if node.op_type in ("GRU", "LSTM", "RNN")]
    assert sorted(node.op_type for node in recurrent) == ["GRU", "LSTM", "RNN"]
    activations = {node.op_type: list(onnx.helper.get_attribute_value(
        next(a for a in node.attribute if a.name == "activations"))) for node in recurrent}
    assert activations == {"GRU": [b"Sigmoid", b"Tanh"] * 2, "LSTM": [b"Sigmoid", b"Tanh", b"Tanh"],
                           "RNN": [b"Relu"]}


def test_tfkeras_weights_file_with_full_model_as_architecture(fixtures, tmp_path):
    folder = fixtures / "tfkeras"
    result = convert_to_file(folder / "tfk_cnn_weights.h5", tmp_path, arch=folder / "tfk_cnn_full.h5")
    io = np.load(folder / "tfk_cnn_weights.h5.io.npz")
    assert_close(result.run([io["input"]]), [io["output"]], atol=1e-5)


def test_tfkeras_nchw(fixtures, tmp_path):
    path = fixtures / "tfkeras" / "tfk_mobilenetv2_full.h5"
    io = np.load(f"{path}.io.npz")
    result = convert_to_file(path, tmp_path, nchw=True)
    assert_close(result.run([io["input"].transpose(0, 3, 1, 2)]), [io["output"]], atol=1e-5)


def test_face_classification_keras205_against_keras3(keras, real_weights, tmp_path):
    """Keras 3 loads this Keras 2.0.5 file itself (SeparableConv2D, BN, residual Adds, softmax head).
    Softmax outputs are small, so the logits (the pooled tensor before it) are compared too."""
    path = real_weights / FACE
    model = keras.saving.load_model(path, compile=False)
    result = convert_to_file(path, tmp_path)
    x = np.random.default_rng(0).standard_normal((4, 64, 64, 1)).astype(np.float32)
    assert_close(result.run([x]), keras_outputs(model, [x]), atol=1e-5)
    logits = keras.Model(model.inputs, model.get_layer("global_average_pooling2d_1").output)
    graph = result.model.graph
    graph.output.append(onnx.helper.make_tensor_value_info("global_average_pooling2d_1", onnx.TensorProto.FLOAT, None))
    expected = keras_outputs(logits, [x])
    assert np.max(np.abs(expected[0])) > 0.1
    assert_close(run_onnx(result.model, [x])[1:], expected, atol=1e-5)
