"""Reading PyTorch storages lazily: where each storage's bytes are, and tensors as windows onto them.

A checkpoint's tensors are views of storages: a storage key, an element offset, a
shape and a stride. `StorageFile` knows where each storage's bytes sit in the file
(a zip member, or a run of bytes in a legacy file) and reads only the byte range a
tensor spans. `to_tensor` checks that range against the bytes really present before
anything is read, and gives the weightkit `Tensor` a loader for it.
"""

from __future__ import annotations

import math
import sys
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ... import dtypes, limits
from ...errors import FileFormatError, ModelClosedError
from ...model import Tensor
from .._parsers.zip import check_member, inflate_refusal, member_offset, read_member_range
from .pickle import StorageRef, TorchTensor, element_size

__all__ = ["StorageFile", "ZipStorages", "to_tensor", "zip_errors", "contiguous_strides"]


@contextmanager
def zip_errors(path: Path, what: str) -> Iterator[None]:
    """Turn what Python's zipfile raises on a damaged archive into one FileFormatError."""
    try:
        yield
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, zlib.error,
            OverflowError) as exc:
        raise FileFormatError(f"cannot read {what}: {exc}", path=path,
                              hint="the file is truncated or corrupted") from None


class StorageFile:
    """Storages laid out as byte runs of one file: key → (offset, size)."""

    def __init__(self, path: Path, byteorder: str = "little"):
        self.path = path
        self.byteorder = byteorder
        self.runs: dict[str, tuple[int, int]] = {}
        self._handle: Any = None
        self.closed = False

    def available(self, key: str) -> int | None:
        """Bytes present for storage ``key``, or None when the file has no such storage."""
        run = self.runs.get(key)
        return None if run is None else run[1]

    def read(self, key: str, start: int, count: int) -> np.ndarray:
        """``count`` bytes of storage ``key`` from byte ``start``, as a writable uint8 array."""
        offset, _ = self.runs[key]
        return self._read_at(offset + start, count)

    def _read_at(self, offset: int, count: int) -> np.ndarray:
        if self.closed:
            raise ModelClosedError(self.path)
        if self._handle is None:
            self._handle = open(self.path, "rb", buffering=0)  # noqa: SIM115  # kept open; close() closes it
        buffer = np.empty(count, dtype=np.uint8)
        self._handle.seek(offset)
        got = self._handle.readinto(buffer.data) if count else 0
        while got < count:
            more = self._handle.readinto(buffer.data[got:])
            if not more:
                raise FileFormatError(f"storage data ends early at byte {offset + got}", path=self.path,
                                      hint="the file is truncated")
            got += more
        return buffer

    def close(self) -> None:
        self.closed = True
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class ZipStorages(StorageFile):
    """Storages as members ``<folder>/data/<key>`` of a checkpoint zip, located when first read."""

    def __init__(self, path: Path, archive: zipfile.ZipFile, prefix: str, byteorder: str = "little"):
        super().__init__(path, byteorder)
        self._archive = archive
        self._prefix = prefix
        self._infos = {info.filename: info for info in archive.infolist() if info.filename.startswith(prefix)}
        self._archive_size = path.stat().st_size

    def available(self, key: str) -> int | None:
        """Bytes the member declares, once its method and sizes are checked against the archive."""
        info = self._infos.get(self._prefix + key)
        if info is None:
            return None
        check_member(info, self.path, self._archive_size)
        return info.file_size

    def read(self, key: str, start: int, count: int) -> np.ndarray:
        info = self._infos[self._prefix + key]
        if self.closed:
            return self._read_at(0, 0)
        with zip_errors(self.path, f"zip member {info.filename}"):
            if info.compress_type != zipfile.ZIP_STORED:
                data = read_member_range(self._archive, info, self.path, start, count)
                return np.frombuffer(bytearray(data), dtype=np.uint8)
            if key not in self.runs:
                self.runs[key] = (member_offset(self._archive, info, self.path), info.file_size)
        return super().read(key, start, count)

    def close(self) -> None:
        super().close()
        self._archive.close()


def to_tensor(name: str, record: TorchTensor, storages: StorageFile | None) -> Tensor:
    """A weightkit `Tensor` for ``record``, checked against the bytes present, read lazily.

    Raises:
        FileFormatError: the tensor's storage is missing or too small for its offset, shape and stride.
    """
    tensor = Tensor(name, tuple(record.shape), record.dtype, note=record.note)
    if record.storage is None or record.note is not None or storages is None:
        return tensor
    try:
        numpy_dtype = dtypes.to_numpy(record.dtype)
    except (KeyError, TypeError, AttributeError):
        tensor.note = f"torch dtype {record.dtype} has no numpy equivalent; its data is not read"
        return tensor
    start, count = _byte_range(name, record, storages)
    swap = storages.byteorder != sys.byteorder and numpy_dtype.itemsize > 1
    tensor.loader = _Loader(storages, _root(record.storage).key, start, count, record, numpy_dtype, swap)
    return tensor


def _root(storage: StorageRef) -> StorageRef:
    return storage.base if storage.base is not None else storage


def _byte_range(name: str, record: TorchTensor, storages: StorageFile) -> tuple[int, int]:
    """Where the tensor's bytes are in its root storage; every bound checked before any read."""
    storage = record.storage
    assert storage is not None
    size = element_size(record.dtype)
    span = 0 if 0 in record.shape else 1 + sum((d - 1) * s for d, s in zip(record.shape, record.stride))
    declared = storage.nbytes
    start = record.offset * size
    if start + span * size > declared:
        raise FileFormatError(
            f"tensor {name!r} ({record.dtype}{list(record.shape)}, offset {record.offset}, stride "
            f"{list(record.stride)}) runs past the end of its storage of {declared} bytes", path=storages.path,
            hint="the file is corrupted")
    root = _root(storage)
    if storage.base is not None:
        start += storage.base_offset * element_size(root.dtype)
        if storage.base_offset * element_size(root.dtype) + declared > root.nbytes:
            raise FileFormatError(f"storage view {storage.key!r} runs past storage {root.key!r}",
                                  path=storages.path, hint="the file is corrupted")
    _check_present(name, root, storages)
    return start, span * size


def _check_present(name: str, root: StorageRef, storages: StorageFile) -> None:
    present = storages.available(root.key)
    if present is None and root.nbytes == 0:
        return
    if present is None:
        raise FileFormatError(f"tensor {name!r} needs storage {root.key!r}, which the file does not hold",
                              path=storages.path, hint="the file is truncated or corrupted")
    if present < root.nbytes:
        raise FileFormatError(
            f"storage {root.key!r} of tensor {name!r} holds {present} bytes; the pickle declares {root.nbytes}",
            path=storages.path, hint="the file is truncated or corrupted")


class _Loader:
    """Reads one tensor: its byte range, byte-swapped if needed, viewed through its strides, copied."""

    def __init__(self, storages: StorageFile, key: str, start: int, count: int, record: TorchTensor,
                 numpy_dtype: np.dtype, swap: bool):
        self.storages, self.key, self.start, self.count = storages, key, start, count
        self.shape, self.stride = tuple(record.shape), tuple(record.stride)
        self.dtype, self.swap = numpy_dtype, swap
        self.conj, self.neg = record.conj, record.neg

    def __call__(self) -> np.ndarray:
        if math.prod(self.shape) == 0:
            return np.zeros(self.shape, dtype=self.dtype)
        raw = self.storages.read(self.key, self.start, self.count)
        if self.swap:
            unit = self.dtype.itemsize // 2 if self.dtype.kind == "c" else self.dtype.itemsize
            raw.view(f"u{unit}").byteswap(inplace=True)
        try:
            flat = raw.view(self.dtype)
        except ValueError as exc:
            raise FileFormatError(f"tensor bytes do not make {self.dtype} elements: {exc}",
                                  path=self.storages.path) from exc
        if self.conj:
            flat = np.conj(flat)
        if self.neg:
            flat = np.negative(flat)
        return _strided(flat, self.shape, self.stride, self.storages.path)


def _strided(flat: np.ndarray, shape: tuple[int, ...], stride: tuple[int, ...], path: Path) -> np.ndarray:
    """The tensor over its bytes: reshaped, copied when its elements are distinct, else a read-only view.

    A view whose elements overlap (stride 0, as ``expand`` makes) is never expanded into
    a copy; one that would stand for more bytes than its real ones may is refused.
    """
    if stride == contiguous_strides(shape) and flat.size == math.prod(shape):
        return flat.reshape(shape)
    itemsize = flat.dtype.itemsize
    logical = math.prod(shape) * itemsize
    if logical > limits.inflate_allowance(flat.nbytes):
        raise inflate_refusal(flat.nbytes, logical, f"a tensor of {len(shape)} dimensions whose elements overlap "
                              "(stride 0)", path)
    view = np.lib.stride_tricks.as_strided(flat, shape, tuple(s * itemsize for s in stride), writeable=False)
    if math.prod(shape) <= flat.size:
        return np.array(view, copy=True)
    return view


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= max(dim, 1)
    return tuple(reversed(strides))
