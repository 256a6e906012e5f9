"""Activations: every Keras activation function, and the activation layers.

`apply_activation` serves ``Activation`` layers and the ``activation`` option of
Conv/Dense layers alike. Keras 3 changed ``hard_sigmoid`` from ``0.2x + 0.5`` to
``x/6 + 0.5``; the builder knows which Keras wrote the config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...formats.keras import ConfigLayer
from ..builder import GraphBuilder, Value
from .base import LayerCall, emits, option

__all__ = ["apply_activation", "activation_name", "activation_problem", "ACTIVATIONS"]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

Fn = Callable[[GraphBuilder, Value, str], Value]


def _unary(op: str, **attrs: Any) -> Fn:
    return lambda b, x, name: b.value(op, [x.name], name, x, **attrs)


def _clip(low: float | None, high: float | None) -> Fn:
    def emit(b: GraphBuilder, x: Value, name: str) -> Value:
        bounds = [b.scalar(low, "zero" if low == 0 else "min") if low is not None else "",
                  b.scalar(high, "max") if high is not None else ""]
        return b.value("Clip", [x.name, *bounds], name, x)
    return emit


def _mul(b: GraphBuilder, x: Value, y: Value, name: str) -> Value:
    return b.value("Mul", [x.name, y.name], name, x)


def _silu(b: GraphBuilder, x: Value, name: str) -> Value:
    return _mul(b, x, b.value("Sigmoid", [x.name], f"{name}/sigmoid", x), name)


def _hard_sigmoid(b: GraphBuilder, x: Value, name: str) -> Value:
    alpha = 1 / 6 if b.keras_major >= 3 else 0.2
    return b.value("HardSigmoid", [x.name], name, x, alpha=alpha, beta=0.5)


def _hard_silu(b: GraphBuilder, x: Value, name: str) -> Value:
    if b.keras_major >= 3 and b.opset >= 14:
        return b.value("HardSwish", [x.name], name, x)
    return _mul(b, x, _hard_sigmoid(b, x, f"{name}/hard_sigmoid"), name)


def _gelu(approximate: bool) -> Fn:
    def emit(b: GraphBuilder, x: Value, name: str) -> Value:
        if b.opset >= 20:
            return b.value("Gelu", [x.name], name, x, approximate="tanh" if approximate else "none")
        if approximate:  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            square = b.value("Mul", [x.name, x.name], f"{name}/square", x)
            cube = b.value("Mul", [x.name, square.name], f"{name}/cube", x)
            inner = b.value("Add", [x.name, b.value("Mul", [cube.name, b.scalar(0.044715, "c")], f"{name}/c", x).name],
                            f"{name}/inner", x)
            scaled = b.value("Mul", [inner.name, b.scalar(np.sqrt(2 / np.pi), "sqrt_2_over_pi")], f"{name}/scaled", x)
            cdf = b.value("Tanh", [scaled.name], f"{name}/tanh", x)
        else:  # 0.5 x (1 + erf(x / sqrt 2))
            scaled = b.value("Div", [x.name, b.scalar(np.sqrt(2.0), "sqrt_2")], f"{name}/scaled", x)
            cdf = b.value("Erf", [scaled.name], f"{name}/erf", x)
        one_plus = b.value("Add", [cdf.name, b.scalar(1.0, "one")], f"{name}/one_plus", x)
        half_x = b.value("Mul", [x.name, b.scalar(0.5, "half")], f"{name}/half_x", x)
        return _mul(b, half_x, one_plus, name)
    return emit


def _softmax(op: str) -> Fn:
    return lambda b, x, name: b.value(op, [x.name], name, x, axis=x.onnx_axis(-1))


def _mish(b: GraphBuilder, x: Value, name: str) -> Value:
    if b.opset >= 18:
        return b.value("Mish", [x.name], name, x)
    soft = b.value("Softplus", [x.name], f"{name}/softplus", x)
    return _mul(b, x, b.value("Tanh", [soft.name], f"{name}/tanh", x), name)


def _log_sigmoid(b: GraphBuilder, x: Value, name: str) -> Value:
    negative = b.value("Neg", [x.name], f"{name}/neg", x)
    return b.value("Neg", [b.value("Softplus", [negative.name], f"{name}/softplus", x).name], name, x)


def _tanh_shrink(b: GraphBuilder, x: Value, name: str) -> Value:
    return b.value("Sub", [x.name, b.value("Tanh", [x.name], f"{name}/tanh", x).name], name, x)


def _squareplus(b: GraphBuilder, x: Value, name: str) -> Value:  # (x + sqrt(x^2 + 4)) / 2
    square = b.value("Mul", [x.name, x.name], f"{name}/square", x)
    root = b.value("Sqrt", [b.value("Add", [square.name, b.scalar(4.0, "four")], f"{name}/plus_b", x).name],
                   f"{name}/sqrt", x)
    total = b.value("Add", [x.name, root.name], f"{name}/sum", x)
    return b.value("Mul", [total.name, b.scalar(0.5, "half")], name, x)


def _sparse_plus(b: GraphBuilder, x: Value, name: str) -> Value:  # 0 | (x+1)^2/4 | x
    clipped = _clip(-1.0, 1.0)(b, x, f"{name}/clip")
    shifted = b.value("Add", [clipped.name, b.scalar(1.0, "one")], f"{name}/shift", x)
    quadratic = b.value("Mul", [b.value("Mul", [shifted.name, shifted.name], f"{name}/square", x).name,
                                b.scalar(0.25, "quarter")], f"{name}/quadratic", x)
    above = b.node("GreaterOrEqual", [x.name, b.scalar(1.0, "one")], f"{name}/above")
    return b.value("Where", [above, x.name, quadratic.name], name, x)


def _sparse_sigmoid(b: GraphBuilder, x: Value, name: str) -> Value:  # clip((x + 1) / 2, 0, 1)
    half = b.value("Mul", [b.value("Add", [x.name, b.scalar(1.0, "one")], f"{name}/shift", x).name,
                           b.scalar(0.5, "half")], f"{name}/half", x)
    return _clip(0.0, 1.0)(b, half, name)


def _glu(b: GraphBuilder, x: Value, name: str) -> Value:
    axis = x.onnx_axis(-1)
    size = x.shape[-1] if x.shape else None
    if b.opset >= 18:
        first, second = b.multi_node("Split", [x.name], f"{name}/split", outputs=2, axis=axis, num_outputs=2)
    else:
        if not isinstance(size, int):
            raise ValueError(f"glu needs the size of the last axis before opset 18 ({x.name})")
        first, second = b.multi_node("Split", [x.name, b.ints([size // 2, size // 2], "split")], f"{name}/split",
                               outputs=2, axis=axis)
    shape = (*x.shape[:-1], size // 2 if isinstance(size, int) else None) if x.shape else None
    gate = Value(b.node("Sigmoid", [second], f"{name}/sigmoid"), shape, x.perm)
    return b.value("Mul", [first, gate.name], name, x, shape=shape)


#: Keras activation name → how to build it.
ACTIVATIONS: dict[str, Fn] = {
    "relu": _unary("Relu"),
    "relu6": _clip(0.0, 6.0),
    "sigmoid": _unary("Sigmoid"),
    "hard_sigmoid": _hard_sigmoid,
    "hard_silu": _hard_silu,
    "hard_swish": _hard_silu,
    "silu": _silu,
    "swish": _silu,
    "gelu": _gelu(approximate=False),
    "gelu_approximate": _gelu(approximate=True),
    "tanh": _unary("Tanh"),
    "softmax": _softmax("Softmax"),
    "log_softmax": _softmax("LogSoftmax"),
    "elu": _unary("Elu", alpha=1.0),
    "selu": _unary("Selu", alpha=_SELU_ALPHA, gamma=_SELU_SCALE),
    "celu": _unary("Celu", alpha=1.0),
    "softplus": _unary("Softplus"),
    "softsign": _unary("Softsign"),
    "exponential": _unary("Exp"),
    "leaky_relu": _unary("LeakyRelu", alpha=0.2),
    "mish": _mish,
    "hard_tanh": _clip(-1.0, 1.0),
    "hard_shrink": _unary("Shrink", lambd=0.5, bias=0.0),
    "soft_shrink": _unary("Shrink", lambd=0.5, bias=0.5),
    "tanh_shrink": _tanh_shrink,
    "log_sigmoid": _log_sigmoid,
    "squareplus": _squareplus,
    "sparse_plus": _sparse_plus,
    "sparse_sigmoid": _sparse_sigmoid,
    "glu": _glu,
}
_LINEAR = {"linear", None, ""}


def activation_name(spec: Any) -> str | None:
    """The built-in activation a config value names (``"relu"``), or None for a custom one.

    Keras 3 writes built-ins as strings; a dict record from a ``keras`` module names one too.
    """
    if isinstance(spec, str) or spec is None:
        return spec
    if isinstance(spec, dict):
        module = str(spec.get("module") or "keras")
        inner = spec.get("config")
        if module.startswith("keras") and isinstance(inner, str):
            return inner
    return "<custom>"


def activation_problem(spec: Any) -> str | None:
    """Why an activation config value cannot be converted, or None if it can."""
    name = activation_name(spec)
    if name in _LINEAR or name in ACTIVATIONS:
        return None
    if name == "<custom>":
        return "a custom activation function"
    return f"activation {name!r} is not supported"


def apply_activation(b: GraphBuilder, x: Value, spec: Any, name: str) -> Value:
    """``x`` passed through the activation ``spec`` names (no node for ``linear``)."""
    key = activation_name(spec)
    if key is None or key in _LINEAR:
        return x
    return ACTIVATIONS[key](b, x, name)


def _check_activation(layer: ConfigLayer) -> str | None:
    return activation_problem(layer.config.get("activation"))


@emits("Activation", check=_check_activation)
def activation(b: GraphBuilder, call: LayerCall) -> list[Value]:
    x = call.inputs[0]
    result = apply_activation(b, x, call.config.get("activation"), call.path)
    if result is x:
        result = b.value("Identity", [x.name], call.path, x)
    return [result]


@emits("ReLU")
def relu(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """Keras's relu: ``x > threshold ? min(x, max_value) : negative_slope * (x - threshold)``."""
    config, x, name = call.config, call.inputs[0], call.path
    top = config.get("max_value")
    slope = float(config.get("negative_slope") or 0.0)
    threshold = float(config.get("threshold") or 0.0)
    if threshold == 0 and slope == 0:
        return [_clip(0.0, float(top))(b, x, name) if top is not None else b.value("Relu", [x.name], name, x)]
    if threshold == 0 and top is None:
        return [b.value("LeakyRelu", [x.name], name, x, alpha=slope)]
    if threshold == 0:
        positive = b.value("Relu", [x.name], f"{name}/relu", x)
    else:
        above = b.node("Greater", [x.name, b.scalar(threshold, "threshold")], f"{name}/above")
        positive = b.value("Where", [above, x.name, b.scalar(0.0, "zero")], f"{name}/positive", x)
    if top is not None:
        positive = _clip(0.0, float(top))(b, positive, f"{name}/clip")
    if slope == 0:
        return [b.value("Identity", [positive.name], name, x)]
    below = b.value("Relu", [b.value("Sub", [b.scalar(threshold, "threshold"), x.name], f"{name}/flip", x).name],
                    f"{name}/below", x)
    scaled = b.value("Mul", [below.name, b.scalar(slope, "slope")], f"{name}/scaled", x)
    return [b.value("Sub", [positive.name, scaled.name], name, x)]


@emits("LeakyReLU")
def leaky_relu(b: GraphBuilder, call: LayerCall) -> list[Value]:
    slope = float(option(call.config, "negative_slope", "alpha", default=0.3))
    x = call.inputs[0]
    return [b.value("LeakyRelu", [x.name], call.path, x, alpha=slope)]


@emits("ELU")
def elu(b: GraphBuilder, call: LayerCall) -> list[Value]:
    x = call.inputs[0]
    return [b.value("Elu", [x.name], call.path, x, alpha=float(call.config.get("alpha", 1.0)))]


@emits("ThresholdedReLU")
def thresholded_relu(b: GraphBuilder, call: LayerCall) -> list[Value]:
    x = call.inputs[0]
    return [b.value("ThresholdedRelu", [x.name], call.path, x, alpha=float(call.config.get("theta", 1.0)))]


def _check_softmax(layer: ConfigLayer) -> str | None:
    axis = layer.config.get("axis", -1)
    if isinstance(axis, list) and len(axis) != 1:
        return f"softmax over several axes {axis}"
    return None


@emits("Softmax", check=_check_softmax)
def softmax(b: GraphBuilder, call: LayerCall) -> list[Value]:
    axis = call.config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) else axis
    x = call.inputs[0]
    return [b.value("Softmax", [x.name], call.path, x, axis=x.onnx_axis(int(axis)))]


@emits("PReLU")
def prelu(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """ONNX PRelu with Keras's alpha (shape of the input without batch, 1 on shared axes)."""
    x = call.inputs[0]
    alpha = call.array("weight", sole=True)
    slope = b.weight((call.path, "alpha", str(x.axes())), f"{call.path}/alpha",
                     lambda: _broadcast_for(alpha, x))
    return [b.value("PRelu", [x.name, slope], call.path, x)]


def _broadcast_for(array: np.ndarray, like: Value) -> np.ndarray:
    rank = like.rank or array.ndim + 1
    array = np.asarray(array, dtype=np.float32).reshape((1,) * (rank - array.ndim) + array.shape)
    return array.transpose(like.axes())
