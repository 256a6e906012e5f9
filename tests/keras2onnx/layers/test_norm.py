"""Normalization layers against Keras, with statistics that are not the defaults."""

from __future__ import annotations

import numpy as np
import pytest


def randomize(keras, model, seed=0):
    """Give every weight random values (variances positive) so statistics and scales matter."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for variable in layer.weights:
            values = rng.normal(0, 0.5, variable.shape)
            if "variance" in variable.path:
                values = rng.uniform(0.3, 2.0, variable.shape)
            variable.assign(values.astype(np.float32))
    return model


def conv_model(keras, layer, input_shape=(6, 7, 4)):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(input_shape[-1], 1, name="conv")(inputs)
    return keras.Model(inputs, layer(x))


@pytest.mark.parametrize("options", [{}, {"scale": False}, {"center": False}, {"epsilon": 0.5}])
def test_batch_norm_after_conv(keras, check, options):
    model = randomize(keras, conv_model(keras, keras.layers.BatchNormalization(**options)))
    result = check(model, suffixes=(".keras", ".h5"))
    assert "BatchNormalization" in [n.op_type for n in result.model.graph.node]


def test_batch_norm_on_features_and_sequences(keras, check):
    inputs = keras.Input((5, 3))
    x = keras.layers.BatchNormalization(axis=1)(inputs)   # over time steps: the affine form
    x = keras.layers.BatchNormalization()(x)              # over features
    x = keras.layers.Flatten()(x)
    x = keras.layers.BatchNormalization()(x)              # (batch, features)
    check(randomize(keras, keras.Model(inputs, x)), suffixes=(".keras", ".h5"))


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.parametrize("options", [
    {}, {"axis": [1, 2, 3]}, {"axis": [2, 3]}, {"center": False}, {"scale": False}, {"rms_scaling": True},
])
def test_layer_norm(keras, check, options):
    model = randomize(keras, conv_model(keras, keras.layers.LayerNormalization(epsilon=1e-5, **options)))
    check(model, suffixes=(".keras", ".h5"), atol=2e-5)


def test_layer_norm_over_leading_axes(keras, tmp_path):
    """Axes (1, 2) of an NHWC tensor: Keras's torch backend cannot run it, so numpy is the reference."""
    from ..conftest import convert_to_file

    model = randomize(keras, conv_model(keras, keras.layers.LayerNormalization(axis=[1, 2], epsilon=1e-4)))
    model.save(tmp_path / "ln.keras")
    x = np.random.default_rng(0).standard_normal((2, 6, 7, 4)).astype(np.float32)
    conv, norm = model.layers[1], model.layers[2]
    kernel, bias = (np.asarray(w) for w in conv.get_weights())
    gamma, beta = (np.asarray(w) for w in norm.get_weights())
    y = np.einsum("nhwc,cd->nhwd", x, kernel[0, 0]) + bias
    mean, var = y.mean(axis=(1, 2), keepdims=True), y.var(axis=(1, 2), keepdims=True)
    expected = (y - mean) / np.sqrt(var + 1e-4) * gamma[None, :, :, None] + beta[None, :, :, None]
    actual = convert_to_file(tmp_path / "ln.keras", tmp_path).run([x])[0]
    np.testing.assert_allclose(actual, expected, atol=2e-5)


@pytest.mark.parametrize("opset", [13, 17])
def test_layer_norm_opsets(keras, check, opset):
    model = randomize(keras, conv_model(keras, keras.layers.LayerNormalization()))
    check(model, opset=opset, atol=2e-5)


def test_normalization_from_weights_and_config(keras, check):
    adapted = keras.layers.Normalization(axis=-1)
    adapted.adapt(np.random.default_rng(0).normal(3, 2, (50, 6, 7, 4)).astype(np.float32))
    check(conv_model(keras, adapted), suffixes=(".keras", ".h5"))
    fixed = keras.layers.Normalization(mean=[1.0, 2.0, 3.0, 4.0], variance=[4.0, 1.0, 0.25, 9.0])
    check(conv_model(keras, fixed), suffixes=(".keras", ".h5"))
    inverted = keras.layers.Normalization(mean=2.0, variance=3.0, invert=True)
    check(conv_model(keras, inverted))


@pytest.mark.parametrize("options", [{"scale": 1 / 255}, {"scale": 2.0, "offset": -1.0},
                                     {"scale": [0.5, 1.0, 2.0, 4.0], "offset": [0.0, 1.0, -1.0, 0.5]}])
def test_rescaling(keras, check, options):
    check(conv_model(keras, keras.layers.Rescaling(**options)), suffixes=(".keras", ".h5"))
