"""Keras 3 operations recorded in functional configs (``x + 3``, ``ops.multiply(x, 1/6)``, ``ops.mean``).

Their records name a ``keras.src.ops`` class; arguments are tensors or constants
in call order (``2.0 - x`` records the constant first). In a Keras 3 ``.h5`` the
module is dropped, so an ``Add`` with two positional arguments is the operation,
and an ``Add`` called with one list is the merge layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...formats.keras import ConfigLayer
from ..builder import GraphBuilder, Value
from ..nodes import Call
from .activations import ACTIVATIONS
from .base import LAYERS, OPS, LayerCall, emits_op

__all__ = ["BINARY", "is_operation_call"]

BINARY = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Divide": "Div", "TrueDivide": "Div",
          "Maximum": "Max", "Minimum": "Min", "Power": "Pow"}
_UNARY = {"Negative": "Neg", "Abs": "Abs", "Absolute": "Abs", "Sqrt": "Sqrt", "Exp": "Exp", "Log": "Log",
          "Tanh": "Tanh", "Sigmoid": "Sigmoid", "Relu": "Relu", "Floor": "Floor", "Ceil": "Ceil", "Sign": "Sign",
          "Sin": "Sin", "Cos": "Cos", "Reciprocal": "Reciprocal", "Erf": "Erf", "Softplus": "Softplus",
          "Softsign": "Softsign"}
_ACTIVATION_OPS = {"Relu6": "relu6", "Silu": "silu", "Swish": "silu", "HardSigmoid": "hard_sigmoid",
                   "HardSilu": "hard_silu", "HardSwish": "hard_silu", "Elu": "elu", "Selu": "selu",
                   "Mish": "mish", "LogSigmoid": "log_sigmoid"}
_REDUCE = {"Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax", "Min": "ReduceMin"}


def is_operation_call(layer: ConfigLayer, call: Call | None = None) -> bool:
    """True for a Keras 3 operation: its module says so, or (a Keras 3 ``.h5`` records no module) its
    config is an operation's (no ``trainable``) or it took two positional arguments."""
    if layer.is_operation:
        return True
    if layer.module is not None or layer.class_name not in OPS or (call is not None and call.legacy):
        return False
    if layer.class_name not in LAYERS or "trainable" not in layer.config:
        return True
    return call is not None and layer.class_name in BINARY and call.positional >= 2


def _operand(b: GraphBuilder, item: Any, like: Value, name: str) -> str:
    if isinstance(item, Value):
        return item.name
    array = np.asarray(item, dtype=np.float64)
    return b.broadcast_constant(array, like, name)


@emits_op(*BINARY)
def binary(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """An elementwise op of two operands, tensors or constants, broadcast as in NumPy."""
    operands = call.args[:2]
    tensors = b.align([item for item in operands if isinstance(item, Value)], call.path)
    aligned = iter(tensors)
    operands = [next(aligned) if isinstance(item, Value) else item for item in operands]
    like = max(tensors, key=lambda v: v.rank or 0)
    names = [_operand(b, item, like, f"{call.path}/constant") for item in operands]
    shape = call.output_shape() if len(tensors) == len(operands) else like.shape
    return [like.with_name(b.node(BINARY[call.layer.class_name], names, call.path), shape)]


@emits_op(*_UNARY)
def unary(b: GraphBuilder, call: LayerCall) -> list[Value]:
    x = call.inputs[0]
    return [b.value(_UNARY[call.layer.class_name], [x.name], call.path, x)]


@emits_op("Square")
def square(b: GraphBuilder, call: LayerCall) -> list[Value]:
    x = call.inputs[0]
    return [b.value("Mul", [x.name, x.name], call.path, x)]


@emits_op(*_ACTIVATION_OPS)
def activation_op(b: GraphBuilder, call: LayerCall) -> list[Value]:
    return [ACTIVATIONS[_ACTIVATION_OPS[call.layer.class_name]](b, call.inputs[0], call.path)]


@emits_op("Gelu")
def gelu(b: GraphBuilder, call: LayerCall) -> list[Value]:
    key = "gelu_approximate" if call.config.get("approximate", True) else "gelu"
    return [ACTIVATIONS[key](b, call.inputs[0], call.path)]


@emits_op("Softmax", "LogSoftmax")
def softmax(b: GraphBuilder, call: LayerCall) -> list[Value]:
    x = call.inputs[0]
    axis = call.config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    return [b.value(call.layer.class_name, [x.name], call.path, x, axis=x.onnx_axis(int(axis)))]


def _reduce_shape(x: Value, axes: list[int], keepdims: bool) -> tuple[Any, ...] | None:
    if x.shape is None:
        return None
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i not in axes)


@emits_op(*_REDUCE)
def reduce(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """Mean/Sum/Max/Min over Keras axes; without keepdims the result is in Keras order."""
    x = call.inputs[0]
    rank = x.rank or 0
    axis = call.config.get("axis")
    if axis is None:
        keras_axes = list(range(rank))
    else:
        keras_axes = [int(a) % rank for a in (axis if isinstance(axis, list) else [axis])]
    keepdims = bool(call.config.get("keepdims", False))
    if not keepdims:
        x = b.keras_order(x)
    output = b.reduce(_REDUCE[call.layer.class_name], x.name, sorted(x.onnx_axis(a) for a in keras_axes), call.path,
                      keepdims)
    return [Value(output, _reduce_shape(x, keras_axes, keepdims), x.perm if keepdims else None)]


@emits_op("Reshape")
def reshape(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """``ops.reshape(x, newshape)``: the whole shape, batch included, in Keras order."""
    x = b.keras_order(call.inputs[0])
    target = [int(d) if d is not None else -1 for d in call.config.get("newshape", call.config.get("new_shape", []))]
    shape = b.ints(target, f"{call.path}/shape")
    return [Value(b.node("Reshape", [x.name, shape], call.path), tuple(None if d == -1 else d for d in target))]
