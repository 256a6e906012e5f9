"""Keras 3 operations in functional configs (``x + 3``, ``ops.multiply``), as .keras and as .h5 (no module);
tf.keras TFOpLambda functions (checked against TensorFlow in test_fixtures)."""

from __future__ import annotations


def test_arithmetic_with_constants_and_tensors(keras, check):
    ops = keras.ops
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 5, 3))
    x = keras.layers.Conv2D(3, 1)(inputs)
    hard = ops.multiply(keras.layers.ReLU(6.0)(ops.add(x, 3.0)), 1.0 / 6.0)  # MobileNetV3's hard_sigmoid
    y = 2.0 - ops.divide(hard, 3.0)
    y = ops.maximum(ops.subtract(y, inputs), ops.minimum(x, 0.5))
    y = ops.power(ops.abs(y), 2.0) + ops.square(x) - ops.negative(ops.sqrt(ops.abs(x)))
    check(keras.Model(inputs, y), suffixes=(".keras", ".h5"))


def test_activation_and_reduction_ops(keras, check):
    ops = keras.ops
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4, 5, 3))
    x = keras.layers.Conv2D(6, 1)(inputs)
    a = ops.gelu(x, approximate=True) + ops.gelu(x, approximate=False) + ops.silu(x) + ops.hard_silu(x)
    b = ops.sigmoid(a) * ops.tanh(a) + ops.relu(a) + ops.exp(-ops.abs(a))
    pooled = ops.mean(b, axis=[1, 2])
    kept = ops.max(b, axis=[1, 2], keepdims=True)
    flat = ops.reshape(b * kept, (-1, 120))
    check(keras.Model(inputs, [pooled, ops.softmax(flat), ops.sum(b, axis=-1)]))


def test_tfoplambda_functions_are_recognised_by_name_only():
    from weightkit.formats.keras import parse_config
    from weightkit.keras2onnx import unsupported_layers

    def op(function):
        return {"class_name": "TFOpLambda", "config": {"name": f"tf.{function}", "function": function}}

    record = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "in"}},
        op("math.multiply"), op("nn.relu6"), op("image.resize")]}}
    assert unsupported_layers(parse_config(record)) == [
        "tf.image.resize (TFOpLambda): TensorFlow function tf.image.resize is not supported"]
