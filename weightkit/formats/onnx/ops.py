"""What ONNX operators mean to weightkit: tensor roles, layer kinds, kernel layouts, configs.

Roles start from the operator schema's input names (``Conv``: X, W, B), renamed
to weightkit's vocabulary where an operator holds the usual weights (W → weight,
input_mean → running_mean); other inputs keep their schema name, lowercased.
Operators outside the ONNX domains have no schema: their inputs are ``input0``, ...
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ...model import Layer
from .source import onnx_dtype

__all__ = ["DEFAULT_DOMAINS", "input_names", "role_of", "is_weight_role", "has_weight_roles", "kind_of", "layout_of",
           "weight_note", "node_config", "attribute_value", "is_default_domain"]

DEFAULT_DOMAINS = ("", "ai.onnx")

_CONV = {"W": "weight", "B": "bias"}
_RECURRENT = {"W": "weight", "R": "recurrent_weight", "B": "bias", "P": "peephole_weight"}
_ROLES: dict[str, dict[str, str]] = {
    "Conv": _CONV,
    "ConvTranspose": _CONV,
    "Gemm": {"B": "weight", "C": "bias"},
    "MatMul": {"B": "weight"},
    "BatchNormalization": {"scale": "weight", "B": "bias", "input_mean": "running_mean", "input_var": "running_var",
                           "mean": "running_mean", "var": "running_var"},
    "LayerNormalization": {"Scale": "weight", "B": "bias"},
    "SimplifiedLayerNormalization": {"scale": "weight"},
    "RMSNormalization": {"scale": "weight"},
    "InstanceNormalization": {"scale": "weight", "B": "bias"},
    "GroupNormalization": {"scale": "weight", "bias": "bias"},
    "LSTM": _RECURRENT,
    "GRU": _RECURRENT,
    "RNN": _RECURRENT,
    "PRelu": {"slope": "weight"},
    "QLinearConv": {"w": "weight", "w_scale": "weight_scale", "w_zero_point": "weight_zero_point", "B": "bias"},
    "ConvInteger": {"w": "weight", "w_zero_point": "weight_zero_point"},
    "QLinearMatMul": {"b": "weight", "b_scale": "weight_scale", "b_zero_point": "weight_zero_point"},
    "MatMulInteger": {"B": "weight", "b_zero_point": "weight_zero_point"},
}
_FIXED_KINDS = {
    "BatchNormalization": "batch_norm", "LayerNormalization": "layer_norm", "RMSNormalization": "rms_norm",
    "InstanceNormalization": "instance_norm", "GroupNormalization": "group_norm",
    "LSTM": "lstm", "GRU": "gru", "RNN": "rnn", "PRelu": "prelu",
}
_CONVS = ("Conv", "QLinearConv", "ConvInteger")
_MATMULS = ("Gemm", "MatMul", "QLinearMatMul", "MatMulInteger")
_CONV_LAYOUTS = {3: "OIW", 4: "OIHW", 5: "OIDHW"}
_CONV_TRANSPOSE_LAYOUTS = {3: "IOW", 4: "IOHW", 5: "IODHW"}
_RNN_NOTES = {
    "LSTM": "ONNX layout [directions, 4*hidden, input], gates in order i, o, f, c",
    "GRU": "ONNX layout [directions, 3*hidden, input], gates in order z, r, h",
    "RNN": "ONNX layout [directions, hidden, input]",
}


def is_default_domain(domain: str) -> bool:
    return domain in DEFAULT_DOMAINS


@lru_cache(maxsize=4096)
def input_names(op_type: str, domain: str, version: int | None) -> tuple[tuple[str, ...], bool]:
    """The schema's input names for an operator at an opset, and whether the last one repeats."""
    from onnx import defs

    domain = "" if domain == "ai.onnx" else domain
    try:
        schema = defs.get_schema(op_type, version, domain) if version else defs.get_schema(op_type, domain)
    except (defs.SchemaError, TypeError):
        return (), False
    inputs = tuple(schema.inputs)
    variadic = bool(inputs) and inputs[-1].option == defs.OpSchema.FormalParameterOption.Variadic
    return tuple(i.name for i in inputs), variadic


def has_weight_roles(op_type: str, domain: str) -> bool:
    """True for operators that take learned weights as inputs (Conv, Gemm, BatchNormalization, Gather...)."""
    return is_default_domain(domain) and (op_type in _ROLES or op_type == "Gather")


def is_weight_role(op_type: str, domain: str, role: str) -> bool:
    """True when ``role`` is where the operator keeps a learned weight (a node that should own it)."""
    if not is_default_domain(domain):
        return False
    return role in _ROLES.get(op_type, {}).values() or (op_type == "Gather" and role == "data")


def role_of(op_type: str, domain: str, names: tuple[str, ...], variadic: bool, position: int) -> str:
    """The role of a node's ``position``-th input, in weightkit's vocabulary where it has one."""
    if position < len(names):
        name = names[position]
    elif variadic and names:
        name = f"{names[-1]}{position - len(names) + 1}"
    else:
        return f"input{position}"
    if is_default_domain(domain) and name in _ROLES.get(op_type, {}):
        return _ROLES[op_type][name]
    return name.lower()


def kind_of(op_type: str, domain: str, layer: Layer, attributes: dict[str, Any]) -> str:
    """A node's layer kind: conv2d, dense, batch_norm, ... or its op type, lowercased."""
    if not is_default_domain(domain):
        return op_type.lower()
    weight = layer.tensors.get("weight")
    if op_type in _CONVS or op_type == "ConvTranspose":
        rank = weight.ndim if weight is not None else len(attributes.get("kernel_shape") or ()) + 2
        spatial = rank - 2
        if spatial not in (1, 2, 3):
            return op_type.lower()
        if op_type == "ConvTranspose":
            return f"conv_transpose{spatial}d"
        group = attributes.get("group", 1)
        if spatial == 2 and weight is not None and isinstance(group, int) and group > 1 and weight.shape[1] == 1:
            return "depthwise_conv2d"
        return f"conv{spatial}d"
    if op_type in _MATMULS:
        return "dense" if weight is not None and weight.ndim == 2 else op_type.lower()
    if op_type == "Gather" and weight is not None:
        return "embedding"
    return _FIXED_KINDS.get(op_type, op_type.lower())


def layout_of(kind: str, op_type: str, ndim: int, attributes: dict[str, Any], flipped: bool | None) -> str | None:
    """The axis order of a layer's ``weight``: OIHW for convolutions, IO/OI for dense layers.

    ``flipped`` says the weight reaches the node through a 2-D Transpose (True), through
    a reshaping the layout cannot follow (None), or as stored (False).
    """
    if flipped is None:
        return None
    if kind.startswith(("conv", "depthwise_conv")) and not kind.startswith("conv_transpose"):
        return None if flipped else _CONV_LAYOUTS.get(ndim)
    if kind.startswith("conv_transpose"):
        return None if flipped else _CONV_TRANSPOSE_LAYOUTS.get(ndim)
    if kind == "dense" and ndim == 2:
        transposed = op_type == "Gemm" and bool(attributes.get("transB", 0))
        return "OI" if transposed != flipped else "IO"
    return None


def weight_note(op_type: str, layer: Layer) -> str | None:
    """What a reader of the weight should know: its quantization, or the recurrent gate order."""
    if "weight_scale" in layer.tensors:
        zero = " - weight_zero_point" if "weight_zero_point" in layer.tensors else ""
        return f"quantized: real value = (weight{zero}) * weight_scale"
    return _RNN_NOTES.get(op_type)


def node_config(node: Any) -> dict[str, Any]:
    """A node's op type, domain, edges and attributes, as JSON-ready data."""
    config: dict[str, Any] = {"op_type": node.op_type}
    if node.domain:
        config["domain"] = node.domain
    config["inputs"] = list(node.input)
    config["outputs"] = list(node.output)
    config["attributes"] = {attr.name: attribute_value(attr) for attr in node.attribute}
    return config


def attribute_value(attr: Any) -> Any:
    """An attribute as JSON-ready data; tensors and graphs are summarised, not copied."""
    kind = attr.type
    if kind == 1:
        return _float(attr.f)
    if kind == 2:
        return attr.i
    if kind == 3:
        return attr.s.decode("utf-8", "replace")
    if kind == 4:
        return _tensor_summary(attr.t)
    if kind == 5:
        return f"<graph {attr.g.name!r}: {len(attr.g.node)} nodes>"
    if kind == 6:
        return [_float(f) for f in attr.floats]
    if kind == 7:
        return list(attr.ints)
    if kind == 8:
        return [s.decode("utf-8", "replace") for s in attr.strings]
    if kind == 9:
        return [_tensor_summary(t) for t in attr.tensors]
    if kind == 10:
        return [f"<graph {g.name!r}: {len(g.node)} nodes>" for g in attr.graphs]
    if kind in (11, 12):
        return "<sparse tensor>"
    if attr.ref_attr_name:
        return f"<ref {attr.ref_attr_name}>"
    return f"<attribute type {kind}>"


def _tensor_summary(tensor: Any) -> str:
    return f"<tensor {onnx_dtype(tensor.data_type)}{list(tensor.dims)}>"


def _float(value: float) -> float:
    """A float32 attribute by its shortest decimal form (1e-05, not 9.999999747378752e-06)."""
    import numpy as np

    return float(str(np.float32(value)))
