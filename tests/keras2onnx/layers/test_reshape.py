"""Shape layers against Keras: Flatten in channels-last order, Reshape, Permute, padding, cropping, upsampling."""

from __future__ import annotations

import pytest


def after_conv(keras, *layers, shape=(6, 5, 3)):
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 1, name="conv")(inputs)
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def test_flatten_uses_keras_order_then_dense(keras, check):
    keras.utils.set_random_seed(0)
    check(after_conv(keras, keras.layers.Flatten(), keras.layers.Dense(3)), suffixes=(".keras", ".h5"))


def test_flatten_channels_first(keras, check):
    inputs = keras.Input((3, 4, 5))
    x = keras.layers.Conv2D(2, 1, data_format="channels_first")(inputs)
    check(keras.Model(inputs, keras.layers.Flatten(data_format="channels_first")(x)))


def test_reshape_and_permute(keras, check):
    keras.utils.set_random_seed(1)
    model = after_conv(keras, keras.layers.Permute((3, 1, 2)), keras.layers.Conv2D(2, 1),
                       keras.layers.Permute((2, 3, 1)), keras.layers.Reshape((-1, 4)), keras.layers.Dense(2))
    check(model, suffixes=(".keras", ".h5"))


@pytest.mark.parametrize("padding", [1, (2, 1), ((1, 0), (0, 2))])
def test_zero_padding_and_cropping(keras, check, padding):
    model = after_conv(keras, keras.layers.ZeroPadding2D(padding), keras.layers.Cropping2D(((1, 0), (2, 1))))
    check(model, suffixes=(".keras", ".h5"))


def test_padding_and_cropping_1d(keras, check):
    inputs = keras.Input((9, 3))
    x = keras.layers.ZeroPadding1D((2, 1))(inputs)
    check(keras.Model(inputs, keras.layers.Cropping1D((1, 3))(x)))


@pytest.mark.parametrize("options", [dict(size=2), dict(size=(2, 3)), dict(size=2, interpolation="bilinear"),
                                     dict(size=(3, 2), interpolation="bilinear")])
def test_upsampling_2d(keras, check, options):
    keras.utils.set_random_seed(2)
    check(after_conv(keras, keras.layers.UpSampling2D(**options)), suffixes=(".keras", ".h5"))


def test_upsampling_1d(keras, check):
    inputs = keras.Input((5, 3))
    check(keras.Model(inputs, keras.layers.UpSampling1D(3)(inputs)))
