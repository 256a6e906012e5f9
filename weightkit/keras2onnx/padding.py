"""TensorFlow's padding rules as explicit ONNX pads.

TF's ``same`` puts the odd pixel at the end (bottom/right); ONNX ``SAME_UPPER``
agrees, but explicit pads are preferred where the input size is known, because
pooling marks ``auto_pad`` deprecated and AveragePool must leave padded cells out.
"""

from __future__ import annotations

from math import ceil

from ..model import Dim

__all__ = ["window_pads", "transpose_pads"]


def window_pads(padding: str, sizes: list[Dim], kernel: list[int], strides: list[int],
                dilations: list[int]) -> tuple[list[int] | None, str | None]:
    """ONNX ``pads`` (all begins, then all ends) for a windowed op, or ``auto_pad`` when a size is unknown.

    Returns ``(pads, None)`` or ``(None, "SAME_UPPER")``.
    """
    rank = len(kernel)
    if padding == "valid":
        return [0] * (2 * rank), None
    effective = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
    if padding == "causal":  # Conv1D: everything before
        return [e - 1 for e in effective] + [0] * rank, None
    begins, ends = [], []
    for size, span, stride in zip(sizes, effective, strides):
        if stride == 1:
            total = span - 1  # independent of the size
        elif isinstance(size, int):
            total = max((ceil(size / stride) - 1) * stride + span - size, 0)
        else:
            return None, "SAME_UPPER"
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends, None


def transpose_pads(padding: str, kernel: list[int], strides: list[int], dilations: list[int],
                   output_padding: list[int] | None) -> tuple[list[int], list[int]]:
    """``pads`` and ``output_padding`` for ConvTranspose giving Keras's output length.

    Keras's length is ``in*s`` (same) or ``in*s + max(k-s, 0)`` (valid), or with
    ``output_padding`` p: ``(in-1)*s + k - 2*pad + p``. The full transposed length is
    ``(in-1)*s + k``; TF crops the difference with the smaller half first.
    """
    begins, ends, extra = [], [], []
    for index, (k, s, d) in enumerate(zip(kernel, strides, dilations)):
        span = d * (k - 1) + 1
        if output_padding is None:
            # full - keras length, both counted from (in-1)*s so `in` cancels out
            difference = span - s if padding == "same" else span - s - max(span - s, 0)
        else:
            pad = span // 2 if padding == "same" else 0
            difference = 2 * pad - output_padding[index]
        total = max(difference, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
        extra.append(max(-difference, 0))
    return begins + ends, extra
