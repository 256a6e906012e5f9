"""What an ONNX model says about itself: metadata, and its graph inputs and outputs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ...model import Dim, TensorSpec
from .source import onnx_dtype, text

__all__ = ["model_metadata", "opsets", "graph_inputs", "graph_outputs"]

_DOC_LIMIT = 200


def opsets(proto: Any) -> dict[str, int]:
    """Opset version by domain (the default domain as ``ai.onnx``), custom domains included."""
    return {(text(entry.domain) or "ai.onnx"): int(entry.version) for entry in proto.opset_import}


def model_metadata(proto: Any, histogram: Counter[str], external_files: list[str]) -> dict[str, Any]:
    """JSON-ready facts: writer, IR version, opsets, producer, domain, doc, metadata_props, op counts."""
    graph = proto.graph
    name, version = text(proto.producer_name), text(proto.producer_version)
    metadata: dict[str, Any] = {
        "writer": " ".join(p for p in (name, version) if p) or None,
        "ir_version": int(proto.ir_version),
        "opsets": opsets(proto),
        "producer": {"name": name, "version": version} if name or version else None,
        "model_domain": text(proto.domain) or None,
        "model_version": int(proto.model_version) if proto.model_version else None,
        "graph_name": text(graph.name) or None,
        "doc_string": _short(text(proto.doc_string) or text(graph.doc_string)),
        "metadata_props": {text(entry.key): text(entry.value) for entry in proto.metadata_props} or None,
        "op_histogram": dict(histogram.most_common()) or None,
        "functions": [text(f"{text(f.domain)}::{text(f.name)}" if f.domain else f.name)
                      for f in proto.functions] or None,
        "training_info": len(proto.training_info) or None,
        "sparse_initializers": len(graph.sparse_initializer) or None,
        "external_data": external_files or None,
    }
    return {key: value for key, value in metadata.items() if value is not None}


def graph_inputs(graph: Any) -> list[TensorSpec]:
    """The inputs a caller feeds: graph inputs that are not initializers (IR ≤ 3 lists those too)."""
    constants = {init.name for init in graph.initializer} | {s.values.name for s in graph.sparse_initializer}
    return [_spec(value) for value in graph.input if value.name not in constants]


def graph_outputs(graph: Any) -> list[TensorSpec]:
    return [_spec(value) for value in graph.output]


def _spec(value: Any) -> TensorSpec:
    """Shape with symbolic dims as strings and unknown ones as None; element type as a dtype name."""
    kind = value.type.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        tensor_type = getattr(value.type, kind)
        dtype = onnx_dtype(tensor_type.elem_type) if tensor_type.elem_type else None
        shape = tuple(_dim(d) for d in tensor_type.shape.dim) if tensor_type.HasField("shape") else None
        return TensorSpec(text(value.name), shape, dtype)
    return TensorSpec(text(value.name), None, kind.removesuffix("_type") if kind else None)


def _dim(dim: Any) -> Dim:
    which = dim.WhichOneof("value")
    if which == "dim_value":
        return int(dim.dim_value)
    if which == "dim_param":
        return text(dim.dim_param)
    return None


def _short(text: str) -> str | None:
    text = " ".join(text.split())
    if not text:
        return None
    return text if len(text) <= _DOC_LIMIT else text[:_DOC_LIMIT - 1] + "…"
