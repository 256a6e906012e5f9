"""weightkit's own records in a file's metadata: which backbone a head was cut from, which key
prefix a split removed, and for a file `check --fix` wrote, that weightkit wrote it, from which
checkpoint and in which model's layout. Every writer keeps them in its format's metadata;
`merge` and `check` read them.
"""

from __future__ import annotations

from typing import Any

from .model import Model

__all__ = ["PROVENANCE_KEY", "STRIPPED_PREFIX_KEY", "WRITER_KEY", "FIXED_FROM_KEY", "LAYOUT_OF_KEY", "records",
           "recorded", "recorded_backbone"]

#: Metadata key under which a head file records the fingerprint of its backbone.
PROVENANCE_KEY = "weightkit.backbone_fingerprint"
#: Metadata key under which a part records the key prefix split removed (merge puts it back).
STRIPPED_PREFIX_KEY = "weightkit.stripped_prefix"
#: Metadata key naming weightkit as the writer of a file whose layout imitates a framework's (``weightkit 0.1.0``).
WRITER_KEY = "weightkit.writer"
#: Metadata key naming the checkpoint whose weights a `check --fix` file holds.
FIXED_FROM_KEY = "weightkit.fixed_from"
#: Metadata key naming the model whose layout a `check --fix` file is in (``top.keras (keras-zip, Keras 3.15.1)``).
LAYOUT_OF_KEY = "weightkit.layout_of"
_RECORD_PREFIX = "weightkit."


def records(model: Model) -> dict[str, str]:
    """The ``weightkit.*`` records every writer keeps in its format's metadata."""
    return {k: v for k, v in model.metadata.items() if k.startswith(_RECORD_PREFIX) and isinstance(v, str)}


def recorded(model: Model, key: str) -> str | None:
    """A ``weightkit.*`` record of ``model``, wherever its reader put the file's metadata."""
    return _find(model.metadata, key)


def recorded_backbone(model: Model) -> str | None:
    """The backbone fingerprint a head file recorded, wherever its format keeps metadata."""
    return recorded(model, PROVENANCE_KEY)


def _find(value: Any, key: str) -> str | None:
    if isinstance(value, dict):
        if isinstance(value.get(key), str):
            return value[key]
        for inner in value.values():
            found = _find(inner, key)
            if found:
                return found
    return None
