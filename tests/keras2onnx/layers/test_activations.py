"""Every Keras activation function and activation layer, converted and compared with Keras."""

from __future__ import annotations

import numpy as np
import pytest

from weightkit.formats.keras import parse_config
from weightkit.keras2onnx import unsupported_layers
from weightkit.keras2onnx.layers.activations import ACTIVATIONS

NAMES = ["relu", "relu6", "sigmoid", "hard_sigmoid", "hard_silu", "hard_swish", "silu", "swish", "gelu", "tanh",
         "softmax", "log_softmax", "elu", "selu", "celu", "softplus", "softsign", "exponential", "linear",
         "leaky_relu", "mish", "hard_tanh", "hard_shrink", "soft_shrink", "tanh_shrink", "log_sigmoid",
         "squareplus", "sparse_plus", "sparse_sigmoid", "glu"]


def conv_then(keras, layer):
    """Input → Conv2D → ``layer``: the activation runs on a channels-first tensor inside the graph."""
    inputs = keras.Input((5, 6, 4))
    x = keras.layers.Conv2D(4, 1, name="conv")(inputs)
    return keras.Model(inputs, layer(x))


@pytest.mark.parametrize("name", NAMES)
def test_activation_function(keras, check, name):
    keras.utils.set_random_seed(1)
    model = conv_then(keras, keras.layers.Activation(name, name="act"))
    check(model, inputs=[np.random.default_rng(0).normal(0, 2, (2, 5, 6, 4)).astype(np.float32)])


@pytest.mark.parametrize("name", ["gelu", "mish", "hard_silu"])
@pytest.mark.parametrize("opset", [13, 17])
def test_activations_decomposed_for_old_opsets(keras, check, name, opset):
    keras.utils.set_random_seed(1)
    check(conv_then(keras, keras.layers.Activation(name)), opset=opset)


def test_every_keras_activation_is_covered(keras):
    from keras.src import activations

    names = set(activations.ALL_OBJECTS_DICT) - {"threshold", "sparsemax"}  # need arguments / sorting
    assert names <= set(ACTIVATIONS) | {"linear"}


def test_hard_sigmoid_follows_the_writer_generation(keras, tmp_path):
    """Keras 3 defines hard_sigmoid as x/6 + 0.5; Keras 2 and tf.keras as 0.2x + 0.5."""
    from weightkit.keras2onnx.builder import GraphBuilder, Value
    from weightkit.keras2onnx.layers.activations import apply_activation

    for major, alpha in ((3, 1 / 6), (2, 0.2)):
        builder = GraphBuilder(20, major)
        apply_activation(builder, Value("x", (None, 3)), "hard_sigmoid", "hs")
        assert builder.nodes[0].attrs["alpha"] == pytest.approx(alpha)


@pytest.mark.parametrize("config", [
    {}, {"max_value": 6.0}, {"negative_slope": 0.1}, {"threshold": 0.5},
    {"max_value": 2.0, "negative_slope": 0.2}, {"max_value": 3.0, "threshold": 1.0, "negative_slope": 0.3},
])
def test_relu_layer_options(keras, check, config):
    keras.utils.set_random_seed(2)
    check(conv_then(keras, keras.layers.ReLU(**config)),
          inputs=[np.random.default_rng(3).normal(0, 3, (2, 5, 6, 4)).astype(np.float32)])


@pytest.mark.parametrize("make", [
    lambda k: k.layers.LeakyReLU(negative_slope=0.15),
    lambda k: k.layers.ELU(alpha=0.7),
    lambda k: k.layers.Softmax(axis=-1),
    lambda k: k.layers.Softmax(axis=1),
    lambda k: k.layers.PReLU(alpha_initializer=k.initializers.RandomNormal(0, 0.5, seed=1)),
    lambda k: k.layers.PReLU(alpha_initializer=k.initializers.RandomNormal(0, 0.5, seed=1), shared_axes=[1, 2]),
], ids=["leaky_relu", "elu", "softmax_channels", "softmax_rows", "prelu", "prelu_shared"])
def test_activation_layers(keras, check, make):
    keras.utils.set_random_seed(4)
    check(conv_then(keras, make(keras)), suffixes=(".keras", ".h5"))


def test_activation_option_of_conv_and_dense(keras, check):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, activation="swish")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5, activation="gelu")(x)
    check(keras.Model(inputs, x))


def test_custom_activation_is_reported_not_guessed():
    record = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "in"}},
        {"class_name": "Dense", "config": {"name": "d", "units": 2, "activation": {
            "module": "builtins", "class_name": "function", "config": "my_act", "registered_name": "function"}}},
        {"class_name": "Activation", "config": {"name": "a", "activation": "threshold"}},
    ]}}
    problems = unsupported_layers(parse_config(record))
    assert len(problems) == 2 and "custom activation" in problems[0] and "'threshold'" in problems[1]
