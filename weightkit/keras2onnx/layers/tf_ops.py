"""tf.keras ``TFOpLambda`` layers: TensorFlow functions called on Keras tensors (``x + 3.0``, ``x * (1/6)``).

tf.keras records them by function name with their arguments (``{"function": "math.multiply"}``,
called with ``x`` and ``y``). Only functions whose meaning is fixed by the name are converted;
the layer holds no code, so nothing is run either way. tf.keras's ConvNeXt and MobileNetV3
use ``__operators__.add`` and ``math.multiply``.
"""

from __future__ import annotations

import numpy as np

from ...formats.keras import ConfigLayer
from ...formats.keras.shapes import broadcast_shape
from ..builder import GraphBuilder, Value
from .activations import ACTIVATIONS
from .base import LayerCall, emits

_BINARY = {"__operators__.add": "Add", "math.add": "Add", "math.multiply": "Mul",
           "math.subtract": "Sub", "__operators__.sub": "Sub", "math.truediv": "Div", "math.divide": "Div",
           "__operators__.truediv": "Div", "math.maximum": "Max", "math.minimum": "Min", "math.pow": "Pow"}
_UNARY = {"nn.relu": "relu", "nn.relu6": "relu6", "math.sigmoid": "sigmoid", "nn.sigmoid": "sigmoid",
          "math.tanh": "tanh", "nn.tanh": "tanh", "nn.silu": "silu", "nn.swish": "silu", "nn.gelu": "gelu",
          "nn.softmax": "softmax", "math.exp": "exponential", "nn.elu": "elu", "nn.selu": "selu",
          "math.softplus": "softplus", "nn.softplus": "softplus"}


def _check(layer: ConfigLayer) -> str | None:
    function = layer.config.get("function")
    if function in _BINARY or function in _UNARY:
        return None
    return f"TensorFlow function tf.{function} is not supported"


@emits("TFOpLambda", check=_check)
def tf_op(b: GraphBuilder, call: LayerCall) -> list[Value]:
    function = str(call.config.get("function"))  # `_check` let only known names through
    x = call.inputs[0]
    if function in _UNARY:
        return [ACTIVATIONS[_UNARY[function]](b, x, call.path)]
    other = call.kwargs.get("y", call.args[1] if len(call.args) > 1 else None)
    if other is None:
        raise ValueError(f"tf.{function} is recorded without its second operand")
    if isinstance(other, Value):
        first, second = b.align([x, other], call.path)
        shape = broadcast_shape([x.shape, other.shape])
        return [first.with_name(b.node(_BINARY[function], [first.name, second.name], call.path), shape)]
    constant = b.broadcast_constant(np.asarray(other, dtype=np.float64), x, f"{call.path}/y")
    return [x.with_name(b.node(_BINARY[function], [x.name, constant], call.path))]
