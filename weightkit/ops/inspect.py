"""What a file holds, as data: totals and the JSON document ``weightkit inspect --json`` prints.

The document's shape is described in ``docs/json.md``; ``schema_version`` changes
only when a field changes meaning or disappears.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..arch.flat import HEAD_NAMES
from ..model import Layer, Model, Tensor, TensorSpec
from .canonical import Unit, in_channels, out_channels, units

__all__ = ["SCHEMA_VERSION", "Totals", "HeadlessBackbone", "totals", "headless_backbone", "inspect_document"]

SCHEMA_VERSION = 1

_CONV_KINDS = frozenset({"conv1d", "conv2d", "conv3d", "depthwise_conv2d", "separable_conv2d"})
_NORM_KINDS = frozenset({"batch_norm", "group_norm", "layer_norm"})
# Weighted kinds that mean the file is not a convolutional feature extractor alone: a classifier, a sequence model.
_NOT_A_FEATURE_MAP = frozenset({"dense", "embedding", "lstm", "gru", "rnn", "attention"})


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
    convolution that does not make outputs (see `_makes_outputs`: a super-resolution net's last conv
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
    if last.kind not in _CONV_KINDS | _NORM_KINDS or _makes_outputs(weighted):
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


def _makes_outputs(weighted: list[Unit]) -> bool:
    """The last unit is a convolution that turns features into outputs: it narrows them (to an image's
    3 channels, to box predictions), or has a bias where the convolutions before it have none (they
    feed norms): keras-yolo2's ``DetectionLayer`` after ``norm_22``."""
    last, before = weighted[-1], weighted[:-1]
    if last.kind not in _CONV_KINDS:
        return False
    taken, made = in_channels(last), out_channels(last)
    if taken is not None and made is not None and made < taken:
        return True
    convs = [unit for unit in before if unit.kind in _CONV_KINDS]
    unbiased = bool(convs) and "bias" not in convs[-1].tensors
    return "bias" in last.tensors and (unbiased or bool(before) and before[-1].kind in _NORM_KINDS)


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
        "backbone_without_head": _optional(headless_backbone(model)),
    }


def _optional(found: HeadlessBackbone | None) -> dict[str, Any] | None:
    return asdict(found) if found is not None else None


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
