"""Dense: Gemm on ``(batch, in)``, MatMul + Add on higher ranks, a 1x1 Conv on channels-first tensors.

Keras applies Dense to the last axis. When that axis is ONNX axis 1 (a feature
map kept channels-first, as in ConvNeXt's pointwise layers) a 1x1 Conv does the
same thing without transposing the tensor back and forth.
"""

from __future__ import annotations

import numpy as np

from ...formats.keras import ConfigLayer
from ..builder import GraphBuilder, Value, channels_first_perm
from .activations import activation_problem, apply_activation
from .base import LayerCall, emits, option


def _check(layer: ConfigLayer) -> str | None:
    if layer.config.get("quantization_config") or layer.config.get("lora_rank"):
        return "a quantized or LoRA Dense layer"
    return activation_problem(layer.config.get("activation"))


@emits("Dense", check=_check)
def dense(b: GraphBuilder, call: LayerCall) -> list[Value]:
    x = call.inputs[0]
    units = call.config.get("units")
    kernel = call.array("weight", expect=(x.shape[-1] if x.shape else None, units))
    use_bias = bool(option(call.config, "use_bias", default=True))
    bias = call.array("bias", expect=(units,)) if use_bias else None
    rank = x.rank or 2
    if rank >= 3 and x.perm == channels_first_perm(rank):
        output = _as_conv(b, call, x, kernel, bias)
    elif rank == 2:
        inputs = [x.name, b.weight((call.path, "weight"), f"{call.path}/kernel", lambda: kernel)]
        if bias is not None:
            inputs.append(b.weight((call.path, "bias"), f"{call.path}/bias", lambda: bias))
        output = call.output(b.node("Gemm", inputs, call.path), x)
    else:
        x = b.keras_order(x)
        weight = b.weight((call.path, "weight"), f"{call.path}/kernel", lambda: kernel)
        product = b.node("MatMul", [x.name, weight], f"{call.path}/matmul" if bias is not None else call.path)
        if bias is not None:
            product = b.node("Add", [product, b.weight((call.path, "bias"), f"{call.path}/bias", lambda: bias)],
                             call.path)
        output = call.output(product, x)
    activation = call.config.get("activation")
    label = activation if isinstance(activation, str) else "activation"
    return [apply_activation(b, output, activation, f"{call.path}/{label}")]


def _as_conv(b: GraphBuilder, call: LayerCall, x: Value, kernel: np.ndarray, bias: np.ndarray | None) -> Value:
    spatial = (x.rank or 4) - 2
    weight = b.weight((call.path, "weight", "conv"), f"{call.path}/kernel",
                      lambda: kernel.T.reshape(kernel.shape[1], kernel.shape[0], *([1] * spatial)))
    inputs = [x.name, weight]
    if bias is not None:
        inputs.append(b.weight((call.path, "bias"), f"{call.path}/bias", lambda: bias))
    output = b.node("Conv", inputs, call.path, kernel_shape=[1] * spatial)
    return call.output(output, x)
