"""Normalization and scaling: BatchNormalization, LayerNormalization, Normalization, Rescaling, LayerScale.

BatchNormalization becomes ONNX BatchNormalization when its axis is ONNX axis 1
(channels-first feature maps, ``(batch, features)``), with Keras's epsilon (1e-3 by
default, not ONNX's 1e-5); on any other axis it becomes the same affine map as Mul+Add.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...formats.keras import ConfigLayer
from ..builder import GraphBuilder, Value
from .base import LayerCall, emits


def _axes(config: dict[str, Any], default: int | list[int] = -1) -> list[int]:
    axis = config.get("axis", default)
    return [int(a) for a in axis] if isinstance(axis, (list, tuple)) else [int(axis)]


def _check_batch_norm(layer: ConfigLayer) -> str | None:
    if layer.config.get("mode", 0) not in (0, None):
        return f"Keras 1 BatchNormalization mode {layer.config['mode']} (batch statistics at inference)"
    if layer.config.get("renorm"):
        return "batch renormalization"
    if len(_axes(layer.config)) != 1:
        return "batch normalization over several axes"
    return None


@emits("BatchNormalization", check=_check_batch_norm)
def batch_norm(b: GraphBuilder, call: LayerCall) -> list[Value]:
    x = call.inputs[0]
    axis = _axes(call.config)[0]
    size = (x.shape[axis] if x.shape else None,)
    mean = call.array("running_mean", expect=size).astype(np.float32)
    variance = call.array("running_var", expect=size).astype(np.float32)
    gamma = call.array("weight", required=False, expect=size)
    beta = call.array("bias", required=False, expect=size)
    gamma = np.ones_like(mean) if gamma is None else gamma
    beta = np.zeros_like(mean) if beta is None else beta
    epsilon = float(call.config.get("epsilon", 1e-3))
    if x.rank is not None and x.rank >= 3 and axis % x.rank == x.rank - 1:
        x = b.channels_first(x)
    if x.rank is not None and x.rank >= 2 and x.onnx_axis(axis) == 1:
        parameters = (("gamma", gamma), ("beta", beta), ("moving_mean", mean), ("moving_variance", variance))
        names = [b.weight((call.path, role), f"{call.path}/{role}", _returning(array)) for role, array in parameters]
        return [call.output(b.node("BatchNormalization", [x.name, *names], call.path, epsilon=epsilon), x)]
    scale = gamma.astype(np.float64) / np.sqrt(variance.astype(np.float64) + epsilon)
    shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return [_affine(b, call, x, axis, scale, shift)]


def _returning(array: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: array


def _transposed(array: np.ndarray, axes: tuple[int, ...]) -> Callable[[], np.ndarray]:
    return lambda: array.transpose(axes)


def _affine(b: GraphBuilder, call: LayerCall, x: Value, axis: int, scale: np.ndarray, shift: np.ndarray) -> Value:
    """``x * scale + shift`` with per-channel vectors along Keras axis ``axis``."""
    rank = x.rank or 2
    shape = [1] * rank
    shape[axis % rank] = -1
    layout = str(x.axes())
    scale_name = b.weight((call.path, "scale", layout), f"{call.path}/scale",
                          lambda: _for_layout(scale.reshape(shape[1:]), x))
    shift_name = b.weight((call.path, "shift", layout), f"{call.path}/shift",
                          lambda: _for_layout(shift.reshape(shape[1:]), x))
    product = b.node("Mul", [x.name, scale_name], f"{call.path}/scale")
    return call.output(b.node("Add", [product, shift_name], call.path), x)


def _for_layout(array: np.ndarray, like: Value) -> np.ndarray:
    """A Keras-broadcastable constant arranged for ``like``'s ONNX layout."""
    rank = like.rank or array.ndim
    array = np.asarray(array, dtype=np.float32).reshape((1,) * (rank - array.ndim) + array.shape)
    return array.transpose(like.axes())


@emits("LayerNormalization")
def layer_norm(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """ONNX LayerNormalization over the trailing Keras axes (opset 17+), else the same arithmetic."""
    x = call.inputs[0]
    rank = x.rank or 2
    axes = sorted(a % rank for a in _axes(call.config))
    epsilon = float(call.config.get("epsilon", 1e-3))
    gamma = call.array("weight", required=False)
    beta = call.array("bias", required=False)
    if call.config.get("rms_scaling"):  # its one weight is gamma, whatever a reader named it
        return [_rms_norm(b, call, x, axes, epsilon, call.array("weight", required=False, sole=True))]
    trailing = axes == list(range(axes[0], rank))
    if trailing:
        x = b.keras_order(x)
    if trailing and b.opset >= 17:
        gamma = np.ones(_sizes(x, axes), np.float32) if gamma is None else gamma
        inputs = [x.name, b.weight((call.path, "gamma"), f"{call.path}/gamma", lambda: gamma)]
        if beta is not None:
            inputs.append(b.weight((call.path, "beta"), f"{call.path}/beta", lambda: beta))
        return [call.output(b.node("LayerNormalization", inputs, call.path, axis=axes[0], epsilon=epsilon), x)]
    return [_decomposed_layer_norm(b, call, x, axes, epsilon, gamma, beta)]


def _sizes(x: Value, axes: list[int]) -> list[int]:
    """The sizes of Keras axes ``axes`` of ``x``, which must be known (a weight's shape depends on them)."""
    sizes = [x.shape[a] if x.shape else None for a in axes]
    if not all(isinstance(size, int) for size in sizes):
        raise ValueError(f"the sizes of axes {axes} of {x.name!r} are unknown ({sizes})")
    return [int(size) for size in sizes if isinstance(size, int)]


def _decomposed_layer_norm(b: GraphBuilder, call: LayerCall, x: Value, axes: list[int], epsilon: float,
                           gamma: np.ndarray | None, beta: np.ndarray | None) -> Value:
    centered, std = _centered_and_std(b, x, axes, epsilon, call.path)
    result = Value(b.node("Div", [centered, std], f"{call.path}/normalized"), x.shape, x.perm)
    return _scale_shift(b, call, x, result, axes, gamma, beta)


def _centered_and_std(b: GraphBuilder, x: Value, axes: list[int], epsilon: float, name: str) -> tuple[str, str]:
    """``x - mean`` and ``sqrt(variance + epsilon)`` over ``axes``, as graph values."""
    onnx_axes = [x.onnx_axis(a) for a in axes]
    mean = b.reduce("ReduceMean", x.name, onnx_axes, f"{name}/mean", keepdims=True)
    centered = b.node("Sub", [x.name, mean], f"{name}/centered")
    square = b.node("Mul", [centered, centered], f"{name}/square")
    variance = b.reduce("ReduceMean", square, onnx_axes, f"{name}/variance", keepdims=True)
    std = b.node("Sqrt", [b.node("Add", [variance, b.scalar(epsilon, "epsilon")], f"{name}/plus_epsilon")],
                 f"{name}/std")
    return centered, std


def _rms_norm(b: GraphBuilder, call: LayerCall, x: Value, axes: list[int], epsilon: float,
              gamma: np.ndarray | None) -> Value:
    """Keras 3's (deprecated) ``rms_scaling``: ``x * rsqrt(variance + epsilon) * gamma``, not centred."""
    _, std = _centered_and_std(b, x, axes, epsilon, call.path)
    result = Value(b.node("Div", [x.name, std], f"{call.path}/normalized"), x.shape, x.perm)
    return _scale_shift(b, call, x, result, axes, gamma, None)


def _scale_shift(b: GraphBuilder, call: LayerCall, x: Value, result: Value, axes: list[int],
                 gamma: np.ndarray | None, beta: np.ndarray | None) -> Value:
    rank = x.rank or 2
    for role, array, op in (("gamma", gamma, "Mul"), ("beta", beta, "Add")):
        if array is None:
            continue
        shape = [x.shape[a] if (x.shape and a in axes) else 1 for a in range(rank)]
        full = np.asarray(array, np.float32).reshape(shape)
        constant = b.weight((call.path, role, str(x.axes())), f"{call.path}/{role}", _transposed(full, x.axes()))
        result = Value(b.node(op, [result.name, constant], f"{call.path}/{role}"), x.shape, x.perm)
    return call.output(b.node("Identity", [result.name], call.path), x)


@emits("Normalization")
def normalization(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """``(x - mean) / max(sqrt(variance), 1e-7)`` (or its inverse), from the weights or the config."""
    x = call.inputs[0]
    mean = call.array("mean", required=False)
    variance = call.array("variance", required=False)
    if mean is None or variance is None:
        mean = np.asarray(call.config.get("mean"), np.float64)
        variance = np.asarray(call.config.get("variance"), np.float64)
    rank = x.rank or 2
    axes = [a % rank for a in _axes(call.config)]
    shape = [x.shape[a] if (x.shape and a in axes) else 1 for a in range(1, rank)]
    mean = _statistic(mean, shape)
    std = np.maximum(np.sqrt(_statistic(variance, shape)), 1e-7)
    mean_name = b.broadcast_constant(mean, x, f"{call.path}/mean")
    std_name = b.broadcast_constant(std, x, f"{call.path}/std")
    if call.config.get("invert"):
        scaled = b.node("Mul", [x.name, std_name], f"{call.path}/scale")
        return [call.output(b.node("Add", [scaled, mean_name], call.path), x)]
    centered = b.node("Sub", [x.name, mean_name], f"{call.path}/center")
    return [call.output(b.node("Div", [centered, std_name], call.path), x)]


@emits("Rescaling")
def rescaling(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """``x * scale + offset``; a list scale or offset broadcasts over the trailing (channel) axis."""
    x = call.inputs[0]
    scale = _number_or_array(call.config.get("scale", 1.0))
    offset = _number_or_array(call.config.get("offset", 0.0))
    output = b.node("Mul", [x.name, b.broadcast_constant(scale, x, f"{call.path}/scale")], f"{call.path}/scale")
    if np.any(np.asarray(offset) != 0):
        output = b.node("Add", [output, b.broadcast_constant(offset, x, f"{call.path}/offset")], call.path)
    return [call.output(output, x)]


def _statistic(values: Any, shape: list[Any]) -> np.ndarray:
    array = np.asarray(values, np.float64)
    return array.reshape(()) if array.size == 1 else array.reshape(shape)


def _number_or_array(value: Any) -> np.ndarray:
    if isinstance(value, dict) and isinstance(value.get("config"), dict):  # a serialized array
        value = value["config"].get("value")
    return np.asarray(value, np.float64)


@emits("LayerScale")
def layer_scale(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """ConvNeXt's LayerScale: ``x * gamma`` over the channel axis."""
    x = call.inputs[0]
    gamma = call.array("weight", sole=True)
    constant = b.weight((call.path, "gamma", str(x.axes())), f"{call.path}/gamma", lambda: _for_layout(gamma, x))
    return [call.output(b.node("Mul", [x.name, constant], call.path), x)]
