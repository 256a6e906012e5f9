"""Convolutions against Keras: kernels, TF 'same' padding on odd and even sizes, strides, dilation, groups."""

from __future__ import annotations

import numpy as np
import pytest

from weightkit.keras2onnx.layers.conv import onnx_kernel


def model_of(keras, input_shape, *layers):
    inputs = keras.Input(input_shape)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("options", [
    dict(kernel_size=3, strides=2, padding="same"),
    dict(kernel_size=4, strides=2, padding="same"),
    dict(kernel_size=2, strides=1, padding="same"),
    dict(kernel_size=3, strides=3, padding="same"),
    dict(kernel_size=5, strides=2, padding="valid"),
    dict(kernel_size=(3, 1), strides=(2, 1), padding="same"),
    dict(kernel_size=3, dilation_rate=2, padding="same"),
    dict(kernel_size=3, groups=2, padding="same", use_bias=False),
])
def test_conv2d_on_odd_and_even_sizes(keras, check, options):
    keras.utils.set_random_seed(0)
    for size in ((15, 16), (16, 15)):
        check(model_of(keras, (*size, 4), keras.layers.Conv2D(6, **options)), suffixes=(".keras", ".h5"))


@pytest.mark.parametrize("options", [
    dict(kernel_size=3, strides=2, padding="same", depth_multiplier=1),
    dict(kernel_size=3, padding="same", depth_multiplier=2),
    dict(kernel_size=5, strides=2, padding="valid", depth_multiplier=3, use_bias=False),
])
def test_depthwise_conv2d(keras, check, options):
    keras.utils.set_random_seed(1)
    check(model_of(keras, (11, 12, 4), keras.layers.DepthwiseConv2D(bias_initializer="glorot_uniform", **options)),
          suffixes=(".keras", ".h5"))


@pytest.mark.parametrize("options", [
    dict(kernel_size=3, strides=2, padding="same", depth_multiplier=1),
    dict(kernel_size=3, padding="valid", depth_multiplier=2, use_bias=False),
])
def test_separable_conv(keras, check, options):
    keras.utils.set_random_seed(2)
    check(model_of(keras, (11, 12, 4), keras.layers.SeparableConv2D(5, bias_initializer="glorot_uniform", **options)),
          suffixes=(".keras", ".h5"))
    check(model_of(keras, (13, 4), keras.layers.SeparableConv1D(5, **options)))


@pytest.mark.parametrize("options", [
    dict(kernel_size=4, strides=2, padding="same"),
    dict(kernel_size=2, strides=2, padding="same"),
    dict(kernel_size=3, strides=1, padding="same"),
    dict(kernel_size=3, strides=2, padding="valid"),
    dict(kernel_size=2, strides=3, padding="valid"),
    dict(kernel_size=3, strides=2, padding="valid", output_padding=1),
])
def test_conv2d_transpose(keras, check, options):
    """Cases where Keras's torch backend and TF agree (the torch backend warns about the others)."""
    keras.utils.set_random_seed(3)
    check(model_of(keras, (5, 6, 4), keras.layers.Conv2DTranspose(3, bias_initializer="glorot_uniform", **options)),
          suffixes=(".keras", ".h5"))


def test_conv2d_transpose_same_odd_kernel_crops_like_tensorflow():
    """k=3, s=2 'same': TF crops the full (2n+1) output at the end only; checked against a numpy transposed conv."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    from weightkit.keras2onnx.padding import transpose_pads

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 4)).astype(np.float32)
    w = rng.standard_normal((1, 1, 3)).astype(np.float32)
    full = np.zeros(2 * 3 + 3)
    for i in range(4):
        full[2 * i:2 * i + 3] += x[0, 0, i] * w[0, 0]
    expected = full[:8]  # TF: total crop 1, before = 0
    pads, extra = transpose_pads("same", [3], [2], [1], None)
    assert pads == [0, 1] and extra == [0]
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[3], strides=[2], pads=pads)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0][0, 0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [
    dict(kernel_size=3, padding="causal", dilation_rate=2),
    dict(kernel_size=4, strides=2, padding="same"),
    dict(kernel_size=3, padding="valid"),
])
def test_conv1d(keras, check, options):
    keras.utils.set_random_seed(4)
    check(model_of(keras, (17, 3), keras.layers.Conv1D(5, **options)), suffixes=(".keras", ".h5"))


def test_conv3d_and_depthwise1d(keras, check):
    keras.utils.set_random_seed(5)
    check(model_of(keras, (5, 6, 7, 2), keras.layers.Conv3D(3, 3, strides=2, padding="same")))
    check(model_of(keras, (9, 3), keras.layers.DepthwiseConv1D(3, depth_multiplier=2, padding="same")))


def test_channels_first_conv_needs_no_transpose(keras, check):
    keras.utils.set_random_seed(6)
    model = model_of(keras, (3, 9, 10), keras.layers.Conv2D(4, 3, padding="same", data_format="channels_first"),
                     keras.layers.MaxPooling2D(2, data_format="channels_first"))
    result = check(model)
    assert [n.op_type for n in result.model.graph.node] == ["Conv", "MaxPool"]


def test_kernel_layouts():
    hwio = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    assert onnx_kernel(hwio, "HWIO").shape == (5, 4, 2, 3)
    assert onnx_kernel(hwio, "HWIO")[1, 2, 0, 1] == hwio[0, 1, 2, 1]
    oihw = np.zeros((5, 4, 2, 3))
    assert onnx_kernel(oihw, "OIHW") is oihw
