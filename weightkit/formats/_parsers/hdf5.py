"""Safe, lazy access to HDF5 files: opening, attribute decoding, and reading datasets.

Keras writers disagree on how they store attributes (bytes or str, fixed or
variable length, split into chunks ``name0``, ``name1``, ...); this module reads
them all one way. It refuses external links, external storage and virtual
datasets, and checks a dataset's declared size against its stored bytes before
anything is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from ... import dtypes
from ...errors import FileFormatError, ModelClosedError, UnsafeFileError

__all__ = [
    "HDF5_SIGNATURE",
    "H5Source",
    "decode",
    "attr_text",
    "attr_json",
    "name_list",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# zlib cannot compress better than about 1032:1; anything past that is a bomb.
_MAX_COMPRESSION_RATIO = 1100


class H5Source:
    """An HDF5 file opened once, read-only, from a path or a seekable file object.

    ``opener`` returns the file object for HDF5 inside another container (a
    ``.keras`` zip); ``path`` is what errors name either way.
    """

    def __init__(self, path: Path, opener: Callable[[], IO[bytes]] | None = None):
        import h5py

        self.path = path
        self._closed = False
        self._fileobj = opener() if opener else None
        try:
            self.file = h5py.File(self._fileobj if self._fileobj else path, "r")
        except (OSError, ValueError) as exc:
            self.close()
            raise FileFormatError(f"not a readable HDF5 file: {_short(exc)}", path=path,
                                  hint="the file may be truncated or corrupted") from None
        _refuse_external_links(self.file, path)

    @property
    def closed(self) -> bool:
        """True once `close` has run (or h5py closed the file): nothing can be read any more."""
        return self._closed or not self.file.id.valid

    def read(self, dataset_path: str) -> np.ndarray:
        """Read one dataset whole, after checking it is safe to."""
        if self.closed:
            raise ModelClosedError(self.path)
        dataset = self.file[dataset_path]
        _check_storage(dataset, self.path)
        try:
            array = dataset[()]
        except (OSError, ValueError, TypeError) as exc:
            raise FileFormatError(f"cannot read dataset {dataset_path!r}: {_short(exc)}", path=self.path,
                                  hint="the file may be truncated or corrupted") from None
        if dataset.attrs.get("dtype") == "bfloat16":
            array = np.asarray(array).view(dtypes.to_numpy("bfloat16"))
        return np.asarray(array)

    def close(self) -> None:
        self._closed = True
        file = getattr(self, "file", None)
        if file is not None:
            file.close()
        if self._fileobj is not None:
            self._fileobj.close()


def decode(value: Any) -> Any:
    """An attribute value as Python text: bytes and numpy strings become str, arrays lists."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SUO":
            return [decode(item) for item in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def attr_text(obj: Any, name: str) -> str | None:
    """A string attribute, decoded; None when absent."""
    value = _attr(obj, name)
    if value is None:
        return None
    value = decode(value)
    return value if isinstance(value, str) else str(value)


def attr_json(obj: Any, name: str, path: Path) -> Any:
    """A JSON attribute (``model_config``, ``training_config``), parsed; None when absent."""
    text = attr_text(obj, name)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise FileFormatError(f"attribute {name!r} is not valid JSON ({exc})", path=path) from None


def name_list(obj: Any, name: str) -> list[str] | None:
    """A list-of-names attribute, reassembled from ``name0``, ``name1``, ... when Keras chunked it.

    Returns None when the attribute is absent. Keras stores an empty list as an
    empty float array; that reads as ``[]``.
    """
    value = _attr(obj, name)
    if value is not None:
        return _names(value)
    if _attr(obj, f"{name}0") is None:
        return None
    names: list[str] = []
    index = 0
    while (chunk := _attr(obj, f"{name}{index}")) is not None:
        names.extend(_names(chunk))
        index += 1
    return names


def _attr(obj: Any, name: str) -> Any:
    try:
        return obj.attrs[name] if name in obj.attrs else None
    except (OSError, TypeError, ValueError):
        return None


def _names(value: Any) -> list[str]:
    value = decode(value)
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)]


def _refuse_external_links(file: Any, path: Path) -> None:
    from h5py import h5l

    def find_external(name: bytes, info: Any) -> bytes | None:  # a non-None return stops the walk
        return name if info.type == h5l.TYPE_EXTERNAL else None

    try:  # the low-level walk: every link of the file, with its type, and no object opened
        found = file.id.links.visit(find_external, info=True)
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise FileFormatError(f"corrupted HDF5 structure: {_short(exc)}", path=path) from None
    if found is not None:
        name = found.decode("utf-8", "replace")
        link = file.get(name, getlink=True)
        raise UnsafeFileError(
            f"HDF5 external link {name!r} points to {link.filename}:{link.path}; "
            "weightkit does not follow links out of the file", path=path)


def _check_storage(dataset: Any, path: Path) -> None:
    if dataset.is_virtual:
        raise UnsafeFileError(f"dataset {dataset.name!r} is a virtual dataset mapping other files; refused", path=path)
    if dataset.external:
        raise UnsafeFileError(f"dataset {dataset.name!r} keeps its data in external files; refused", path=path)
    declared = dataset.size * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    limit = stored * _MAX_COMPRESSION_RATIO if dataset.compression else stored
    if declared > limit and declared > 0:
        raise FileFormatError(
            f"dataset {dataset.name!r} declares {declared} bytes but the file stores {stored}",
            path=path, hint="the file is truncated or corrupted")


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
