"""A content fingerprint of a model's weights, the same whatever format holds them.

A head cut from a backbone records the backbone's fingerprint (`weightkit.records`); pairing the head
with another backbone of the same shape is then caught, although every shape fits.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..model import Model
from .canonical import canonical_array

__all__ = ["fingerprint"]


def fingerprint(model: Model) -> str:
    """``sha256:...`` over every tensor's canonical data, independent of names, order and layout.

    Reads every tensor once. Two files holding the same trained weights — a Keras
    ``.h5`` and its PyTorch or ONNX export — have the same fingerprint.
    """
    digests = sorted(_tensor_digest(tensor) for tensor in model.tensors() if tensor.loader is not None)
    total = hashlib.sha256()
    for digest in digests:
        total.update(digest)
    return f"sha256:{total.hexdigest()}"


def _tensor_digest(tensor: Any) -> bytes:
    array = canonical_array(tensor)
    digest = hashlib.sha256()
    digest.update(f"{tensor.dtype}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)  # no copy of the data
    return digest.digest()
