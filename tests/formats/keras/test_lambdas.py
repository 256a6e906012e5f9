"""Known Lambda layers: recognised from their config as data, and their output shapes as Keras computes them."""

from __future__ import annotations

import json

import pytest

import weightkit
from weightkit.formats.keras import infer_shapes, parse_config
from weightkit.formats.keras.lambdas import SPACE_TO_DEPTH, KnownLambda, known_lambda

from ...yolo_nets import full_yolo_extractor, save_yolo_files, space_to_depth_x2

keras = pytest.importorskip("keras")


def space_to_depth_x4(x):
    """A block size of 4, told by the name's suffix."""
    _, h, w, c = x.shape
    x = keras.ops.reshape(x, (-1, h // 4, 4, w // 4, 4, c))
    x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return keras.ops.reshape(x, (-1, h // 4, w // 4, 16 * c))


def parsed(model):
    return parse_config(json.loads(json.dumps(keras.saving.serialize_keras_object(model))))


def lambda_config(function) -> dict:
    layer = keras.layers.Lambda(function)
    return json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))["config"]


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    return save_yolo_files(tmp_path_factory.mktemp("yolo"))


@pytest.mark.parametrize("function, block", [(space_to_depth_x2, 2), (space_to_depth_x4, 4)])
def test_a_named_keras3_function_is_known_with_its_block_size(function, block):
    assert known_lambda(lambda_config(function)) == KnownLambda(function.__name__, SPACE_TO_DEPTH, block)


@pytest.mark.parametrize("function, block", [(space_to_depth_x2, 2), (space_to_depth_x4, 4)])
def test_keras2_marshalled_code_is_read_as_data(function, block):
    """Keras 2 and tf.keras store the function's code (base64 marshal): its own name tells, nothing is loaded.

    ``space_to_depth_x2``'s docstring names ``tf.nn.space_to_depth`` too, and marshal puts a type byte
    right after each name: neither may change the block size.
    """
    from keras.src.utils.python_utils import func_dump

    code, defaults, closure = func_dump(function)
    config = {"function": [code, defaults, closure], "function_type": "lambda"}
    assert known_lambda(config) == KnownLambda(function.__name__, SPACE_TO_DEPTH, block)


@pytest.mark.parametrize("function", [lambda x: x * 2, keras.ops.relu], ids=["python lambda", "other function"])
def test_other_lambdas_are_unknown_and_leave_the_shapes_after_them_unknown(function):
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Lambda(function, name="mystery")(keras.layers.Conv2D(4, 1, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="after")(x))
    assert known_lambda(lambda_config(function)) is None
    shapes = infer_shapes(parsed(model))
    assert shapes["conv"] == (None, 8, 8, 4)
    assert shapes["mystery"] is None and shapes["after"] is None


@pytest.mark.parametrize("function, size", [(space_to_depth_x2, (12, 10, 3)), (space_to_depth_x4, (16, 8, 5))])
def test_space_to_depth_shape_is_the_one_keras_computes(function, size):
    inputs = keras.Input(size, name="image")
    outputs = keras.layers.Lambda(function, name="reorg")(inputs)
    assert infer_shapes(parsed(keras.Model(inputs, outputs)))["reorg"] == tuple(outputs.shape)


def test_a_size_the_block_does_not_divide_is_unknown():
    assert known_lambda(lambda_config(space_to_depth_x2)).output_shape((None, 7, 8, 3)) == (None, None, 4, 12)


def test_every_layer_of_the_full_yolo_extractor_has_the_shape_keras_computes():
    extractor = full_yolo_extractor()
    inferred = infer_shapes(parsed(extractor))
    for layer in extractor.layers:
        assert inferred[layer.name] == tuple(layer.output.shape), layer.name


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_the_detector_file_states_the_output_shape_keras_computes(yolo, suffix):
    with weightkit.load(yolo.detector_h5 if suffix == ".h5" else yolo.detector_keras) as model:
        assert [spec.shape for spec in model.outputs] == [yolo.detector.output_shape]
