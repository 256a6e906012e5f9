"""A dataset's bytes from an untrusted HDF5 file, checked when the file opens and read by offset.

Contiguous data must lie inside the file and compact data inside its header; chunked
data is located through its B-tree (bounded reads), each chunk inside the file, the
dataset's declared bytes within `limits.inflate_allowance` of the bytes its chunks
store, and decoded by the filters h5py writes — deflate output measured as it is
produced, so a gzip bomb is refused before much is inflated.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ... import limits
from ...errors import FileFormatError, UnsupportedError
from .hdf5_tree import UNDEFINED, BudgetedFile, Dataset, Group

__all__ = ["check_storage", "read_array"]

_DEFLATE, _SHUFFLE, _FLETCHER32 = 1, 2, 3


def check_storage(file: BudgetedFile, root: Group) -> None:
    """Check every dataset's declared bytes against the bytes the file stores for it, before any is read."""
    datasets: list[Dataset] = []
    root.visititems(lambda _, node: datasets.append(node) if isinstance(node, Dataset) else None)
    for dataset in datasets:
        declared = _declared(dataset, file.path)
        if declared == 0:
            continue
        kind = dataset.storage.kind
        if kind == "compact":
            _check_stored(dataset, declared, len(dataset.storage.data), file.path)
        elif kind == "contiguous":
            _check_contiguous(file, dataset, declared)
        else:
            dataset.storage.index = _chunk_index(file, dataset)
            _check_chunked(file, dataset, declared)


def read_array(file: BudgetedFile, dataset: Dataset) -> np.ndarray:
    """The whole of ``dataset`` as an array (its storage was checked by `check_storage`)."""
    dtype = dataset.dtype
    # Opaque ("V") data is how Keras stores bfloat16 and float8: read raw, the caller views it.
    if dtype.kind not in "biufcV" or dtype.fields is not None:
        raise UnsupportedError(f"dataset {dataset.name!r} has HDF5 type {dtype}, not a number type",
                               path=file.path)
    declared = _declared(dataset, file.path)
    storage = dataset.storage
    if declared == 0:
        return np.zeros(dataset.shape, dtype)
    if storage.kind == "chunked":
        return _chunked(file, dataset)
    if storage.kind == "compact":
        data = storage.data
    else:
        file.seek(storage.address)
        file.reset()
        data = file.read(declared)
    _check_stored(dataset, declared, len(data), file.path)
    return np.frombuffer(data, dtype, count=dataset.size).reshape(dataset.shape).copy()


def _declared(dataset: Dataset, path: Path) -> int:
    declared = dataset.size * dataset.dtype.itemsize
    limits.MEMBER_BYTES.check(declared, f"dataset {dataset.name!r}", path=path)
    return declared


def _check_stored(dataset: Dataset, declared: int, stored: int, path: Path) -> None:
    if stored < declared:
        raise FileFormatError(f"dataset {dataset.name!r} declares {declared} bytes but the file stores {stored}",
                              path=path, hint="the file is truncated or corrupted")


def _check_contiguous(file: BudgetedFile, dataset: Dataset, declared: int) -> None:
    storage = dataset.storage
    _check_stored(dataset, declared, 0 if storage.address == UNDEFINED else storage.size, file.path)
    if storage.address + declared > file.size:
        raise FileFormatError(f"dataset {dataset.name!r} declares {declared} bytes at offset {storage.address}, "
                              f"past the end of the file of {file.size} bytes", path=file.path,
                              hint="the file is truncated or corrupted")


def _chunk_index(file: BudgetedFile, dataset: Dataset) -> list[tuple[tuple[int, ...], int, int, int]]:
    """(chunk offset, filter mask, address, stored size) of every chunk, each checked to lie in the file."""
    from pyfive.btree import BTreeV1RawDataChunks

    storage = dataset.storage
    if storage.address == UNDEFINED:
        return []
    tree = BTreeV1RawDataChunks(file, storage.address, len(storage.chunk) + 1)
    expected = int(np.prod([-(-n // c) for n, c in zip(dataset.shape, storage.chunk)], dtype=object))
    chunks: list[tuple[tuple[int, ...], int, int, int]] = []
    for node in tree.all_nodes.get(0, []):
        for key, address in zip(node["keys"], node["addresses"]):
            offset = tuple(int(o) for o in key["chunk_offset"][:-1])
            size = int(key["chunk_size"])
            fits = (address + size <= file.size and len(chunks) < expected and len(offset) == len(storage.chunk)
                    and all(o % c == 0 and o < n for o, c, n in zip(offset, storage.chunk, dataset.shape)))
            if not fits:
                raise FileFormatError(f"dataset {dataset.name!r} has a chunk index that does not fit its shape "
                                      "or the file", path=file.path, hint="the file is truncated or corrupted")
            chunks.append((offset, int(key["filter_mask"]), int(address), size))
    return chunks


def _allowance(file: BudgetedFile, dataset: Dataset) -> tuple[int, int, bool]:
    """The chunks' stored bytes (at most the file's), and how many decoded bytes they may give."""
    stored = min(sum(size for *_, size in dataset.storage.index), file.size)
    compressed = any(f["filter_id"] == _DEFLATE for f in dataset.storage.filters)
    return stored, limits.inflate_allowance(stored) if compressed else stored, compressed


def _check_chunked(file: BudgetedFile, dataset: Dataset, declared: int) -> None:
    stored, allowance, compressed = _allowance(file, dataset)
    if declared > allowance:
        _refuse(dataset, file.path, declared, stored, compressed)


def _refuse(dataset: Dataset, path: Path, amount: int, stored: int, compressed: bool) -> None:
    if compressed:
        raise limits.INFLATE_RATIO.refusal(
            f"{amount // max(stored, 1):,}", f"dataset {dataset.name!r} ({amount:,} bytes from {stored:,} stored, "
            f"at most {limits.inflate_allowance(stored):,} allowed)", path=path)
    _check_stored(dataset, amount, stored, path)


def _chunked(file: BudgetedFile, dataset: Dataset) -> np.ndarray:
    stored, allowance, compressed = _allowance(file, dataset)
    out = np.zeros(dataset.shape, dataset.dtype)  # chunks never written read as 0, h5py's default fill
    chunk_shape = dataset.storage.chunk
    chunk_bytes = int(np.prod(chunk_shape, dtype=object)) * dataset.dtype.itemsize
    decoded = 0
    for offset, mask, address, size in dataset.storage.index:
        file.seek(address)
        file.reset()
        raw = _decode(file.read(size), mask, dataset, chunk_bytes, file.path)
        decoded += len(raw)
        if decoded > allowance:
            _refuse(dataset, file.path, decoded, stored, compressed)
        block = np.frombuffer(raw, dataset.dtype).reshape(chunk_shape)
        target = tuple(slice(o, min(o + c, n)) for o, c, n in zip(offset, chunk_shape, dataset.shape))
        out[target] = block[tuple(slice(0, t.stop - t.start) for t in target)]
    return out


def _decode(data: bytes, mask: int, dataset: Dataset, chunk_bytes: int, path: Path) -> bytes:
    """Undo the filter pipeline (last filter first), never producing more than one chunk's bytes."""
    filters: list[dict[str, Any]] = dataset.storage.filters
    for index in range(len(filters) - 1, -1, -1):
        if mask & (1 << index):
            continue
        kind = filters[index]["filter_id"]
        if kind == _DEFLATE:
            data = _inflate(data, chunk_bytes, dataset, path)
        elif kind == _SHUFFLE:
            data = _unshuffle(data, dataset.dtype.itemsize)
        elif kind == _FLETCHER32:
            data = _checked_fletcher32(data, dataset, path)
    if len(data) != chunk_bytes:
        raise FileFormatError(f"a chunk of dataset {dataset.name!r} decodes to {len(data)} bytes, not {chunk_bytes}",
                              path=path, hint="the file is corrupted")
    return data


def _inflate(data: bytes, chunk_bytes: int, dataset: Dataset, path: Path) -> bytes:
    stream = zlib.decompressobj()
    try:
        out = stream.decompress(data, chunk_bytes + 1)
    except zlib.error as exc:
        raise FileFormatError(f"a chunk of dataset {dataset.name!r} is not valid deflate data ({exc})",
                              path=path, hint="the file is corrupted") from exc
    if len(out) > chunk_bytes:
        raise FileFormatError(f"a chunk of dataset {dataset.name!r} inflates past its {chunk_bytes} bytes",
                              path=path, hint="the file is corrupted or crafted")
    return out


def _checked_fletcher32(data: bytes, dataset: Dataset, path: Path) -> bytes:
    from pyfive.btree import BTreeV1RawDataChunks

    try:
        BTreeV1RawDataChunks._verify_fletcher32(data)
    except ValueError as exc:
        raise FileFormatError(f"a chunk of dataset {dataset.name!r} fails its fletcher32 checksum", path=path,
                              hint="the file is corrupted") from exc
    return data[:-4]


def _unshuffle(data: bytes, itemsize: int) -> bytes:
    """Undo HDF5's shuffle filter: byte planes back to items (a trailing remainder stays as is)."""
    count = len(data) // itemsize
    planes = np.frombuffer(data, np.uint8, count=count * itemsize).reshape(itemsize, count)
    return planes.T.tobytes() + data[count * itemsize:]
