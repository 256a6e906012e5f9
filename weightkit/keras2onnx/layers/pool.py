"""Pooling: Max/AveragePooling 1D-3D with TF padding, and the global poolings.

TF's ``same`` average pooling divides by the cells inside the input only, which is
ONNX AveragePool with explicit pads and ``count_include_pad=0``.
"""

from __future__ import annotations

from typing import Any

from ...formats.keras import ConfigLayer
from ...model import Dim
from ..builder import GraphBuilder, Value
from ..padding import window_pads
from .base import LayerCall, emits, option

_MAX = ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D")
_AVERAGE = ("AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D", "AvgPool3D")
_GLOBAL_MAX = ("GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalMaxPool1D",
               "GlobalMaxPool2D", "GlobalMaxPool3D")
_GLOBAL_AVERAGE = ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
                   "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D")


def _rank(layer: ConfigLayer) -> int:
    return 1 if "1D" in layer.class_name else 3 if "3D" in layer.class_name else 2


def _ints(value: Any, rank: int) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)] * rank


def _channels_last(config: dict[str, Any]) -> bool:
    return config.get("data_format") != "channels_first"


def _check(layer: ConfigLayer) -> str | None:
    padding = str(option(layer.config, "padding", default="valid")).lower()
    return None if padding in ("valid", "same") else f"padding {padding!r}"


def _pool(op: str, b: GraphBuilder, call: LayerCall) -> list[Value]:
    rank, config = _rank(call.layer), call.config
    pool = _ints(option(config, "pool_size", default=2), rank)
    strides = _ints(option(config, "strides", default=pool), rank)
    padding = str(option(config, "padding", default="valid")).lower()
    last = _channels_last(config)
    x = b.channels_first(call.inputs[0]) if last else b.keras_order(call.inputs[0])
    sizes: list[Dim] = list(x.shape[1:-1] if last else x.shape[2:]) if x.shape else [None] * rank
    pads, auto = window_pads(padding, sizes, pool, strides, [1] * rank)
    attrs: dict[str, Any] = {"kernel_shape": pool, "strides": strides}
    attrs.update({"pads": pads} if pads is not None else {"auto_pad": auto})
    if auto:
        b.warnings.append(f"{call.path}: input size unknown, so 'same' padding is auto_pad=SAME_UPPER")
    if op == "AveragePool":
        attrs["count_include_pad"] = 0
    return [call.output(b.node(op, [x.name], call.path, **attrs), x)]


@emits(*_MAX, check=_check)
def max_pool(b: GraphBuilder, call: LayerCall) -> list[Value]:
    return _pool("MaxPool", b, call)


@emits(*_AVERAGE, check=_check)
def average_pool(b: GraphBuilder, call: LayerCall) -> list[Value]:
    return _pool("AveragePool", b, call)


def _global(op: str, b: GraphBuilder, call: LayerCall) -> list[Value]:
    """Reduce over the spatial axes of the tensor as it is laid out; keepdims keeps the layout."""
    x = call.inputs[0]
    rank = x.rank or 4
    last = _channels_last(call.config)
    spatial = range(1, rank - 1) if last else range(2, rank)
    axes = sorted(x.onnx_axis(a) for a in spatial)
    keepdims = bool(call.config.get("keepdims", False))
    output = b.reduce(op, x.name, axes, call.path, keepdims=keepdims)
    if keepdims:
        return [call.output(output, x)]
    return [Value(output, call.output_shape(), None)]


@emits(*_GLOBAL_MAX)
def global_max_pool(b: GraphBuilder, call: LayerCall) -> list[Value]:
    return _global("ReduceMax", b, call)


@emits(*_GLOBAL_AVERAGE)
def global_average_pool(b: GraphBuilder, call: LayerCall) -> list[Value]:
    return _global("ReduceMean", b, call)
