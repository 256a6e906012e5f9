"""safetensors files: a JSON header of names, dtypes, shapes and offsets, then the raw bytes.

Every header is validated as the safetensors library does before any tensor is mapped.
"""

from __future__ import annotations

from .. import Format
from . import file

__all__ = ["FORMATS"]

FORMATS = (
    Format("safetensors", file.LABEL, (".safetensors",), file.sniff, file.read, file.write,
           writes_back=("safetensors",), by_suffix=True),
)
