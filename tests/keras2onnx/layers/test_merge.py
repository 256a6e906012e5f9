"""Merge layers against Keras, including operands in different layouts and broadcasting."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("kind", ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"])
def test_merge_of_feature_maps(keras, check, kind):
    """One operand comes from a Conv (channels-first inside the graph), the other straight from the input."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 6, 3))
    conv = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    check(keras.Model(inputs, getattr(keras.layers, kind)()([conv, inputs])), suffixes=(".keras", ".h5"))


def test_three_way_merges_and_squeeze_excite_broadcast(keras, check):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((5, 6, 4))
    a = keras.layers.Conv2D(4, 1)(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    total = keras.layers.Add()([a, b, inputs])
    mean = keras.layers.Average()([a, b, inputs])
    squeeze = keras.layers.GlobalAveragePooling2D(keepdims=True)(total)
    excite = keras.layers.Multiply()([mean, squeeze])  # (N,5,6,4) * (N,1,1,4)
    vector = keras.layers.Reshape((1, 1, 4))(keras.layers.Dense(4)(keras.layers.GlobalMaxPooling2D()(a)))
    check(keras.Model(inputs, keras.layers.Maximum()([excite, vector])))


@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_concatenate_axes(keras, check, axis):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((4, 4, 3))
    conv = keras.layers.Conv2D(3, 1)(inputs)
    check(keras.Model(inputs, keras.layers.Concatenate(axis=axis)([conv, inputs, conv])), suffixes=(".keras", ".h5"))


def test_merge_of_different_ranks_inserts_axes_after_batch(keras, check):
    """Keras merge layers expand (N, C) to (N, 1, 1, C), unlike NumPy broadcasting."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((5, 6, 4))
    maps = keras.layers.Conv2D(4, 1)(inputs)
    vector = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(inputs))
    check(keras.Model(inputs, [keras.layers.Multiply()([maps, vector]), keras.layers.Add()([vector, inputs])]))
