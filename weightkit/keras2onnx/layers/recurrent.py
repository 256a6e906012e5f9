"""Recurrent layers: LSTM, GRU and SimpleRNN as ONNX LSTM, GRU and RNN.

Keras kernels are ``(in, gates*units)`` with LSTM gates **i, f, c, o** and GRU gates
**z, r, h**; ONNX wants ``W [1, gates*units, in]`` with LSTM gates **i, o, f, c**
(GRU's order is the same), ``R`` likewise, and ``B = [Wb ‖ Rb]``. A GRU with
``reset_after`` (bias ``(2, 3u)``: input row, recurrent row) is ONNX's
``linear_before_reset=1``. ONNX runs time-major, so the input is transposed to
``(time, batch, features)`` and the sequence output stays time-major until a layer
needs Keras's order. ``go_backwards`` is ONNX's reverse direction, whose sequence
output is re-reversed to Keras's order (Keras returns it in processing order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import FileFormatError
from ...formats.keras import ConfigLayer
from ...model import Tensor
from ..builder import GraphBuilder, Value
from .base import LayerCall, emits

_INT64_MIN = -(2**63)
_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}
_ONNX_OP = {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN"}
_ACTIVATIONS = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "hard_sigmoid": "HardSigmoid",
                "linear": "Affine", None: "Affine", "softsign": "Softsign", "softplus": "Softplus", "elu": "Elu"}


def _check(layer: ConfigLayer) -> str | None:
    config = layer.config
    if config.get("stateful"):
        return "a stateful recurrent layer (its state lives outside the weights)"
    for key in ("activation", "recurrent_activation"):
        value = config.get(key, "tanh" if key == "activation" else "sigmoid")
        if layer.class_name == "SimpleRNN" and key == "recurrent_activation":
            continue
        if not (value is None or isinstance(value, str)) or value not in _ACTIVATIONS:
            return f"{key} {value!r} has no ONNX recurrent equivalent"
    return None


def _activation(b: GraphBuilder, name: Any) -> tuple[str, list[float], list[float]]:
    """ONNX activation name and the alphas/betas it consumes."""
    onnx_name = _ACTIVATIONS[name]
    if onnx_name == "HardSigmoid":
        return onnx_name, [1 / 6 if b.keras_major >= 3 else 0.2], [0.5]
    if onnx_name == "Affine":
        return onnx_name, [1.0], [0.0]
    if onnx_name == "Elu":
        return onnx_name, [1.0], []
    return onnx_name, [], []


def _cell_tensors(call: LayerCall, direction: str | None = None) -> list[Tensor]:
    """The layer's weights in file order (kernel, recurrent kernel, bias): its own, or its ``cell``'s in a
    Keras 3 ``.keras``; for Bidirectional only those of the ``forward`` or ``backward`` half."""
    if call.weights is None:
        return []
    found = [(path, tensor) for path, layer in call.weights.walk() for tensor in layer.tensors.values()]
    if direction is not None:
        found = [(path, tensor) for path, tensor in found
                 if ("backward" in f"{path}/{tensor.name}") == (direction == "backward")]
    return [tensor for _, tensor in found]


def _arrays(call: LayerCall, tensors: list[Tensor], gates: int, units: int,
            use_bias: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """kernel ``(in, gates*units)``, recurrent kernel ``(units, gates*units)`` and bias, checked."""
    if len(tensors) != 2 + use_bias:
        raise FileFormatError(f"layer {call.path!r} ({call.layer.class_name}) has {len(tensors)} weights in the file; "
                              f"expected kernel, recurrent kernel{' and bias' if use_bias else ''}",
                              hint="the weights do not belong to this architecture (Keras 1 recurrent weights "
                                   "are not supported)")
    kernel, recurrent = (np.asarray(t.read()) for t in tensors[:2])
    if kernel.ndim != 2 or kernel.shape[1] != gates * units or recurrent.shape != (units, gates * units):
        raise FileFormatError(f"layer {call.path!r}: kernels {kernel.shape} and {recurrent.shape} do not fit "
                              f"{units} units", hint="the weights do not belong to this architecture")
    return kernel, recurrent, np.asarray(tensors[2].read()) if use_bias else None


def _onnx_weights(kind: str, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray | None,
                  units: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W, R, B in ONNX's layout and gate order."""
    gates = _GATES[kind]
    order = [0, 3, 1, 2] if kind == "LSTM" else list(range(gates))

    def reorder(matrix: np.ndarray) -> np.ndarray:
        blocks = np.split(matrix, gates, axis=-1)
        return np.concatenate([blocks[i] for i in order], axis=-1)

    w = reorder(kernel).T[None]
    r = reorder(recurrent).T[None]
    if bias is None:
        b = np.zeros((1, 2 * gates * units), np.float32)
    elif bias.ndim == 2:  # GRU reset_after: input bias row, recurrent bias row
        b = np.concatenate([reorder(bias[0]), reorder(bias[1])])[None]
    else:
        b = np.concatenate([reorder(bias), np.zeros_like(bias)])[None]
    return w, r, b


@emits("LSTM", "GRU", "SimpleRNN", check=_check)
def recurrent(b: GraphBuilder, call: LayerCall) -> list[Value]:
    kind, tensors = call.layer.class_name, _cell_tensors(call)
    config = _with_reset_after(kind, call.config, tensors)
    x = _time_major_input(b, call, config)
    weights = _weights(b, call, kind, config, [tensors])
    attrs = _attributes(b, kind, config, directions=1)
    attrs["direction"] = "reverse" if config.get("go_backwards") else "forward"
    outputs = b.multi_node(_ONNX_OP[kind], [x.name, *weights], call.path, outputs=3 if kind == "LSTM" else 2, **attrs)
    return _keras_outputs(b, call, outputs, int(config["units"]), bool(config.get("time_major")))


def _with_reset_after(kind: str, config: dict[str, Any], tensors: list[Tensor]) -> dict[str, Any]:
    """Keras 2.0 GRU configs say nothing of ``reset_after``: its bias shape does ((2, 3u) when set)."""
    if kind != "GRU" or "reset_after" in config:
        return config
    return {**config, "reset_after": len(tensors) == 3 and len(tensors[2].shape) == 2}


def _time_major_input(b: GraphBuilder, call: LayerCall, config: dict[str, Any]) -> Value:
    return b.keras_order(call.inputs[0]) if config.get("time_major") else b.relayout(call.inputs[0], (1, 0, 2))


def _weights(b: GraphBuilder, call: LayerCall, kind: str, config: dict[str, Any],
             halves: list[list[Tensor]]) -> list[str]:
    """W, R, B initializers; one direction per entry of ``halves`` (stacked for bidirectional)."""
    units, use_bias = int(config["units"]), bool(config.get("use_bias", True))
    stacks: list[list[np.ndarray]] = [[], [], []]
    for tensors in halves:
        kernel, recurrent_kernel, bias = _arrays(call, tensors, _GATES[kind], units, use_bias)
        for stack, array in zip(stacks, _onnx_weights(kind, kernel, recurrent_kernel, bias, units)):
            stack.append(array)
    return [b.weight((call.path, role), f"{call.path}/{role}", _concatenated(stack))
            for role, stack in zip(("W", "R", "B"), stacks)]


def _concatenated(arrays: list[np.ndarray]) -> Callable[[], np.ndarray]:
    return lambda: np.concatenate(arrays)


def _attributes(b: GraphBuilder, kind: str, config: dict[str, Any], directions: int) -> dict[str, Any]:
    activations = [config.get("recurrent_activation", "sigmoid")] if kind != "SimpleRNN" else []
    activations += [config.get("activation", "tanh")] * (2 if kind == "LSTM" else 1)
    specs = [_activation(b, name) for name in activations] * directions
    alphas, betas = sum((s[1] for s in specs), []), sum((s[2] for s in specs), [])
    attrs: dict[str, Any] = {"hidden_size": int(config["units"]), "activations": [s[0] for s in specs],
                             "activation_alpha": alphas or None, "activation_beta": betas or None}
    if kind == "GRU":
        attrs["linear_before_reset"] = int(bool(config.get("reset_after", True)))
    return attrs


def _keras_outputs(b: GraphBuilder, call: LayerCall, outputs: list[str], units: int, time_major: bool) -> list[Value]:
    config, path = call.config, call.path
    shape = call.inputs[0].shape
    batch, steps = (shape[1], shape[0]) if (shape and time_major) else ((shape[0], shape[1]) if shape else (None, None))
    states = [Value(b.squeeze(name, [0], f"{path}/state{i}"), (batch, units)) for i, name in enumerate(outputs[1:])]
    if config.get("return_sequences"):
        sequence = b.squeeze(outputs[0], [1], f"{path}/sequence")
        if config.get("go_backwards"):  # Keras returns the sequence in processing (reversed) order
            sequence = b.node("Slice", [sequence, b.ints([-1], "starts"), b.ints([_INT64_MIN], "ends"),
                                        b.ints([0], "axes"), b.ints([-1], "steps")], f"{path}/reversed")
        if time_major:
            first = Value(sequence, (steps, batch, units))
        else:
            first = Value(sequence, (batch, steps, units), (1, 0, 2))
    else:
        first = states[0]
    if not config.get("return_state"):
        return [first]
    return [first, *states]


def _wrapped(layer: ConfigLayer) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    inner = layer.config.get("layer") or {}
    backward = layer.config.get("backward_layer")
    return str(inner.get("class_name")), inner.get("config") or {}, (backward or {}).get("config") if backward else None


def _check_bidirectional(layer: ConfigLayer) -> str | None:
    kind, forward, backward = _wrapped(layer)
    if kind not in _GATES:
        return f"Bidirectional around {kind}"
    if forward.get("go_backwards") or (backward is not None and (backward.get("units") != forward.get("units")
                                                                or not backward.get("go_backwards", True))):
        return "a Bidirectional layer whose halves are not one layer run both ways"
    if layer.config.get("merge_mode", "concat") not in _MERGE:
        return f"merge_mode {layer.config.get('merge_mode')!r}"
    return _check(ConfigLayer(layer.name, kind, forward))


_REDUCE = {"sum": "ReduceSum", "mul": "ReduceProd", "ave": "ReduceMean"}
_MERGE = {"concat", None, *_REDUCE}


@emits("Bidirectional", check=_check_bidirectional)
def bidirectional(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """One ONNX op with ``direction="bidirectional"``: forward weights first, then the backward layer's."""
    kind, config, _ = _wrapped(call.layer)
    halves = [_cell_tensors(call, "forward"), _cell_tensors(call, "backward")]
    config = _with_reset_after(kind, config, halves[0])
    x = _time_major_input(b, call, config)
    weights = _weights(b, call, kind, config, halves)
    attrs = {**_attributes(b, kind, config, directions=2), "direction": "bidirectional"}
    outputs = b.multi_node(_ONNX_OP[kind], [x.name, *weights], call.path, outputs=3 if kind == "LSTM" else 2, **attrs)
    return _bidirectional_outputs(b, call, config, outputs)


def _bidirectional_outputs(b: GraphBuilder, call: LayerCall, config: dict[str, Any], outputs: list[str]) -> list[Value]:
    """Keras's merge of the two directions: Y ``(time, 2, batch, units)``, Y_h/Y_c ``(2, batch, units)``."""
    mode, path, units = call.config.get("merge_mode", "concat"), call.path, int(config["units"])
    time_major = bool(config.get("time_major"))
    shape = call.inputs[0].shape
    batch, steps = (shape[1], shape[0]) if (shape and time_major) else ((shape[0], shape[1]) if shape else (None, None))
    sequences = bool(config.get("return_sequences"))
    source, axis = (outputs[0], 1) if sequences else (outputs[1], 0)
    if mode is None:
        halves = b.multi_node("Split", [source, b.ints([1, 1], "split")], f"{path}/split", outputs=2, axis=axis)
        merged = [b.squeeze(half, [axis], f"{path}/{side}") for half, side in zip(halves, ("forward", "backward"))]
    elif mode == "concat":
        moved = b.node("Transpose", [source], f"{path}/directions_last", perm=[0, 2, 1, 3] if sequences else [1, 0, 2])
        merged = [b.node("Reshape", [moved, b.ints([0, 0, 2 * units] if sequences else [0, 2 * units], "shape")],
                         f"{path}/concat")]
    else:
        merged = [b.reduce(_REDUCE[mode], source, [axis], f"{path}/{mode}", keepdims=False)]
    width = 2 * units if mode == "concat" else units
    if sequences:
        values = [Value(m, (steps, batch, width)) if time_major else Value(m, (batch, steps, width), (1, 0, 2))
                  for m in merged]
    else:
        values = [Value(m, (batch, width)) for m in merged]
    if not config.get("return_state") and not call.config.get("return_state"):
        return values
    states = []
    for index, name in enumerate(outputs[1:]):
        forward, backward = b.multi_node("Split", [name, b.ints([1, 1], "split")], f"{path}/state{index}",
                                         outputs=2, axis=0)
        states += [Value(b.squeeze(forward, [0], f"{path}/state{index}_forward"), (batch, units)),
                   Value(b.squeeze(backward, [0], f"{path}/state{index}_backward"), (batch, units))]
    order = [0, 2, 1, 3] if len(states) == 4 else [0, 1]  # Keras: h_fw, c_fw, h_bw, c_bw
    return values + [states[i] for i in order]
