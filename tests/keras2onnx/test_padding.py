"""TF 'same' padding as explicit ONNX pads, against TensorFlow's formula computed by brute force."""

from __future__ import annotations

from math import ceil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weightkit.keras2onnx.padding import transpose_pads, window_pads


@given(size=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 4), dilation=st.integers(1, 3))
def test_same_pads_give_tf_output_size_and_odd_pixel_at_the_end(size, kernel, stride, dilation):
    pads, auto = window_pads("same", [size], [kernel], [stride], [dilation])
    assert auto is None
    before, after = pads
    span = dilation * (kernel - 1) + 1
    assert (size + before + after - span) // stride + 1 == ceil(size / stride)
    assert after - before in (0, 1)


def test_unknown_size_falls_back_to_same_upper_only_when_stride_matters():
    assert window_pads("same", [None], [3], [2], [1]) == (None, "SAME_UPPER")
    assert window_pads("same", [None], [4], [1], [1]) == ([1, 2], None)
    assert window_pads("valid", [None, None], [3, 3], [2, 2], [1, 1]) == ([0, 0, 0, 0], None)
    assert window_pads("causal", [10], [3], [1], [2]) == ([4, 0], None)


@pytest.mark.parametrize("padding, kernel, stride, extra", [
    ("same", 3, 2, None), ("same", 4, 2, None), ("same", 1, 3, None), ("valid", 3, 2, None),
    ("valid", 2, 3, None), ("valid", 3, 2, 1), ("same", 5, 2, 1),
])
def test_transpose_pads_give_keras_length(padding, kernel, stride, extra):
    for size in (1, 4, 7):
        pads, output_padding = transpose_pads(padding, [kernel], [stride], [1], None if extra is None else [extra])
        onnx_length = stride * (size - 1) + output_padding[0] + kernel - pads[0] - pads[1]
        if extra is None:
            keras_length = size * stride if padding == "same" else size * stride + max(kernel - stride, 0)
        else:
            pad = kernel // 2 if padding == "same" else 0
            keras_length = (size - 1) * stride + kernel - 2 * pad + extra
        assert onnx_length == keras_length
        assert 0 <= pads[1] - pads[0] <= 1 and output_padding[0] < stride
