"""Layers that are the identity at inference, and the Lambda layers weightkit knows.

A Lambda's function is never deserialized or run: which Lambdas are known, and what
they compute, is decided in one place, `weightkit.formats.keras.lambdas` (today:
keras-yolo2's ``space_to_depth_x2`` passthrough, by its code's structure or by name).
"""

from __future__ import annotations

from ...formats.keras import ConfigLayer
from ...formats.keras.lambdas import function_name, known_lambda, lambda_problem
from ..builder import GraphBuilder, Value
from .base import LayerCall, emits

_IDENTITY = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
             "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity")


@emits("InputLayer")
def input_layer(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """An InputLayer called like a layer passes its tensor through."""
    x = call.inputs[0]
    return [b.value("Identity", [x.name], call.path, x)]


@emits(*_IDENTITY)
def identity_at_inference(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """Dropout and noise layers do nothing at inference."""
    x = call.inputs[0]
    return [b.value("Identity", [x.name], call.path, x)]


def _check_lambda(layer: ConfigLayer) -> str | None:
    problem = lambda_problem(layer.config)
    if problem is None:
        return None
    name = function_name(layer.config)
    return f"a Lambda layer ({'function ' + repr(name) if name else 'anonymous function'}): {problem} " \
           "(weightkit never runs a Lambda's code; it knows keras-yolo2's space_to_depth only)"


@emits("Lambda", check=_check_lambda)
def lambda_layer(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """``tf.space_to_depth``: SpaceToDepth on channels-first data orders channels as TF does on NHWC."""
    known = known_lambda(call.config)
    if known is None:  # _check_lambda names these before conversion starts
        raise ValueError(f"a Lambda whose function weightkit does not know ({call.path})")
    x = b.channels_first(call.inputs[0])
    shape = known.output_shape(x.shape) if x.shape is not None else None
    return [Value(b.node("SpaceToDepth", [x.name], call.path, blocksize=known.block_size), shape, x.perm)]
