"""Shape layers: Flatten, Reshape, Permute, ZeroPadding, Cropping, UpSampling.

Flatten and Reshape act on Keras's channels-last order, so their input is first
transposed back to it. Permute costs nothing: the output is the same ONNX tensor
with its axes relabelled. Padding, cropping and resizing work in any layout.
"""

from __future__ import annotations

from typing import Any

from ...formats.keras import ConfigLayer
from ..builder import GraphBuilder, Value, identity
from .base import LayerCall, emits

_INT64_MAX = 2**63 - 1


def _rank(layer: ConfigLayer) -> int:
    return 1 if "1D" in layer.class_name else 3 if "3D" in layer.class_name else 2


def _spatial_axes(config: dict[str, Any], rank: int) -> list[int]:
    """Keras axes of the spatial dimensions of a ``rank``-D layer's input."""
    first = config.get("data_format") == "channels_first"
    return list(range(2, rank + 2)) if first else list(range(1, rank + 1))


@emits("Flatten")
def flatten(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """Flatten in channels-last order (Keras transposes channels_first inputs first)."""
    x = call.inputs[0]
    rank = x.rank or 2
    order = identity(rank)
    if call.config.get("data_format") == "channels_first" and rank > 2:
        order = (0, *range(2, rank), 1)
    x = b.relayout(x, order)
    return [Value(b.node("Flatten", [x.name], call.path, axis=1), call.output_shape())]


@emits("Reshape")
def reshape(b: GraphBuilder, call: LayerCall) -> list[Value]:
    x = b.keras_order(call.inputs[0])
    target = [int(d) if d is not None else -1 for d in call.config["target_shape"]]
    shape = b.ints([0, *target], f"{call.path}/shape")
    return [Value(b.node("Reshape", [x.name, shape], call.path), call.output_shape())]


@emits("Permute")
def permute(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """No data moves: y = x.transpose(D), so y's ONNX tensor is x's with axes relabelled by D."""
    x = call.inputs[0]
    order = (0, *(int(d) for d in call.config["dims"]))
    relabelled = tuple(order.index(axis) for axis in x.axes())
    output = b.node("Identity", [x.name], call.path)
    return [Value(output, call.output_shape(), None if relabelled == identity(len(order)) else relabelled)]


def _pairs(value: Any, rank: int) -> list[tuple[int, int]]:
    if isinstance(value, int):
        return [(value, value)] * rank
    if rank == 1 and len(value) == 2 and all(isinstance(item, int) for item in value):  # 1D: (before, after)
        return [(int(value[0]), int(value[1]))]
    return [(int(item), int(item)) if isinstance(item, int) else (int(item[0]), int(item[1])) for item in value]


@emits("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
def zero_padding(b: GraphBuilder, call: LayerCall) -> list[Value]:
    x = call.inputs[0]
    rank = x.rank or 4
    begins, ends = [0] * rank, [0] * rank
    pairs = _pairs(call.config.get("padding", 1), _rank(call.layer))
    for axis, (before, after) in zip(_spatial_axes(call.config, _rank(call.layer)), pairs):
        begins[x.onnx_axis(axis)], ends[x.onnx_axis(axis)] = before, after
    pads = b.ints(begins + ends, f"{call.path}/pads")
    return [call.output(b.node("Pad", [x.name, pads], call.path, mode="constant"), x)]


@emits("Cropping1D", "Cropping2D", "Cropping3D")
def cropping(b: GraphBuilder, call: LayerCall) -> list[Value]:
    x = call.inputs[0]
    pairs = _pairs(call.config.get("cropping", 0), _rank(call.layer))
    axes, starts, ends = [], [], []
    for axis, (before, after) in zip(_spatial_axes(call.config, _rank(call.layer)), pairs):
        axes.append(x.onnx_axis(axis))
        starts.append(before)
        ends.append(-after if after else _INT64_MAX)
    inputs = [x.name, b.ints(starts, f"{call.path}/starts"), b.ints(ends, f"{call.path}/ends"),
              b.ints(axes, f"{call.path}/axes")]
    return [call.output(b.node("Slice", inputs, call.path), x)]


def _check_upsampling(layer: ConfigLayer) -> str | None:
    interpolation = layer.config.get("interpolation", "nearest")
    return None if interpolation in ("nearest", "bilinear") else f"interpolation {interpolation!r}"


@emits("UpSampling1D", "UpSampling2D", "UpSampling3D", check=_check_upsampling)
def upsampling(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """Resize by integer factors: nearest (floor, asymmetric) or bilinear (half-pixel, as tf.image.resize)."""
    x = call.inputs[0]
    rank = x.rank or 4
    size = call.config.get("size", 2)
    factors = [int(f) for f in size] if isinstance(size, (list, tuple)) else [int(size)] * _rank(call.layer)
    scales = [1.0] * rank
    for axis, factor in zip(_spatial_axes(call.config, _rank(call.layer)), factors):
        scales[x.onnx_axis(axis)] = float(factor)
    if call.config.get("interpolation", "nearest") == "bilinear":
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
        if b.keras_major < 3:
            b.warnings.append(f"{call.path}: bilinear upsampling uses TF 2's half-pixel sampling; a model "
                              "trained with TF 1 (standalone Keras 2) sampled without it")
    else:
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    scale_name = b.constant(scales, f"{call.path}/scales")
    return [call.output(b.node("Resize", [x.name, "", scale_name], call.path, **attrs), x)]
