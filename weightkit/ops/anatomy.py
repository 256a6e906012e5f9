"""Where a network's backbone ends and what its head is, from its layers alone (no catalog).

A backbone is the spatial part: convolutions and their norms, ending at its last feature
map. A head is what turns that map into outputs: dense layers (a classifier with N
classes), or a last convolution that narrows the features into predictions (a detector's
A·(5+C) channels per cell, a segmentation's N classes per pixel). Where the file has a
Keras graph, the feature map's stride is computed from the shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..formats.keras import ConfigLayer, architecture, infer_shapes
from ..model import Model
from .canonical import Unit, in_channels, out_channels, units

__all__ = ["BackboneEnd", "Head", "Anatomy", "anatomy", "head_of", "detection_layouts", "SPATIAL_KINDS"]

SPATIAL_KINDS = frozenset({"conv1d", "conv2d", "conv3d", "depthwise_conv2d", "separable_conv2d"})
_HEAD_KINDS = frozenset({"dense"})
_NORM_KINDS = frozenset({"batch_norm", "layer_norm", "group_norm", "norm"})
# keras-yolo2 and YOLOv3+ put this many boxes per grid cell; each box is 4 coordinates, an objectness, C classes.
_ANCHOR_COUNTS = (5, 3)


@dataclass
class BackboneEnd:
    """The backbone's last feature map: the layer that makes it, its channels, its stride (input / map size)."""

    layer: str | None
    channels: int | None
    stride: int | None = None


@dataclass
class Head:
    """What follows the backbone: ``kind`` classifier | detection | prediction (N channels per position)."""

    present: bool
    kind: str | None = None
    classes: int | None = None
    outputs: int | None = None
    layers: list[str] = field(default_factory=list)
    description: str = "no head: the file ends at the backbone's features"


@dataclass
class Anatomy:
    """A network's backbone end and head; ``backbone_end`` is None for a network without spatial layers."""

    backbone_end: BackboneEnd | None
    head: Head


def anatomy(model: Model) -> Anatomy:
    """The backbone's end and the head of ``model``, from the order and shapes of its weighted layers.

    Example:
        >>> anatomy(weightkit.load("full_yolo_backend.h5")).head.present
        False
    """
    weighted = [unit for unit in units(model) if "weight" in unit.tensors or "running_mean" in unit.tensors]
    if not any(unit.kind in SPATIAL_KINDS for unit in weighted):
        return Anatomy(None, Head(False, description="no spatial layers: not a convolutional backbone"))
    start = _head_start(weighted)
    backbone, head_units = weighted[:start], weighted[start:]
    last = backbone[-1]
    end = BackboneEnd(_layer_path(last), out_channels(last), _stride(model, _layer_path(last)))
    return Anatomy(end, head_of(model, head_units))


def head_of(model: Model, head_units: list[Unit]) -> Head:
    """Describe the head made of ``head_units`` (in file order)."""
    if not head_units:
        return Head(False)
    paths = list(dict.fromkeys(_layer_path(unit) for unit in head_units))
    last = head_units[-1]
    outputs = out_channels(last)
    if last.kind in _HEAD_KINDS or last.kind == "unknown":
        words = f"a classifier with {outputs} classes" if outputs and outputs > 1 else "a dense layer with one output"
        if len(paths) > 1:
            words += f" ({len(paths)} layers)"
        return Head(True, "classifier", outputs, outputs, paths, words)
    grid = _reshape_after(model, _layer_path(last))
    if grid is not None:
        anchors, per_box = grid
        return Head(True, "detection", per_box - 5, outputs, paths,
                    f"a detection convolution: {anchors} boxes × (4 + 1 + {per_box - 5} classes) per grid cell")
    layouts = detection_layouts(outputs or 0)
    if layouts:
        shown = " or ".join(f"{a}·(5+{c})" for a, c in layouts)
        return Head(True, "detection", None, outputs, paths,
                    f"a {outputs}-channel prediction convolution, a detector's layout if {shown}")
    return Head(True, "prediction", outputs, outputs, paths,
                f"a prediction convolution with {outputs} outputs per position")


def detection_layouts(channels: int) -> list[tuple[int, int]]:
    """(anchors, classes) pairs with anchors·(5 + classes) == channels, for the anchor counts detectors use."""
    return [(a, channels // a - 5) for a in _ANCHOR_COUNTS if channels % a == 0 and channels // a > 5]


def _head_start(weighted: list[Unit]) -> int:
    """Index of the first head unit: trailing dense layers (with norms between them), else a last convolution
    that turns features into outputs (see `makes_outputs`), else none (len(weighted))."""
    index = len(weighted)
    while index > 1 and (weighted[index - 1].kind in _HEAD_KINDS
                         or weighted[index - 1].kind in _NORM_KINDS and index < len(weighted)
                         and weighted[index - 2].kind in _HEAD_KINDS):
        index -= 1
    if index < len(weighted):
        return index
    return len(weighted) - 1 if makes_outputs(weighted) else len(weighted)


def makes_outputs(weighted: list[Unit]) -> bool:
    """The last unit is a convolution that turns features into outputs: it narrows them (to an image's
    3 channels, to box predictions), or has a bias where the convolutions before it have none (they
    feed norms): keras-yolo2's ``DetectionLayer`` after ``norm_22``."""
    last, before = weighted[-1], weighted[:-1]
    if last.kind not in SPATIAL_KINDS or not before:
        return False
    taken, made = in_channels(last), out_channels(last)
    if taken is not None and made is not None and made < taken:
        return True
    convs = [unit for unit in before if unit.kind in SPATIAL_KINDS]
    unbiased = bool(convs) and "bias" not in convs[-1].tensors
    return "bias" in last.tensors and (unbiased or before[-1].kind in _NORM_KINDS)


def _layer_path(unit: Unit) -> str:
    return unit.path.split(":")[0]  # a separable convolution's halves are one layer


def _keras_root(model: Model) -> ConfigLayer | None:
    if model.framework != "keras" or model.config is None:
        return None
    return architecture(model)


def _stride(model: Model, layer: str) -> int | None:
    """Input height over the height of ``layer``'s output, where the Keras graph states both."""
    root = _keras_root(model)
    if root is None:
        return None
    found = _find(root, layer.split("/"))
    if found is None:
        return None
    inner, name = found
    shapes = infer_shapes(inner)
    specs = inner.input_specs()
    inputs = specs[0].shape if specs else None
    output = shapes.get(name)
    if not inputs or not output or len(inputs) != 4 or len(output) != 4:
        return None
    first = _channels_first(inner)
    size_in, size_out = (inputs[2], output[2]) if first else (inputs[1], output[1])
    if isinstance(size_in, int) and isinstance(size_out, int) and size_out and size_in % size_out == 0:
        return size_in // size_out
    return None


def _find(root: ConfigLayer, path: list[str]) -> tuple[ConfigLayer, str] | None:
    """The (nested) model config holding the layer at ``path``, and the layer's name in it."""
    for layer in root.layers:
        if layer.name == path[0]:
            if len(path) == 1:
                return root, layer.name
            return _find(layer, path[1:]) if layer.layers else None
    return None


def _channels_first(root: ConfigLayer) -> bool:
    return any(layer.config.get("data_format") == "channels_first" for layer in root.layers)


def _reshape_after(model: Model, layer: str) -> tuple[int, int] | None:
    """(boxes, 5 + classes) of a ``Reshape(grid, grid, boxes, 5 + classes)`` right after ``layer`` (Keras graphs)."""
    root = _keras_root(model)
    found = _find(root, layer.split("/")) if root is not None else None
    if found is None:
        return None
    inner, name = found
    for other in inner.layers:
        target = other.config.get("target_shape")
        if other.class_name == "Reshape" and name in other.inbound and isinstance(target, (list, tuple)) \
                and len(target) == 4 and all(isinstance(d, int) for d in target[2:]) and target[3] > 5:
            return target[2], target[3]
    return None
