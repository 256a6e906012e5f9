"""What a file holds, as data: totals and the JSON document ``weightkit inspect --json`` prints.

The document's shape is described in ``docs/json.md``; ``schema_version`` changes
only when a field changes meaning or disappears. Every command's document carries the same
``schema_version`` and speaks one vocabulary: a layer is named by its ``path`` (``outer/inner``
when nested), a tensor or graph port by its ``name``, a framework's own class or op by ``type``,
and a shape's dimensions as `shape_document` writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..arch.flat import HEAD_NAMES
from ..kinds import NON_TRAINABLE_ROLES
from ..model import Dim, Layer, Model, Tensor, TensorSpec
from .anatomy import makes_outputs
from .canonical import Unit, out_channels, units

__all__ = ["SCHEMA_VERSION", "Totals", "HeadlessBackbone", "totals", "headless_backbone", "inspect_document",
           "architecture_document", "is_buffer", "layer_params", "shape_document"]

#: 2: layers are named by ``path``; Keras's free batch dimension is ``"batch"``; PyTorch buffers are
#: counted apart from parameters (``totals.buffers``); ``convert`` says ``type``, not ``class_name``.
SCHEMA_VERSION = 2

_CONV_KINDS = frozenset({"conv1d", "conv2d", "conv3d", "depthwise_conv2d", "separable_conv2d"})
_NORM_KINDS = frozenset({"batch_norm", "group_norm", "layer_norm"})
# Weighted kinds that mean the file is not a convolutional feature extractor alone: a classifier, a sequence model.
_NOT_A_FEATURE_MAP = frozenset({"dense", "embedding", "lstm", "gru", "rnn", "attention"})


@dataclass
class Totals:
    """Counts over every layer tensor of a model (extras such as optimizer state apart).

    ``params`` counts what the model's framework calls its parameters: every weight of a Keras
    model (as ``count_params`` does, non-trainable ones included), the parameters of a PyTorch
    checkpoint without its buffers (as ``sum(p.numel() for p in model.parameters())`` does).
    ``buffers`` is the values of those buffers (None where the framework has none);
    ``trainable`` and ``non_trainable`` split ``params``, and are None when the file cannot tell.
    """

    layers: int
    tensors: int
    params: int
    trainable: int | None
    non_trainable: int | None
    nbytes: int
    bytes_by_dtype: dict[str, int] = field(default_factory=dict)
    buffers: int | None = None


def totals(model: Model) -> Totals:
    """Parameter, tensor and byte counts of ``model``, by dtype and by trainability."""
    tensors = model.tensors()
    by_dtype: dict[str, int] = {}
    for tensor in tensors:
        by_dtype[tensor.dtype] = by_dtype.get(tensor.dtype, 0) + tensor.nbytes
    parameters = [t for t in tensors if not is_buffer(model, t)]
    known = all(t.trainable is not None for t in parameters) and bool(parameters)
    trainable = sum(t.size for t in parameters if t.trainable) if known else None
    params = sum(t.size for t in parameters)
    return Totals(
        layers=sum(1 for _ in model.walk()),
        tensors=len(tensors),
        params=params,
        trainable=trainable,
        non_trainable=params - trainable if trainable is not None else None,
        nbytes=sum(by_dtype.values()),
        bytes_by_dtype=dict(sorted(by_dtype.items(), key=lambda item: -item[1])),
        buffers=sum(t.size for t in tensors) - params if _has_buffers(model) else None,
    )


def is_buffer(model: Model, tensor: Tensor) -> bool:
    """Is ``tensor`` what PyTorch registers as a buffer, not a parameter: a norm's running statistics or
    its batch counter (``running_mean``, ``running_var``, ``num_batches_tracked``) in a file keyed as a
    PyTorch state_dict. Keras counts such weights among its parameters (as non-trainable): never a buffer."""
    return _has_buffers(model) and tensor.role in NON_TRAINABLE_ROLES


def layer_params(model: Model, layer: Layer) -> int:
    """The parameters of ``layer`` and its sublayers, counted as `totals` counts them (buffers apart)."""
    return sum(t.size for t in layer.all_tensors() if not is_buffer(model, t))


def _has_buffers(model: Model) -> bool:
    """Files keyed as PyTorch state_dicts: torch checkpoints, and safetensors files not written by another framework."""
    return model.framework == "pytorch" or (model.framework is None and model.format.endswith("safetensors"))


def shape_document(model: Model, shape: Sequence[Dim] | None) -> list[Dim] | None:
    """A shape as every JSON document writes it: integers are sizes, strings name a free dimension, null is
    a free dimension without a name. A Keras shape's first axis is the batch: left free (None), it is
    ``"batch"``, as in the ONNX graph `weightkit.convert` writes."""
    if shape is None:
        return None
    dims = list(shape)
    if model.framework == "keras" and dims and dims[0] is None:
        dims[0] = "batch"
    return dims


@dataclass
class HeadlessBackbone:
    """A weights-only file that looks like a feature extractor saved without its head.

    ``layer`` is its last weighted layer (a path for nested models) and ``channels`` the
    channels that layer puts out: what a head joined to it must take.
    """

    layer: str
    channels: int


def headless_backbone(model: Model) -> HeadlessBackbone | None:
    """Does a weights-only ``model`` look like a backbone without a head? None if not, or if it cannot tell.

    It does when its weighted layers are convolutions and norms, with no classifier (no dense layer, no
    layer under a usual head name such as ``fc`` or ``classifier``), and the last of them is a norm or a
    convolution that does not make outputs (see `anatomy.makes_outputs`: a super-resolution net's last conv
    narrows to 3 channels, keras-yolo2's ``DetectionLayer`` has the only bias). Files with an architecture
    say their output themselves, and a Keras 3 ``.weights.h5`` does not record its layers' order: for
    both the answer is None.

    Example:
        >>> headless_backbone(weightkit.load("full_yolo_backend.h5"))
        HeadlessBackbone(layer='norm_22', channels=1024)
    """
    if model.has_graph or model.format == "keras-v3-weights":
        return None
    weighted = [unit for unit in units(model) if "weight" in unit.tensors or "running_mean" in unit.tensors]
    if not weighted or not _only_features(weighted):
        return None
    last = weighted[-1]
    if last.kind not in _CONV_KINDS | _NORM_KINDS or makes_outputs(weighted):
        return None
    channels = out_channels(last)
    return HeadlessBackbone(last.path.split(":")[0], channels) if channels is not None else None


def _only_features(weighted: list[Unit]) -> bool:
    """Convolutions and norms only (at least one convolution), none under a head's name."""
    if any(unit.kind in _NOT_A_FEATURE_MAP for unit in weighted):
        return False
    if any(part in HEAD_NAMES for unit in weighted for part in unit.path.replace(".", "/").split("/")):
        return False
    return any(unit.kind in _CONV_KINDS for unit in weighted)


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
        "inputs": [_spec(model, spec) for spec in model.inputs],
        "outputs": [_spec(model, spec) for spec in model.outputs],
        "layers": [_layer(model, layer, layer.name) for layer in model.layers],
        "extras": {group: [_tensor(t) for t in tensors] for group, tensors in model.extras.items()},
        "totals": total.__dict__,
        "backbone_without_head": _optional(headless_backbone(model)),
        "architecture": architecture_document(model),
    }


def architecture_document(model: Model) -> dict[str, Any] | None:
    """The catalog architecture `identify` names for ``model`` (null where it names none), without reading data."""
    from .identify import identify_model

    found = identify_model(model, top=1, training=False)
    named = found.named
    if named is None:
        return None
    return {"name": named.architecture, "family": named.family, "variant": named.variant, "sources": named.sources,
            "confidence": named.confidence, "relation": named.relation, "summary": found.summary()}


def _optional(found: HeadlessBackbone | None) -> dict[str, Any] | None:
    return asdict(found) if found is not None else None


def _spec(model: Model, spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": shape_document(model, spec.shape), "dtype": spec.dtype}


def _layer(model: Model, layer: Layer, path: str) -> dict[str, Any]:
    return {
        "path": path,
        "kind": layer.kind,
        "type": layer.type_name,
        "params": layer_params(model, layer),
        "inbound": layer.inbound,
        "tensors": [_tensor(t) for t in layer.tensors.values()],
        "layers": [_layer(model, sub, f"{path}/{sub.name}") for sub in layer.layers],
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
