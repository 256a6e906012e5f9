"""LSTM, GRU and SimpleRNN against Keras: gate orders, biases, directions, sequences and states."""

from __future__ import annotations

import numpy as np
import pytest


def randomized(keras, model, seed=0):
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype(np.float32))
    return model


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("options", [
    {}, {"return_sequences": True}, {"go_backwards": True}, {"go_backwards": True, "return_sequences": True},
    {"use_bias": False, "activation": "relu"}, {"return_state": True, "return_sequences": True},
])
def test_recurrent_layers(keras, check, kind, options):
    if kind == "SimpleRNN" and options.get("return_state"):
        options = {**options}
    inputs = keras.Input((7, 3))
    x = keras.layers.Dense(3)(inputs)
    outputs = getattr(keras.layers, kind)(5, **options)(x)
    check(randomized(keras, keras.Model(inputs, outputs)), suffixes=(".keras", ".h5"))


@pytest.mark.parametrize("options", [{"reset_after": False}, {"recurrent_activation": "hard_sigmoid"},
                                     {"recurrent_activation": "relu", "activation": "softsign"}])
def test_gru_and_lstm_variants(keras, check, options):
    inputs = keras.Input((6, 4))
    gru = keras.layers.GRU(3, return_sequences=True, **options)(inputs)
    lstm_options = {k: v for k, v in options.items() if k != "reset_after"}
    lstm = keras.layers.LSTM(3, **lstm_options)(gru)
    check(randomized(keras, keras.Model(inputs, lstm)), suffixes=(".keras", ".h5"))


def test_stacked_sequences_feed_conv1d_and_dense(keras, check):
    inputs = keras.Input((9, 2))
    x = keras.layers.Conv1D(4, 3, padding="same")(inputs)
    x = keras.layers.LSTM(6, return_sequences=True)(x)
    x = keras.layers.Conv1D(3, 2)(x)
    x = keras.layers.Dense(2)(keras.layers.GRU(4, return_sequences=True, go_backwards=True)(x))
    check(randomized(keras, keras.Model(inputs, x)), suffixes=(".keras", ".h5"))


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("sequences", [False, True])
def test_bidirectional(keras, check, kind, merge_mode, sequences):
    inputs = keras.Input((6, 3))
    layer = keras.layers.Bidirectional(getattr(keras.layers, kind)(4, return_sequences=sequences),
                                       merge_mode=merge_mode)
    check(randomized(keras, keras.Model(inputs, layer(inputs))), suffixes=(".keras", ".h5"))


def test_bidirectional_states(keras, check):
    inputs = keras.Input((6, 3))
    outputs = keras.layers.Bidirectional(keras.layers.LSTM(4, return_state=True))(inputs)
    check(randomized(keras, keras.Model(inputs, outputs)))
