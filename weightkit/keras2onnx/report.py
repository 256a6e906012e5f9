"""What a conversion did: which ONNX nodes each Keras layer became, the graph's inputs and outputs, the
weights it left out, warnings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..model import Dim

__all__ = ["ConversionReport", "LayerReport", "PortReport", "UnusedWeights"]


@dataclass
class LayerReport:
    """One call of a Keras layer (``path`` is ``outer/inner`` for nested models) and its ONNX nodes."""

    path: str
    class_name: str
    nodes: list[str]


@dataclass
class PortReport:
    """A graph input or output: its ONNX name, the Keras layer it stands for, ONNX shape and layout."""

    name: str
    keras_name: str
    shape: list[Dim]
    layout: str


@dataclass
class UnusedWeights:
    """A layer of the weights file that no layer of the architecture uses (its tensors by name, ``params`` their
    element count): they are not in the ONNX file."""

    path: str
    tensors: list[str]
    params: int


@dataclass
class ConversionReport:
    """A conversion's result apart from the ModelProto itself; JSON-ready with `to_dict`."""

    source: str
    arch: str | None
    opset: int
    nchw: bool
    keras_major: int
    inputs: list[PortReport] = field(default_factory=list)
    outputs: list[PortReport] = field(default_factory=list)
    layers: list[LayerReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unused_weights: list[UnusedWeights] = field(default_factory=list)
    output_path: str | None = None
    nodes: int = 0
    initializers: int = 0
    initializer_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __repr__(self) -> str:
        return (f"<ConversionReport {self.source!r} opset={self.opset} layers={len(self.layers)} "
                f"nodes={self.nodes} warnings={len(self.warnings)}>")
