"""Format families: each module here offers ``sniff(probe)`` and ``read(probe)``.

A file is matched by content, never by its extension: the first family whose
``sniff`` accepts the file's first bytes reads it. Each module also has ``LABEL``,
the files it reads in a few words, and may have ``write(model, path, force=...)``.
A new format is a new module listed in `FAMILIES` (and `WRITERS`), not new
branches elsewhere.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from ..errors import FileFormatError
from ..model import Model
from ._probe import Probe, probe

__all__ = ["FAMILIES", "WRITERS", "detect", "read", "write"]

#: Format modules in the order their sniffers run (cheap, certain signatures first).
FAMILIES = (
    "keras_h5",
    "keras_zip",
    "torch",
    "safetensors",
    "sharded",
    "onnx",
)

#: Output format name → (module, file suffixes that choose it).
WRITERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "keras-weights": ("keras_v3", (".weights.h5",)),
    "keras-h5": ("keras_h5", (".h5", ".hdf5")),
    "keras": ("keras_zip", (".keras",)),
    "safetensors": ("safetensors", (".safetensors",)),
    "torch": ("torch_write", (".pt", ".pth", ".bin", ".ckpt")),
    "onnx": ("onnx", (".onnx",)),
}


def detect(path: str | os.PathLike[str]) -> tuple[ModuleType, Probe]:
    """The format module that reads ``path``, decided by content.

    Raises:
        FileFormatError: the file is missing, empty, or in no format weightkit reads.
    """
    found = probe(path)
    for name in FAMILIES:
        module = importlib.import_module(f"{__name__}.{name}")
        if module.sniff(found):
            return module, found
    raise FileFormatError(_unknown_format(found), path=found.path, hint=f"weightkit reads {_supported()}")


def read(path: str | os.PathLike[str]) -> Model:
    """Read any supported weight file into a `Model`, without reading tensor data."""
    module, found = detect(path)
    return module.read(found)


def write(model: Model, path: str | os.PathLike[str], format: str | None = None, *, force: bool = False) -> None:
    """Write ``model`` to ``path`` in ``format`` (by default chosen from the suffix), atomically.

    Raises:
        UsageError: unknown format, a suffix that names none, or ``path`` exists without ``force``.
    """
    from ..errors import UsageError

    if format is None:
        suffix = os.fspath(path).lower()
        format = next((name for name, (_, suffixes) in WRITERS.items() if suffix.endswith(suffixes)), None)
        if format is None:
            raise UsageError(f"cannot tell the output format from {os.fspath(path)!r}",
                             hint=f"pass format= one of {', '.join(WRITERS) or 'none yet'}")
    if format not in WRITERS:
        raise UsageError(f"weightkit cannot write {format!r}", hint=f"formats it writes: {', '.join(WRITERS) or 'none yet'}")
    module = importlib.import_module(f"{__name__}.{WRITERS[format][0]}")
    module.write(model, path, force=force)


def _supported() -> str:
    return "; ".join(importlib.import_module(f"{__name__}.{name}").LABEL for name in FAMILIES)


def _unknown_format(found: Probe) -> str:
    if found.is_zip:
        names = found.zip_names()
        if not names:
            return "a zip archive that cannot be opened (truncated or corrupted)"
        return f"a zip archive, but neither a .keras model nor a checkpoint (entries: {', '.join(names[:4])})"
    head = found.head[:8]
    if head.isascii() and head.strip():
        return f"not a weight file (it starts with text {found.head[:24]!r})"
    return f"not a weight file weightkit recognises (first bytes {head.hex(' ')})"
