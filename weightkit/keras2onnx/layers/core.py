"""Layers that are the identity at inference, and Lambda layers recognised by name.

A Lambda's function is never deserialized or run: only a name that says exactly
what it computes is trusted (keras-yolo2's ``space_to_depth_x2`` passthrough).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from ...formats.keras import ConfigLayer
from ..builder import GraphBuilder, Value
from .base import LayerCall, emits

_IDENTITY = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
             "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity")
_MAX_CODE_BYTES = 1 << 20


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


def function_name(config: dict[str, Any]) -> str:
    """What a Lambda's config says its function is called ('' for an anonymous or unreadable one).

    Keras 3 names module-level functions outright; Keras 2 and tf.keras store the
    function's marshalled code (base64): its names are looked at as bytes, never loaded.
    """
    function = config.get("function")
    if isinstance(function, dict):
        inner = function.get("config")
        if isinstance(inner, str):
            return inner
        if isinstance(inner, dict) and isinstance(inner.get("code"), str):
            return _code_names(inner["code"])
        return ""
    if isinstance(function, str):
        return function if config.get("function_type") == "function" else _code_names(function)
    if isinstance(function, list) and function and isinstance(function[0], str):
        return _code_names(function[0])
    return ""


def _code_names(encoded: str) -> str:
    if len(encoded) > _MAX_CODE_BYTES:
        return ""
    try:
        raw = base64.b64decode(encoded.encode("ascii"), validate=False)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return ""
    found = re.findall(rb"space_to_depth\w*", raw)
    return found[0].decode("ascii", "replace") if found else ""


def _block_size(layer: ConfigLayer) -> int:
    match = re.search(r"_x(\d+)$", function_name(layer.config))
    return int(match.group(1)) if match else 2


def _check_lambda(layer: ConfigLayer) -> str | None:
    name = function_name(layer.config)
    if "space_to_depth" in name:
        return None
    return f"a Lambda layer ({'function ' + repr(name) if name else 'anonymous function'}); " \
           "its code is never run, and only space_to_depth is recognised by name"


@emits("Lambda", check=_check_lambda)
def lambda_layer(b: GraphBuilder, call: LayerCall) -> list[Value]:
    """``tf.space_to_depth``: SpaceToDepth on channels-first data orders channels as TF does on NHWC."""
    block = _block_size(call.layer)
    x = b.channels_first(call.inputs[0])
    shape = None
    if x.shape is not None and len(x.shape) == 4:
        n, h, w, c = x.shape
        shape = (n, h // block if isinstance(h, int) else None, w // block if isinstance(w, int) else None,
                 c * block * block if isinstance(c, int) else None)
    return [Value(b.node("SpaceToDepth", [x.name], call.path, blocksize=block), shape, x.perm)]
