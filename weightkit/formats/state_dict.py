"""Flat tensor collections (PyTorch state_dicts, safetensors) grouped into layers.

A state_dict has no layers, only keys: ``layer1.0.conv1.weight`` is tensor
``weight`` of module ``layer1.0.conv1``. Keys are grouped by module path, roles are
the last key component, and each layer's kind is inferred from its roles and shapes.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import kinds
from ..model import Layer, Tensor

__all__ = ["layers_from_state_dict", "split_key", "TORCH_LAYOUTS"]

#: Kernel layouts PyTorch stores, by kind and tensor rank.
TORCH_LAYOUTS = {
    ("conv1d", 3): "OIW",
    ("conv2d", 4): "OIHW",
    ("conv3d", 5): "OIDHW",
    ("dense", 2): "OI",
}
_RNN_PREFIXES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def split_key(key: str) -> tuple[str, str]:
    """``layer1.0.conv1.weight`` → (``layer1.0.conv1``, ``weight``); a dotless key is its own layer."""
    module, dot, leaf = key.rpartition(".")
    return (module, leaf) if dot else (key, key)


def layers_from_state_dict(tensors: Iterable[Tensor]) -> list[Layer]:
    """Group tensors named by module path into layers, in first-seen order, with kinds and layouts.

    Each tensor's ``role`` is set to its key's last component (PyTorch already uses
    weightkit's role vocabulary), and its ``layout`` where it is a kernel.
    """
    layers: dict[str, Layer] = {}
    for tensor in tensors:
        module, leaf = split_key(tensor.name)
        layer = layers.setdefault(module, Layer(module))
        tensor.role = leaf
        if leaf in kinds.NON_TRAINABLE_ROLES:
            tensor.trainable = False
        layer.tensors[leaf] = tensor
    for layer in layers.values():
        layer.kind = _kind(layer)
        for tensor in layer.tensors.values():
            if tensor.role == "weight" and tensor.layout is None:
                tensor.layout = TORCH_LAYOUTS.get((layer.kind, tensor.ndim))
    return list(layers.values())


def _kind(layer: Layer) -> str:
    roles = layer.tensors
    if any(role.startswith(_RNN_PREFIXES) for role in roles):
        return _rnn_kind(layer)
    if "in_proj_weight" in roles:
        return "attention"
    kind = kinds.infer_kind({role: tensor.shape for role, tensor in roles.items()})
    if kind == "dense" and "bias" not in roles and "embed" in layer.name.lower():
        return "embedding"
    return kind


def _rnn_kind(layer: Layer) -> str:
    hidden = next((t for r, t in layer.tensors.items() if r.startswith("weight_hh")), None)
    if hidden is None or hidden.ndim != 2:
        return "rnn"
    ratio = hidden.shape[0] // max(hidden.shape[1], 1)
    return {4: "lstm", 3: "gru"}.get(ratio, "rnn")
