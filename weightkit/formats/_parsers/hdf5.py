"""Safe, lazy access to untrusted HDF5 files: opening, attribute decoding, and reading datasets.

The file is parsed by pyfive, a pure-Python HDF5 reader: a crafted file can make it
raise, never crash the process or corrupt memory as libhdf5 can (issue 13). The
structure is walked once when the file opens (`hdf5_tree`: links, cycles, nesting,
storage refused from the headers alone) and tensor bytes are read by offset
(`hdf5_data`). Every failure is a `FileFormatError` or `UnsafeFileError` naming the
file. h5py is used only to write the files weightkit makes.

Keras writers disagree on how they store attributes (bytes or str, fixed or
variable length, split into chunks ``name0``, ``name1``, ...); this module reads
them all one way.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from ... import dtypes
from ...errors import FileFormatError, ModelClosedError, WeightkitError
from .hdf5_data import check_storage, read_array
from .hdf5_tree import BudgetedFile, Dataset, Group, walk
from .json_text import load_json

__all__ = [
    "HDF5_SIGNATURE",
    "H5Source",
    "Group",
    "Dataset",
    "decode",
    "attr_text",
    "attr_json",
    "name_list",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# What pyfive (pure Python, parsing bytes a file author controls) raises on a malformed file.
_PARSE_ERRORS = (ValueError, KeyError, IndexError, struct.error, TypeError, AttributeError, NotImplementedError,
                 OverflowError, UnicodeDecodeError, AssertionError, RecursionError, EOFError, OSError,
                 ZeroDivisionError, RuntimeError, MemoryError, LookupError)


class H5Source:
    """An HDF5 file opened once, read-only, from a path or a seekable file object.

    ``opener`` returns the file object for HDF5 inside another container (a
    ``.keras`` zip); ``path`` is what errors name either way. ``file`` is the root
    `Group`, walked and checked when the source opens.
    """

    def __init__(self, path: Path, opener: Callable[[], IO[bytes]] | None = None):
        self.path = path
        self._closed = False
        self._handle: BudgetedFile | None = None
        try:
            with _parsing("not a readable HDF5 file", path):
                self._handle = BudgetedFile(opener() if opener else open(path, "rb"), path)  # noqa: SIM115
                self.file: Group = walk(self._handle)
                check_storage(self._handle, self.file)
        except WeightkitError:
            self.close()
            raise

    @property
    def closed(self) -> bool:
        """True once `close` has run: nothing can be read any more."""
        return self._closed

    def read(self, dataset_path: str) -> np.ndarray:
        """Read one dataset whole, after checking its declared size against its stored bytes."""
        if self.closed or self._handle is None:
            raise ModelClosedError(self.path)
        dataset = self.file.get(dataset_path)
        if not isinstance(dataset, Dataset):
            raise FileFormatError(f"{dataset_path!r} is not a dataset", path=self.path)
        with _parsing(f"cannot read dataset {dataset_path!r}", self.path):
            array = read_array(self._handle, dataset)
        if attr_text(dataset, "dtype") == "bfloat16":
            array = array.view(dtypes.to_numpy("bfloat16"))
        return array

    def close(self) -> None:
        self._closed = True
        if self._handle is not None:
            self._handle.close()


@contextmanager
def _parsing(what: str, path: Path) -> Iterator[None]:
    """Turn what the pure-Python parser raises on a malformed file into one `FileFormatError`.

    pyfive's warnings (an attribute type it cannot decode) are silenced: that attribute reads as None.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except _parse_errors() as exc:  # evaluated only when something was raised: pyfive loads lazily
        raise FileFormatError(f"{what}: {_short(exc)}", path=path,
                              hint="the file may be truncated or corrupted") from exc


def _parse_errors() -> tuple[type[BaseException], ...]:
    from pyfive.core import InvalidHDF5File

    return (*_PARSE_ERRORS, InvalidHDF5File)


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
    """A JSON attribute (``model_config``, ``training_config``), parsed under the limits; None when absent."""
    text = attr_text(obj, name)
    if text is None:
        return None
    return load_json(text, f"attribute {name!r}", path)


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
    while (chunk := _attr(obj, f"{name}{index}")) is not None:  # bounded: one attribute per chunk
        names.extend(_names(chunk))
        index += 1
    return names


def _attr(obj: Any, name: str) -> Any:
    attrs = getattr(obj, "attrs", None)
    return attrs.get(name) if isinstance(attrs, dict) else None


def _names(value: Any) -> list[str]:
    value = decode(value)
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}"
