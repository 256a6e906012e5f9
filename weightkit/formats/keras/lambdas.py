"""The Keras ``Lambda`` layers weightkit knows: what each computes and the shape it puts out.

A Lambda's function is never deserialized or run. Its config is read as data: Keras 3
names a module-level function outright; Keras 1/2 and tf.keras store the function's
marshalled code (base64), whose names are looked at as bytes, never loaded. Today a
function is known by its name alone: keras-yolo2's passthrough ``space_to_depth_x2``
(``tf.space_to_depth(x, block_size=2)``; the block size comes from a ``_x<N>`` suffix,
2 without one). `known_lambda` is the one place that decides; the shape rules
(``formats.keras.shapes``) and the Keras → ONNX converter both ask it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from ...model import Dim

__all__ = ["KnownLambda", "SPACE_TO_DEPTH", "known_lambda", "function_name"]

#: What a known Lambda computes (``KnownLambda.op``): TensorFlow's NHWC ``space_to_depth``.
SPACE_TO_DEPTH = "space_to_depth"

_MAX_CODE_BYTES = 1 << 20  # a longer encoded function is not looked into
_BLOCK_SUFFIX = re.compile(r"_x(\d+)$")
_NAME = re.compile(rb"space_to_depth\w*")
_SHORT_STRING = frozenset(b"zZ\xda\xfa")  # marshal's short ASCII string types, with and without its ref flag


@dataclass(frozen=True)
class KnownLambda:
    """A Lambda whose function weightkit recognises.

    Attributes:
        function: the function's name as the config gives it (``space_to_depth_x2``).
        op: what it computes (`SPACE_TO_DEPTH`).
        block_size: the side of the square blocks moved into channels.
    """

    function: str
    op: str
    block_size: int

    def output_shape(self, shape: tuple[Dim, ...]) -> tuple[Dim, ...] | None:
        """The output shape (batch dim included) for an input of ``shape``; None where it cannot be told.

        ``space_to_depth`` takes NHWC data: height and width shrink by the block size, channels grow
        by its square. A size the block does not divide (TensorFlow refuses it) or a symbolic one is unknown.
        """
        if len(shape) != 4:
            return None
        batch, height, width, channels = shape
        block = self.block_size
        return (batch, _divided(height, block), _divided(width, block),
                channels * block * block if isinstance(channels, int) else None)


def known_lambda(config: dict[str, Any]) -> KnownLambda | None:
    """What a Lambda layer's ``config`` computes, if weightkit knows it; None for any other function.

    Example:
        >>> known_lambda({"function": {"class_name": "function", "config": "space_to_depth_x2"}})
        KnownLambda(function='space_to_depth_x2', op='space_to_depth', block_size=2)
    """
    name = function_name(config)
    if SPACE_TO_DEPTH not in name:
        return None
    match = _BLOCK_SUFFIX.search(name)
    block = int(match.group(1)) if match else 2
    return KnownLambda(name, SPACE_TO_DEPTH, block) if block > 0 else None


def function_name(config: dict[str, Any]) -> str:
    """What a Lambda's config says its function is called ('' for an anonymous or unreadable one)."""
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
    """The ``space_to_depth…`` name in marshalled code, read as bytes ('' if none or unreadable).

    The code holds the names it calls as well as its own (``tf.space_to_depth`` inside
    ``space_to_depth_x2``, or in its docstring): a name with a block suffix wins.
    """
    if len(encoded) > _MAX_CODE_BYTES:
        return ""
    try:
        raw = base64.b64decode(encoded.encode("ascii"), validate=False)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return ""
    names = [_as_marshalled(raw, match) for match in _NAME.finditer(raw)]
    suffixed = [name for name in names if _BLOCK_SUFFIX.search(name)]
    return (suffixed or names or [""])[0]


def _as_marshalled(raw: bytes, match: re.Match[bytes]) -> str:
    """A name found in the bytes, cut to its length where marshal stored it as a short string."""
    start, text = match.start(), match.group()
    if start >= 2 and raw[start - 2] in _SHORT_STRING and raw[start - 1] <= len(text):
        text = text[:raw[start - 1]]  # the byte after the name is the next object's type ('r', ')', ...)
    return text.decode("ascii", "replace")


def _divided(size: Dim, block: int) -> int | None:
    return size // block if isinstance(size, int) and size % block == 0 else None
