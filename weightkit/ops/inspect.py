"""What a file holds, as data: totals and the JSON document ``weightkit inspect --json`` prints.

The document's shape is described in ``docs/json.md``; ``schema_version`` changes
only when a field changes meaning or disappears.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model import Layer, Model, Tensor, TensorSpec

__all__ = ["SCHEMA_VERSION", "Totals", "totals", "inspect_document"]

SCHEMA_VERSION = 1


@dataclass
class Totals:
    """Counts over every layer tensor of a model (extras such as optimizer state apart).

    ``trainable`` and ``non_trainable`` are None when the file cannot tell.
    """

    layers: int
    tensors: int
    params: int
    trainable: int | None
    non_trainable: int | None
    nbytes: int
    bytes_by_dtype: dict[str, int] = field(default_factory=dict)


def totals(model: Model) -> Totals:
    """Parameter, tensor and byte counts of ``model``, by dtype and by trainability."""
    tensors = model.tensors()
    by_dtype: dict[str, int] = {}
    for tensor in tensors:
        by_dtype[tensor.dtype] = by_dtype.get(tensor.dtype, 0) + tensor.nbytes
    known = all(t.trainable is not None for t in tensors) and bool(tensors)
    trainable = sum(t.size for t in tensors if t.trainable) if known else None
    params = sum(t.size for t in tensors)
    return Totals(
        layers=sum(1 for _ in model.walk()),
        tensors=len(tensors),
        params=params,
        trainable=trainable,
        non_trainable=params - trainable if trainable is not None else None,
        nbytes=sum(by_dtype.values()),
        bytes_by_dtype=dict(sorted(by_dtype.items(), key=lambda item: -item[1])),
    )


def inspect_document(model: Model) -> dict[str, Any]:
    """The whole description of ``model`` as JSON-ready data (reads no tensor data)."""
    total = totals(model)
    return {
        "schema_version": SCHEMA_VERSION,
        "file": model.source,
        "format": model.format,
        "framework": model.framework,
        "framework_version": model.framework_version,
        "has_graph": model.has_graph,
        "metadata": model.metadata,
        "inputs": [_spec(spec) for spec in model.inputs],
        "outputs": [_spec(spec) for spec in model.outputs],
        "layers": [_layer(layer) for layer in model.layers],
        "extras": {group: [_tensor(t) for t in tensors] for group, tensors in model.extras.items()},
        "totals": total.__dict__,
    }


def _spec(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape) if spec.shape is not None else None, "dtype": spec.dtype}


def _layer(layer: Layer) -> dict[str, Any]:
    return {
        "name": layer.name,
        "kind": layer.kind,
        "type": layer.type_name,
        "params": layer.num_params,
        "inbound": layer.inbound,
        "tensors": [_tensor(t) for t in layer.tensors.values()],
        "layers": [_layer(sub) for sub in layer.layers],
    }


def _tensor(tensor: Tensor) -> dict[str, Any]:
    document = {
        "name": tensor.name,
        "role": tensor.role,
        "shape": list(tensor.shape),
        "dtype": tensor.dtype,
        "layout": tensor.layout,
        "trainable": tensor.trainable,
        "nbytes": tensor.nbytes,
    }
    if tensor.note:
        document["note"] = tensor.note
    return document
