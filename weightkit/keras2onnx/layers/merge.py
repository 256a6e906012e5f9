"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Keras 1 ``Merge``.

Operands are first brought to one layout (`GraphBuilder.align`) so ONNX's
broadcasting matches Keras's; Concatenate's axis follows the layout.
"""

from __future__ import annotations

from typing import Literal

from ...formats.keras import ConfigLayer
from ..builder import GraphBuilder, Shape, Value
from .base import LayerCall, emits

_VARIADIC = {"Add": "Sum", "Maximum": "Max", "Minimum": "Min", "Average": "Mean"}
_MERGE_MODES = {"sum": "Add", "mul": "Multiply", "ave": "Average", "max": "Maximum", "concat": "Concatenate"}


def elementwise(b: GraphBuilder, class_name: str, values: list[Value], name: str,
                shape: Shape | None | Literal[True] = True) -> Value:
    """Keras's merge of ``values`` by ``class_name`` (Add, Subtract, Multiply, Average, Maximum, Minimum)."""
    values = b.align(values, name, expand_at=1)
    names = [v.name for v in values]
    if class_name == "Subtract":
        output = b.node("Sub", names, name)
    elif class_name == "Multiply":
        output = names[0]
        for index, other in enumerate(names[1:], 1):
            output = b.node("Mul", [output, other], name if index == len(names) - 1 else f"{name}/mul{index}")
    elif len(names) == 2 and class_name in ("Add", "Maximum", "Minimum"):
        output = b.node({"Add": "Add", "Maximum": "Max", "Minimum": "Min"}[class_name], names, name)
    else:
        output = b.node(_VARIADIC[class_name], names, name)
    widest = max(values, key=lambda v: v.rank or 0)
    return widest.with_name(output, shape)


@emits("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
def merge(b: GraphBuilder, call: LayerCall) -> list[Value]:
    return [elementwise(b, call.layer.class_name, call.inputs, call.path, call.output_shape())]


def concatenate(b: GraphBuilder, values: list[Value], axis: int, name: str, shape: Shape | None) -> Value:
    """Concatenate along Keras axis ``axis`` in whatever layout the operands share."""
    values = b.align(values, name)
    onnx_axis = values[0].onnx_axis(axis)
    return values[0].with_name(b.node("Concat", [v.name for v in values], name, axis=onnx_axis), shape)


@emits("Concatenate")
def concat(b: GraphBuilder, call: LayerCall) -> list[Value]:
    return [concatenate(b, call.inputs, int(call.config.get("axis", -1)), call.path, call.output_shape())]


def _check_merge(layer: ConfigLayer) -> str | None:
    mode = layer.config.get("mode", "sum")
    return None if mode in _MERGE_MODES else f"Merge mode {mode!r}"


@emits("Merge", check=_check_merge)
def keras1_merge(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """Keras 1's one merge layer: ``mode`` sum, mul, ave, max or concat (``concat_axis``)."""
    kind = _MERGE_MODES[call.config.get("mode", "sum")]
    if kind == "Concatenate":
        axis = int(call.config.get("concat_axis", -1))
        return [concatenate(b, call.inputs, axis, call.path, call.output_shape())]
    return [elementwise(b, kind, call.inputs, call.path, call.output_shape())]


def _check_custom_scale(layer: ConfigLayer) -> str | None:
    """Only keras.applications' own: Keras 3 names its module; tf.keras registers it as ``Custom>``."""
    module = layer.module or "keras.src.applications.inception_resnet_v2"
    if not module.endswith("inception_resnet_v2") or "scale" not in layer.config:
        return f"a custom layer (module {module})"
    return None


@emits("CustomScaleLayer", "Custom>CustomScaleLayer", check=_check_custom_scale)
def custom_scale(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """InceptionResNetV2's residual scaling: ``inputs[0] + inputs[1] * scale``."""
    first, second = b.align(call.inputs[:2], call.path, expand_at=1)
    scaled = b.node("Mul", [second.name, b.scalar(float(call.config.get("scale", 1.0)), "scale")], f"{call.path}/scale")
    return [first.with_name(b.node("Add", [first.name, scaled], call.path), call.output_shape())]
