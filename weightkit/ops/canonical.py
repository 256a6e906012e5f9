"""The canonical view that lets files of different frameworks be compared.

Kernels are seen in the PyTorch/ONNX layout (``OIHW``, ``OI``), separable
convolutions as their depthwise and pointwise halves, names without the wrappers
frameworks add (``module.``, ``_orig_mod.``, ``:0``). The original tensors stay
untouched: this is a view computed on demand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..model import Layer, Model, Tensor

__all__ = ["Unit", "units", "canonical_shape", "canonical_array", "to_layout_of", "normalize_name", "in_channels",
           "out_channels", "WRAPPER_PREFIXES"]

#: Prefixes that training wrappers add to every key: DataParallel, torch.compile, Lightning, EMA copies.
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.", "ema.", "model_ema.")

# Axis permutation from each stored layout to the canonical one.
_TO_CANONICAL = {
    "HWIO": (3, 2, 0, 1),
    "WIO": (2, 1, 0),
    "DHWIO": (4, 3, 0, 1, 2),
    "IO": (1, 0),
    "HWOI": (3, 2, 0, 1),  # Keras Conv2DTranspose (h, w, out, in) → PyTorch (in, out, h, w)
    "WOI": (2, 1, 0),
}


# Counters that frameworks keep beside the weights; they carry no architecture.
_BOOKKEEPING = frozenset({"num_batches_tracked"})


@dataclass
class Unit:
    """One weight-bearing piece of a model, as comparison sees it.

    A layer is one unit, except a separable convolution, which is two (its depthwise
    and pointwise halves), as PyTorch and ONNX store it.
    """

    path: str
    layer: Layer
    kind: str
    tensors: dict[str, Tensor] = field(default_factory=dict)

    @property
    def signature(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Roles and canonical shapes: equal signatures mean interchangeable weights."""
        return tuple(sorted((role, canonical_shape(t)) for role, t in self.tensors.items()))

    @property
    def name(self) -> str:
        return normalize_name(self.path)


def units(model: Model, *, weightless: bool = False) -> list[Unit]:
    """The model's units in order: every leaf layer with tensors (and, if asked, without)."""
    found = []
    for path, layer in model.walk():
        if layer.layers and not layer.tensors:
            continue
        if not layer.tensors and not weightless:
            continue
        if layer.kind == "separable_conv2d":
            found.extend(_separable_halves(path, layer))
        else:
            tensors = {role: t for role, t in layer.tensors.items() if role not in _BOOKKEEPING}
            found.append(Unit(path, layer, layer.kind, tensors))
    return found


def _separable_halves(path: str, layer: Layer) -> list[Unit]:
    depthwise = {"weight": layer.tensors["depthwise_weight"]} if "depthwise_weight" in layer.tensors else {}
    pointwise = {role.replace("pointwise_", ""): t for role, t in layer.tensors.items() if role != "depthwise_weight"}
    return [Unit(f"{path}:depthwise", layer, "depthwise_conv2d", depthwise),
            Unit(f"{path}:pointwise", layer, "conv2d", pointwise)]


def canonical_shape(tensor: Tensor) -> tuple[int, ...]:
    """The tensor's shape in the PyTorch/ONNX layout."""
    shape = tensor.shape
    if tensor.layout == "HWCM" and len(shape) == 4:
        height, width, channels, multiplier = shape
        return (channels * multiplier, 1, height, width)
    if tensor.layout == "OIHW" or tensor.layout not in _TO_CANONICAL or len(shape) != len(_TO_CANONICAL[tensor.layout]):
        return shape
    return tuple(shape[axis] for axis in _TO_CANONICAL[tensor.layout])


def canonical_array(tensor: Tensor) -> np.ndarray:
    """The tensor's data in the PyTorch/ONNX layout (reads the data)."""
    array = tensor.read()
    if tensor.layout == "HWCM" and array.ndim == 4:
        height, width, channels, multiplier = array.shape
        return np.ascontiguousarray(array.reshape(height, width, 1, channels * multiplier).transpose(3, 2, 0, 1))
    permutation = _TO_CANONICAL.get(tensor.layout or "")
    if permutation is None or array.ndim != len(permutation):
        return array
    return np.ascontiguousarray(array.transpose(permutation))


def to_layout_of(array: np.ndarray, target: Tensor) -> np.ndarray:
    """A canonical-layout array rearranged into ``target``'s layout and shape."""
    if target.layout == "HWCM" and array.ndim == 4:
        return np.ascontiguousarray(array.transpose(2, 3, 1, 0).reshape(target.shape))
    permutation = _TO_CANONICAL.get(target.layout or "")
    if permutation is None or array.ndim != len(permutation):
        return array
    return np.ascontiguousarray(array.transpose(np.argsort(permutation)))


def normalize_name(name: str) -> str:
    """A name without what frameworks add around it: wrapper prefixes, ``:0``, Keras 1 suffixes."""
    name = name.split(":", 1)[0] if re.search(r":\d+$", name) else name
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix) and len(name) > len(prefix):
                name, changed = name[len(prefix):], True
    return name


def out_channels(unit: Unit) -> int | None:
    """How many channels (features) the unit puts out, from its kernel or norm statistics.

    A Keras depthwise kernel ``(h, w, channels, multiplier)`` puts out channels·multiplier;
    a transposed convolution's canonical kernel is ``(in, out / groups, ...)``.
    """
    tensor = unit.tensors.get("weight") or unit.tensors.get("running_mean")
    if tensor is None or not tensor.ndim:
        return None
    if tensor.layout == "HWCM" and tensor.ndim >= 3:
        return tensor.shape[-2] * tensor.shape[-1]
    shape = canonical_shape(tensor)
    if unit.kind.startswith("conv_transpose") and len(shape) >= 2:
        return shape[1] * (_groups(unit.layer) or 1)
    return shape[0]


def in_channels(unit: Unit) -> int | None:
    """How many channels the unit takes in (a norm layer takes what it puts out).

    A Keras depthwise kernel ``(h, w, channels, multiplier)`` takes ``channels``; a grouped
    (or PyTorch/ONNX depthwise) kernel ``(out, in / groups, ...)`` takes ``in / groups · groups``.
    """
    tensor = unit.tensors.get("weight")
    if tensor is None or unit.kind in ("batch_norm", "layer_norm", "norm"):
        tensor = tensor or unit.tensors.get("running_mean")
        return canonical_shape(tensor)[0] if tensor is not None and tensor.ndim else None
    if tensor.layout == "HWCM" and tensor.ndim >= 3:
        return tensor.shape[-2]
    shape = canonical_shape(tensor)
    if len(shape) < 2:
        return None
    if unit.kind.startswith("conv_transpose"):
        return shape[0]
    groups = _groups(unit.layer)
    if unit.kind == "depthwise_conv2d" and groups is None:
        return shape[0]  # (channels · multiplier, 1, h, w) of a file that does not say: a multiplier of 1
    return shape[1] * (groups or 1)


def _groups(layer: Layer) -> int | None:
    """The convolution's ``groups`` (Keras, PyTorch) or ``group`` (ONNX), where the layer's config states it."""
    config = layer.config or {}
    attributes = config.get("attributes")
    groups = config.get("groups", attributes.get("group") if isinstance(attributes, dict) else None)
    return groups if isinstance(groups, int) and groups > 0 else None
