"""A content fingerprint of a model's weights, the same whatever format holds them.

A head cut from a backbone records the backbone's fingerprint; pairing the head
with another backbone of the same shape is then caught, although every shape fits.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..model import Model
from .canonical import canonical_array

__all__ = ["fingerprint", "recorded_backbone", "recorded", "records", "PROVENANCE_KEY", "STRIPPED_PREFIX_KEY"]

#: Metadata key under which a head file records the fingerprint of its backbone.
PROVENANCE_KEY = "weightkit.backbone_fingerprint"
#: Metadata key under which a part records the key prefix split removed (merge puts it back).
STRIPPED_PREFIX_KEY = "weightkit.stripped_prefix"
_RECORD_PREFIX = "weightkit."


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


def recorded_backbone(model: Model) -> str | None:
    """The backbone fingerprint a head file recorded, wherever its format keeps metadata."""
    return recorded(model, PROVENANCE_KEY)


def recorded(model: Model, key: str) -> str | None:
    """A ``weightkit.*`` record of ``model``, wherever its reader put the file's metadata."""
    return _find(model.metadata, key)


def records(model: Model) -> dict[str, str]:
    """The ``weightkit.*`` records every writer keeps in its format's metadata."""
    return {k: v for k, v in model.metadata.items() if k.startswith(_RECORD_PREFIX) and isinstance(v, str)}


def _tensor_digest(tensor: Any) -> bytes:
    array = canonical_array(tensor)
    digest = hashlib.sha256()
    digest.update(f"{tensor.dtype}{array.shape}".encode())
    digest.update(memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8)))  # no copy of the data
    return digest.digest()


def _find(value: Any, key: str) -> str | None:
    if isinstance(value, dict):
        if isinstance(value.get(key), str):
            return value[key]
        for inner in value.values():
            found = _find(inner, key)
            if found:
                return found
    return None
