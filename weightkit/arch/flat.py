"""Cutting files without a graph — Keras weights-only files, PyTorch state_dicts, safetensors —
by layer order or by key prefix, and joining such parts back.

Without a graph the only order is the file's, so a cut after a layer puts every layer
stored before it in the backbone. Heads are found by the names PyTorch models give them
(``fc``, ``classifier``, ``head`` ...).
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import replace

from ..errors import UsageError
from ..model import Dim, Layer, Model
from ..records import STRIPPED_PREFIX_KEY, recorded
from . import Cut, joined_metadata, make_part, over_parts

__all__ = ["FlatLayers", "HEAD_NAMES", "cut_by_prefix", "output_shape", "reprefixed"]

#: Module names that hold a classifier or task head in PyTorch models.
HEAD_NAMES = ("fc", "classifier", "head", "heads", "last_linear", "logits", "cls", "top", "decode_head")

# Stored kernel layouts whose last axis is the canonical (PyTorch/ONNX) first one.
_LAST_AXIS_FIRST = {"HWIO", "WIO", "DHWIO", "IO", "HWOI", "WOI"}


class FlatLayers:
    """The `Architecture` of a file without a graph: its layers in stored order."""

    def boundaries(self, model: Model) -> list[Cut]:
        """After every layer with weights but the last one (a head needs a layer)."""
        weighted = [layer for layer in model.layers if layer.all_tensors()]
        return [self._cut_after(model, layer.name) for layer in weighted[:-1]]

    def propose(self, model: Model) -> Cut | None:
        """The keys under a usual head name (``fc.``, ``classifier.``, ``head.``)."""
        tops = list(dict.fromkeys(layer.name.split(".")[0] for layer in model.layers))
        if {"backbone", "head"} <= set(tops):
            return _prefix_cut(model, ["head"], "keys are grouped as backbone.* and head.*")
        if {"features", "classifier"} <= set(tops):
            return _prefix_cut(model, ["classifier"], "keys are grouped as features.* and classifier.*")
        heads = [name for name in tops if name in HEAD_NAMES]
        if heads and len(tops) > len(heads):
            return _prefix_cut(model, heads, f"{', '.join(heads)} is the usual name of a classifier")
        return None

    def cut(self, model: Model, at: str) -> tuple[Model, Model]:
        """Layers up to ``at`` (or the last layer under the module ``at``) and the layers after.

        Raises:
            UsageError: no such layer, or the file does not record its layers' order.
        """
        if model.format == "keras-v3-weights":
            raise UsageError("a .weights.h5 does not record the order of its layers, so it cannot be cut by order",
                             hint="split the .keras file (or a legacy .h5) of the same model")
        backbone, head = _by_order(model, at)
        return make_part(model, backbone), make_part(model, head)

    def join(self, backbone: Model, head: Model, *, backbone_prefix: str | None = None,
             head_prefix: str | None = None) -> Model:
        """The backbone's layers then the head's, with the key prefixes a split stripped put back.

        Raises:
            UsageError: both parts hold a tensor of the same name.
        """
        prefixes = [given if given is not None else recorded(part, STRIPPED_PREFIX_KEY) or ""
                    for part, given in ((backbone, backbone_prefix), (head, head_prefix))]
        layers: list[Layer] = []
        for part, prefix in zip((backbone, head), prefixes):
            layers.extend(reprefixed(layer, "", prefix) for layer in part.layers)
        names = [t.name for layer in layers for t in layer.tensors.values()]
        duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
        if duplicates:
            raise UsageError(f"backbone and head both hold {', '.join(duplicates[:3])}")
        joined = Model(layers=layers, format=backbone.format, framework=backbone.framework,
                       framework_version=backbone.framework_version, metadata=joined_metadata(backbone))
        return over_parts(joined, backbone, head)

    def _cut_after(self, model: Model, at: str) -> Cut:
        backbone, head = _by_order(model, at)
        return Cut(at, output_shape(backbone[-1]), _names(backbone), _names(head))


def cut_by_prefix(model: Model, prefixes: list[str]) -> tuple[Model, Model]:
    """The layers outside ``prefixes`` and the layers under them, as two weights-only models.

    Raises:
        UsageError: no layer is under the prefixes, or every layer is.
    """
    backbone, head = _by_prefix(model, prefixes)
    return make_part(model, backbone), make_part(model, head)


def output_shape(layer: Layer) -> tuple[Dim, ...] | None:
    """``(None, width)`` of a layer's output, from its weight (or running mean); None if it has neither."""
    tensor = layer.tensors.get("weight") or layer.tensors.get("running_mean")
    if tensor is None or not tensor.ndim:
        return None
    shape, layout = tensor.shape, tensor.layout
    if layout == "HWCM" and len(shape) == 4:
        return (None, shape[2] * shape[3])
    if layout in _LAST_AXIS_FIRST and len(shape) == len(layout):
        return (None, shape[-1])
    return (None, shape[0])


def reprefixed(layer: Layer, old: str, new: str) -> Layer:
    """A copy of ``layer`` whose names start with ``new`` instead of ``old`` (the original stays untouched)."""
    tensors = {}
    for role, tensor in layer.tensors.items():
        tensors[role] = copy.copy(tensor)
        tensors[role].name = new + tensor.name.removeprefix(old)
    return replace(layer, name=new + layer.name.removeprefix(old), tensors=tensors)


# ---- steps ------------------------------------------------------------------------------------


def _by_order(model: Model, at: str) -> tuple[list[Layer], list[Layer]]:
    names = [layer.name for layer in model.layers]
    last = max((i for i, name in enumerate(names) if name == at or name.startswith(f"{at}.")), default=None)
    if last is None:
        raise UsageError(f"no layer named {at!r}", hint="`weightkit split --list-boundaries` lists them")
    return model.layers[: last + 1], model.layers[last + 1:]


def _by_prefix(model: Model, prefixes: list[str]) -> tuple[list[Layer], list[Layer]]:
    def in_head(layer: Layer) -> bool:
        return any(layer.name == p.rstrip(".") or layer.name.startswith(p.rstrip(".") + ".") for p in prefixes)

    head = [layer for layer in model.layers if in_head(layer)]
    if not head:
        raise UsageError(f"no layer starts with {', '.join(prefixes)}")
    if len(head) == len(model.layers):
        raise UsageError("every layer is in the head: the backbone would be empty")
    return [layer for layer in model.layers if not in_head(layer)], head


def _names(layers: list[Layer]) -> list[str]:
    return [layer.name for layer in layers]


def _prefix_cut(model: Model, prefixes: list[str], reason: str) -> Cut:
    backbone, head = _by_prefix(model, prefixes)
    return Cut(backbone[-1].name, output_shape(backbone[-1]), _names(backbone), _names(head),
               [f"{p}." for p in prefixes], reason)
