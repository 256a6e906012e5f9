"""Dense against Keras on every rank: Gemm, MatMul on sequences, a 1x1 Conv on channels-first feature maps."""

from __future__ import annotations


def test_dense_on_vectors_sequences_and_feature_maps(keras, check):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 6, 3))
    maps = keras.layers.Conv2D(4, 1)(inputs)
    pointwise = keras.layers.Dense(6, activation="relu")(maps)          # rank 4, channels-first inside
    sequence = keras.layers.Reshape((30, 6))(pointwise)
    projected = keras.layers.Dense(2, use_bias=False)(sequence)         # rank 3
    vector = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(projected))  # rank 2
    result = check(keras.Model(inputs, vector), suffixes=(".keras", ".h5"))
    ops = [n.op_type for n in result.model.graph.node]
    assert {"Gemm", "MatMul"} <= set(ops) and ops.count("Conv") == 2


def test_dense_on_keras_order_feature_map(keras, check):
    """A Dense straight after the input (NHWC, never transposed) is a MatMul."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4, 4, 3))
    result = check(keras.Model(inputs, keras.layers.Dense(5)(inputs)))
    assert "Transpose" not in [n.op_type for n in result.model.graph.node]
