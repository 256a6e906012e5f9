"""ONNX models: the protobuf read by weightkit's own wire parser, tensors mapped lazily
(inline, or external data inside the model's folder), written back without copying the graph.
"""

from __future__ import annotations

from .. import Format
from . import read

__all__ = ["FORMATS"]

FORMATS = (
    Format("onnx", read.LABEL, (".onnx",), read.sniff, read.read, read.write, writes_back=("onnx",)),
)
