"""Convolutions: Conv1D/2D/3D, DepthwiseConv, SeparableConv, ConvTranspose (and their Keras 1 names).

Keras kernels are ``(*spatial, in, out)``; ONNX wants ``(out, in, *spatial)``.
A depthwise kernel ``(*spatial, in, mult)`` becomes ``(in*mult, 1, *spatial)``
with ``group=in`` (TF numbers output channels ``k*mult + q``, as the reshape does).
A transposed kernel ``(*spatial, out, in)`` becomes ``(in, out, *spatial)``.
Channels-last layers run on channels-first tensors; ``same`` padding is TF's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...formats.keras import ConfigLayer
from ..builder import GraphBuilder, Value
from ..padding import transpose_pads, window_pads
from .activations import activation_problem, apply_activation
from .base import LayerCall, emits, option

__all__ = ["ConvSpec", "conv_spec", "onnx_kernel", "pad_attrs"]

_CONV = ("Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D",
         "AtrousConvolution1D", "AtrousConvolution2D")
_DEPTHWISE = ("DepthwiseConv1D", "DepthwiseConv2D")
_SEPARABLE = ("SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D")
_FORMATS = ("channels_first", "channels_last")
_TRANSPOSE = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Convolution2DTranspose", "Deconvolution2D")


@dataclass
class ConvSpec:
    """A convolution's options whatever Keras generation spelled them."""

    rank: int
    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    padding: str
    channels_last: bool
    use_bias: bool
    groups: int
    activation: Any


def conv_spec(config: dict[str, Any], rank: int) -> ConvSpec:
    """Read kernel size, strides, dilation, padding and layout (the parser spells Keras 1 configs as Keras 2)."""
    kernel = option(config, "kernel_size", default=1)
    strides = option(config, "strides", default=1)
    dilations = option(config, "dilation_rate", default=1)
    return ConvSpec(rank, _ints(kernel, rank), _ints(strides, rank), _ints(dilations, rank),
                    str(option(config, "padding", default="valid")).lower(),
                    config.get("data_format") != "channels_first", bool(option(config, "use_bias", default=True)),
                    int(config.get("groups") or 1), config.get("activation"))


def onnx_kernel(kernel: np.ndarray, layout: str | None) -> np.ndarray:
    """A Keras conv kernel ``(*spatial, in, out)`` (or Theano ``OIHW``) as ONNX ``(out, in, *spatial)``."""
    if layout == "OIHW":
        return kernel
    rank = kernel.ndim
    return kernel.transpose(rank - 1, rank - 2, *range(rank - 2))


def _ints(value: Any, rank: int) -> list[int]:
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)] * rank


def _rank_of(layer: ConfigLayer) -> int:
    name = layer.class_name
    return 1 if "1D" in name else 3 if "3D" in name else 2


def _check(layer: ConfigLayer) -> str | None:
    spec = conv_spec(layer.config, _rank_of(layer))
    if spec.padding not in ("valid", "same", "causal"):
        return f"padding {spec.padding!r}"
    return activation_problem(spec.activation)


def _layout_input(b: GraphBuilder, x: Value, spec: ConvSpec) -> Value:
    return b.channels_first(x) if spec.channels_last else b.keras_order(x)


def _spatial_sizes(x: Value, spec: ConvSpec) -> list[Any]:
    if x.shape is None:
        return [None] * spec.rank
    return list(x.shape[1:-1] if spec.channels_last else x.shape[2:])


def pad_attrs(b: GraphBuilder, x: Value, spec: ConvSpec, name: str) -> dict[str, Any]:
    """Explicit TF pads, or ``auto_pad=SAME_UPPER`` (with a warning) when a size they depend on is unknown."""
    pads, auto = window_pads(spec.padding, _spatial_sizes(x, spec), spec.kernel, spec.strides, spec.dilations)
    if pads is not None:
        return {"pads": pads}
    b.warnings.append(f"{name}: input size unknown, so 'same' padding is auto_pad=SAME_UPPER (TF's rule too)")
    return {"auto_pad": auto}


def _conv_node(b: GraphBuilder, x: Value, weight: str, bias: str | None, spec: ConvSpec, name: str,
               group: int) -> str:
    inputs = [x.name, weight] + ([bias] if bias else [])
    return b.node("Conv", inputs, name, kernel_shape=spec.kernel, strides=spec.strides,
                  dilations=spec.dilations, group=group, **pad_attrs(b, x, spec, name))


def _channels(x: Value, spec: ConvSpec) -> Any:
    """The input's channel count (None if unknown)."""
    if x.shape is None:
        return None
    return x.shape[-1] if spec.channels_last else x.shape[1]


def _filters(call: LayerCall) -> Any:
    return call.config.get("filters")


def _bias(b: GraphBuilder, call: LayerCall, spec: ConvSpec, size: Any = None) -> str | None:
    if not spec.use_bias:
        return None
    bias = call.array("bias", expect=(size if size is not None else _filters(call),))
    return b.weight((call.path, "bias"), f"{call.path}/bias", lambda: bias)


def _finish(b: GraphBuilder, call: LayerCall, output: str, like: Value, spec: ConvSpec) -> list[Value]:
    value = call.output(output, like)
    return [apply_activation(b, value, spec.activation, f"{call.path}/{_act_name(spec.activation)}")]


def _act_name(spec: Any) -> str:
    return spec if isinstance(spec, str) else "activation"


@emits(*_CONV, check=_check)
def conv(b: GraphBuilder, call: LayerCall) -> list[Value]:
    spec = conv_spec(call.config, _rank_of(call.layer))
    x = _layout_input(b, call.inputs[0], spec)
    layout = _kernel_layout(call)
    channels = _channels(x, spec)
    grouped = channels // spec.groups if isinstance(channels, int) else None
    if layout == "OIHW":
        expect: tuple[Any, ...] = (_filters(call), grouped, *spec.kernel)
    elif spec.rank == 1 and _ndim(call, "weight") == 4:  # Keras 1 Convolution1D: (length, 1, in, out)
        expect = (spec.kernel[0], 1, grouped, _filters(call))
    else:
        expect = (*spec.kernel, grouped, _filters(call))
    kernel = call.array("weight", expect=expect)
    if spec.rank == 1 and kernel.ndim == 4:
        kernel = kernel[:, 0]
    weight = b.weight((call.path, "weight"), f"{call.path}/kernel", lambda: onnx_kernel(kernel, layout))
    output = _conv_node(b, x, weight, _bias(b, call, spec), spec, call.path, spec.groups)
    return _finish(b, call, output, x, spec)


def _kernel_layout(call: LayerCall) -> str | None:
    """Keras 1 stored kernels as its ``dim_ordering`` said ('th': out, in, h, w); later Keras always HWIO.

    The config says it for sure (``dim_ordering``, parsed as ``data_format``); without it the reader's guess
    (from the shape) stands.
    """
    ordering = call.config.get("data_format")
    if ordering in _FORMATS and call.layer.class_name.startswith(("Convolution", "AtrousConvolution")):
        return "OIHW" if ordering == "channels_first" else None
    tensor = call.tensor("weight")
    return tensor.layout if tensor is not None and tensor.layout == "OIHW" else None


def _ndim(call: LayerCall, role: str) -> int | None:
    tensor = call.tensor(role)
    return tensor.ndim if tensor is not None else None


def _depthwise_weight(b: GraphBuilder, call: LayerCall, role: str, x: Value, spec: ConvSpec) -> tuple[str, int]:
    """The depthwise kernel ``(*k, in, mult)`` as ``(in*mult, 1, *k)``, and ``in`` (the group count)."""
    expect = (*spec.kernel, _channels(x, spec), call.config.get("depth_multiplier", 1))
    kernel = call.array(role, expect=expect)
    channels, multiplier = kernel.shape[-2], kernel.shape[-1]
    flat = kernel.reshape(*kernel.shape[:-2], 1, channels * multiplier)
    name = b.weight((call.path, role), f"{call.path}/{'depthwise_kernel' if role != 'weight' else 'kernel'}",
                    lambda: onnx_kernel(flat, None))
    return name, channels


@emits(*_DEPTHWISE, check=_check)
def depthwise(b: GraphBuilder, call: LayerCall) -> list[Value]:
    spec = conv_spec(call.config, _rank_of(call.layer))
    x = _layout_input(b, call.inputs[0], spec)
    role = "weight" if call.tensor("weight") is not None else "depthwise_weight"
    weight, channels = _depthwise_weight(b, call, role, x, spec)
    multiplier = call.config.get("depth_multiplier", 1)
    output = _conv_node(b, x, weight, _bias(b, call, spec, channels * multiplier), spec, call.path, channels)
    return _finish(b, call, output, x, spec)


@emits(*_SEPARABLE, check=_check)
def separable(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """A depthwise Conv without bias, then a 1x1 Conv with the bias (Keras's own two steps)."""
    spec = conv_spec(call.config, _rank_of(call.layer))
    x = _layout_input(b, call.inputs[0], spec)
    weight, channels = _depthwise_weight(b, call, "depthwise_weight", x, spec)
    depthwise_out = _conv_node(b, x, weight, None, spec, f"{call.path}/depthwise", channels)
    middle = channels * call.config.get("depth_multiplier", 1)
    pointwise = call.array("pointwise_weight", expect=(*([1] * spec.rank), middle, _filters(call)))
    point_weight = b.weight((call.path, "pointwise_weight"), f"{call.path}/pointwise_kernel",
                            lambda: onnx_kernel(pointwise, None))
    ones = [1] * spec.rank
    point_spec = ConvSpec(spec.rank, ones, ones, ones, "valid", spec.channels_last, spec.use_bias, 1, None)
    mid = Value(depthwise_out, None, x.perm)
    output = _conv_node(b, mid, point_weight, _bias(b, call, spec), point_spec, call.path, 1)
    return _finish(b, call, output, x, spec)


def _check_transpose(layer: ConfigLayer) -> str | None:
    spec = conv_spec(layer.config, _rank_of(layer))
    if spec.padding not in ("valid", "same"):
        return f"padding {spec.padding!r}"
    if spec.groups != 1:
        return "grouped transposed convolution"
    return activation_problem(spec.activation)


@emits(*_TRANSPOSE, check=_check_transpose)
def conv_transpose(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """ConvTranspose with pads/output_padding that give Keras's output length (TF's cropping)."""
    spec = conv_spec(call.config, _rank_of(call.layer))
    x = _layout_input(b, call.inputs[0], spec)
    kernel = call.array("weight", expect=(*spec.kernel, _filters(call), _channels(x, spec)))
    weight = b.weight((call.path, "weight"), f"{call.path}/kernel", lambda: onnx_kernel(kernel, None))
    extra = call.config.get("output_padding")
    pads, output_padding = transpose_pads(spec.padding, spec.kernel, spec.strides, spec.dilations,
                                          None if extra is None else _ints(extra, spec.rank))
    bias = _bias(b, call, spec)
    output = b.node("ConvTranspose", [x.name, weight] + ([bias] if bias else []), call.path,
                    kernel_shape=spec.kernel, strides=spec.strides, dilations=spec.dilations, pads=pads,
                    output_padding=output_padding if any(output_padding) else None)
    return _finish(b, call, output, x, spec)
