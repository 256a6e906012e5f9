"""A model's structure as a sequence of shape tokens, the same whatever format or framework holds it.

`identify` compares files with the architecture catalog on these tokens, and the
catalog's script makes its entries with the same function, so both sides are seen
alike. Names, dtypes, kernel layouts and biases do not enter a token: a Keras
``.h5``, a PyTorch state dict and an ONNX export of one architecture give the same
kernel tokens. Norm tokens are kept apart, since an inference export folds most
batch norms into the convolutions before them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import Model
from .canonical import canonical_shape, units

__all__ = ["Part", "signature", "KERNEL", "BATCH_NORM", "NORM"]

#: Token prefixes: a learned tensor of rank 2 or more, a batch norm's channels, another norm's channels.
KERNEL, BATCH_NORM, NORM = "k:", "bn:", "n:"

# Tables of indices and masks (a Swin or MaxViT relative-position index), not learned: files keep or drop them.
# 8-bit and narrower integers stay: they are quantized weights.
_INDEX_DTYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64", "bool"})

# Roles of an affine norm's own vectors: LayerNorm, GroupNorm, a BatchNorm without statistics.
_NORM_ROLES = frozenset({"weight", "bias"})


@dataclass(frozen=True)
class Part:
    """One token of a model's structure and the layer it comes from (a path, as `Model.walk` gives it)."""

    token: str
    path: str
    biased: bool = False  # a kernel whose layer has a bias

    @property
    def is_kernel(self) -> bool:
        return self.token.startswith(KERNEL)


def signature(model: Model) -> list[Part]:
    """The model's tokens in the file's order: ``k:64x3x7x7`` for each learned tensor of rank 2 or more (in
    the PyTorch/ONNX layout; index tables left out), ``bn:64`` for each batch norm, ``n:768`` for each other
    affine norm.

    Reads no tensor data.
    """
    parts = []
    for unit in units(model):
        tensors = unit.tensors
        if unit.kind == "batch_norm" or "running_mean" in tensors:
            channels = tensors.get("running_mean") or tensors.get("weight")
            if channels is not None and channels.ndim == 1:
                parts.append(Part(f"{BATCH_NORM}{channels.shape[0]}", unit.path))
            continue
        kernels = [t for t in tensors.values() if t.ndim >= 2 and t.size > 1 and t.dtype not in _INDEX_DTYPES]
        if not kernels:
            weight = tensors.get("weight")
            if weight is not None and weight.ndim == 1 and set(tensors) <= _NORM_ROLES and "norm" in unit.kind:
                parts.append(Part(f"{NORM}{weight.shape[0]}", unit.path))
            continue
        biased = "bias" in tensors
        for tensor in kernels:
            parts.append(Part(KERNEL + "x".join(str(d) for d in canonical_shape(tensor)), unit.path, biased))
    return parts
