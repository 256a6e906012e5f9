"""The structure of an untrusted HDF5 file, walked once, bounded, before anything is read.

pyfive (a pure-Python HDF5 reader: no C library to crash) parses each object header;
this module walks every link from the root with a visited set, under the limits:
external links, soft links that loop or dangle, hard-link cycles, nesting deeper than
`limits.NESTING`, more objects than `limits.ENTRIES`, and datasets whose storage
weightkit refuses (virtual, external, unknown filters, a null dataspace) fail here,
from the object headers alone. The result is a tree of plain `Group` and `Dataset`
objects that navigating can never fail on.
"""

from __future__ import annotations

import io
import posixpath
import struct
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from ... import limits
from ...errors import FileFormatError, UnsafeFileError, UnsupportedError

__all__ = ["Group", "Dataset", "Storage", "BudgetedFile", "walk", "FILTERS"]

UNDEFINED = 0xFFFFFFFFFFFFFFFF
# The filters h5py and Keras write: deflate (gzip), shuffle, fletcher32.
FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32"}
_MAX_RANK = 32  # the HDF5 format's own bound on dataspace rank
_DATASPACE, _DATATYPE, _EXTERNAL_FILES, _LAYOUT, _FILTER_PIPELINE = 0x1, 0x3, 0x7, 0x8, 0xB


class BudgetedFile(io.RawIOBase):
    """The file as pyfive reads it: reads clamped to the file's end, their count and bytes bounded.

    A crafted B-tree or object-header continuation can make a parser read the same bytes
    without end; every read counts against `limits.ENTRIES` (calls) and
    `limits.inflate_allowance` of the file size (bytes), reset by `reset` per operation.
    """

    def __init__(self, handle: IO[bytes], path: Path):
        super().__init__()
        self._handle = handle
        self.path = path
        self.size = handle.seek(0, io.SEEK_END)
        handle.seek(0)
        self.reset()

    def reset(self) -> None:
        """Start a new budget (one walk, or the chunk index of one dataset)."""
        self._calls = 0
        self._bytes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(position, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, self.size - self._handle.tell())
        size = left if size is None or size < 0 else min(size, left)
        self._calls += 1
        self._bytes += size
        if self._calls > limits.ENTRIES.value:
            raise limits.ENTRIES.refusal(f"over {limits.ENTRIES.value:,}", "reads of HDF5 metadata", path=self.path)
        if self._bytes > limits.inflate_allowance(self.size):
            raise limits.INFLATE_RATIO.refusal(f"over {limits.INFLATE_RATIO.value:,}",
                                               "HDF5 metadata read again and again", path=self.path)
        return self._handle.read(size)

    def close(self) -> None:
        self._handle.close()
        super().close()


@dataclass
class Storage:
    """Where a dataset's bytes are: compact (in the header), contiguous, or chunked (a B-tree of chunks)."""

    kind: str  # "compact", "contiguous", "chunked"
    address: int = UNDEFINED
    size: int = 0
    data: bytes = b""
    chunk: tuple[int, ...] = ()
    filters: list[dict[str, Any]] = field(default_factory=list)
    index: list[tuple[tuple[int, ...], int, int, int]] = field(default_factory=list)  # chunks, once checked


class Dataset:
    """An HDF5 dataset's metadata: ``shape``, ``dtype``, ``attrs``, ``name``; data through `H5Source.read`."""

    def __init__(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], attrs: dict[str, Any],
                 storage: Storage):
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.attrs = attrs
        self.storage = storage

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=object))

    def __repr__(self) -> str:
        return f"<HDF5 dataset {self.name!r}: shape {self.shape}, type {self.dtype}>"


class Group:
    """An HDF5 group: a dict of its members (paths with ``/`` reach below), with ``attrs`` and ``name``."""

    def __init__(self, name: str):
        self.name = name
        self.attrs: dict[str, Any] = {}
        self.links: dict[str, Group | Dataset] = {}

    def _find(self, path: str) -> Group | Dataset | None:
        node: Group | Dataset | None = self
        for part in (p for p in path.split("/") if p and p != "."):
            node = node.links.get(part) if isinstance(node, Group) else None
        return node

    def __getitem__(self, path: str) -> Group | Dataset:
        found = self._find(path)
        if found is None:
            raise KeyError(f"{path!r} not found in group {self.name!r}")
        return found

    def get(self, path: str, default: Any = None) -> Any:
        found = self._find(path)
        return default if found is None else found

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self._find(path) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.links)

    def __len__(self) -> int:
        return len(self.links)

    def keys(self) -> list[str]:
        return list(self.links)

    def values(self) -> list[Group | Dataset]:
        return list(self.links.values())

    def items(self) -> list[tuple[str, Group | Dataset]]:
        return list(self.links.items())

    def visititems(self, func: Callable[[str, Any], Any]) -> Any:
        """Call ``func(relative_name, obj)`` on every object below, each once, breadth first (as h5py)."""
        seen = {id(self)}
        queue: deque[tuple[str, Group | Dataset]] = deque(self.links.items())
        while queue:
            name, node = queue.popleft()
            if id(node) in seen:
                continue
            seen.add(id(node))
            result = func(name, node)
            if result is not None:
                return result
            if isinstance(node, Group):
                queue.extend((f"{name}/{key}", child) for key, child in node.links.items())
        return None

    def __repr__(self) -> str:
        return f"<HDF5 group {self.name!r} ({len(self.links)} members)>"


@dataclass(frozen=True)
class _External:
    """An external link: a file and a path in it (never followed)."""

    filename: str
    target: str


def _data_objects_class() -> Any:
    """pyfive's object-header parser, with external links decoded and attribute sizes checked."""
    from pyfive.dataobjects import DataObjects, determine_data_shape

    class SafeDataObjects(DataObjects):
        @staticmethod
        def _decode_link_msg(data: bytes, offset: int) -> tuple[Any, tuple[str, Any]]:
            return _decode_link(data, offset)

        def _parse_attribute_msg(self, buffer: bytes, offset: int) -> Any:
            _check_attribute_size(buffer, offset, determine_data_shape)
            return super()._parse_attribute_msg(buffer, offset)

    return SafeDataObjects


def _decode_link(data: bytes, offset: int) -> tuple[Any, tuple[str, Any]]:
    """A link message (HDF5 spec IV.A.2.g): hard (an address), soft (a path) or external (refused later)."""
    version, flags = struct.unpack_from("<BB", data, offset)
    if version != 1:
        raise FileFormatError(f"unknown HDF5 link message version {version}")
    offset += 2
    link_type = data[offset] if flags & 0x8 else 0
    offset += 1 if flags & 0x8 else 0
    order = struct.unpack_from("<Q", data, offset)[0] if flags & 0x4 else None
    offset += 8 if flags & 0x4 else 0
    encoding = "utf-8" if flags & 0x10 and data[offset] else "ascii"
    offset += 1 if flags & 0x10 else 0
    width = 1 << (flags & 3)
    name_size = int.from_bytes(data[offset:offset + width], "little")
    offset += width
    name = data[offset:offset + name_size].decode(encoding)
    offset += name_size
    if link_type == 0:
        return order, (name, struct.unpack_from("<Q", data, offset)[0])
    length = struct.unpack_from("<H", data, offset)[0]
    value = data[offset + 2:offset + 2 + length]
    if link_type == 1:
        return order, (name, value.decode(encoding))
    if link_type == 64:
        filename, _, target = value[1:].partition(b"\0")
        return order, (name, _External(filename.decode("utf-8", "replace"),
                                       target.rstrip(b"\0").decode("utf-8", "replace")))
    raise FileFormatError(f"HDF5 link {name!r} has the unknown type {link_type}")


def _check_attribute_size(buffer: bytes, offset: int, shape_of: Callable[[bytes, int], Any]) -> None:
    """An attribute's element count must fit in the bytes of its message, before pyfive allocates it."""
    version = buffer[offset]
    name_size, type_size = struct.unpack_from("<HH", buffer, offset + 2)
    if version == 1:
        def padded(n: int) -> int:
            return (n + 7) // 8 * 8
        start = offset + 8 + padded(name_size) + padded(type_size)
    else:
        start = offset + (9 if version == 3 else 8) + name_size + type_size
    shape, _ = shape_of(buffer, start)
    if shape is not None and int(np.prod(shape, dtype=object)) > len(buffer) - offset:
        raise FileFormatError(f"an HDF5 attribute declares {int(np.prod(shape, dtype=object)):,} values "
                              f"in a message of {len(buffer) - offset} bytes")


def walk(file: BudgetedFile) -> Group:
    """The whole tree of the file, every link followed once, under the limits (see the module docstring)."""
    from pyfive.misc_low_level import SuperBlock

    superblock = SuperBlock(file, 0)
    if superblock._contents.get("base_address"):
        raise UnsupportedError("HDF5 files with a user block (a base address) are not read", path=file.path)
    return _Walk(file, _data_objects_class()).run(superblock.offset_to_dataobjects)


class _Walk:
    """One breadth-first walk: objects by address (a group reached twice is a cycle), soft links last."""

    def __init__(self, file: BudgetedFile, parser: Any):
        self.file = file
        self.parser = parser
        self.by_address: dict[int, Group | Dataset] = {}
        self.soft: list[tuple[Group, str, str]] = []
        self.count = 0
        self.root = Group("/")

    def run(self, root_address: int) -> Group:
        root = self.root
        self.by_address[root_address] = root
        queue = deque([(root, self._objects(root_address), 0)])
        while queue:
            group, objects, depth = queue.popleft()
            group.attrs = objects.get_attributes()
            for name, target in objects.iter_links():
                self.count += 1
                limits.ENTRIES.check(self.count, "HDF5 objects and links", path=self.file.path)
                if name in ("", ".", "..") or "/" in name:
                    raise FileFormatError(f"HDF5 group {group.name!r} has a link named {name!r}, which no path "
                                          "can name", path=self.file.path, hint="the file is corrupted")
                child = self._link(group, name, target, depth, queue)
                if child is not None:
                    group.links[name] = child
        for group, name, target in self.soft:
            found = self._resolve(group, name, target)
            if isinstance(found, Group):  # a second way to a group: a cycle or a shared group
                raise FileFormatError(f"HDF5 soft link {posixpath.join(group.name, name)!r} points to group "
                                      f"{found.name!r}; weightkit reads trees only (no links between groups)",
                                      path=self.file.path)
            group.links[name] = found
        return root

    def _link(self, group: Group, name: str, target: Any, depth: int, queue: deque[Any]) -> Group | Dataset | None:
        path = posixpath.join(group.name, name)
        if isinstance(target, _External):
            raise UnsafeFileError(f"HDF5 external link {path!r} points to {target.filename}:{target.target}; "
                                  "weightkit does not follow links out of the file", path=self.file.path)
        if isinstance(target, str):
            self.soft.append((group, name, target))
            return None
        known = self.by_address.get(target)
        if isinstance(known, Group):
            raise FileFormatError(f"HDF5 group {path!r} is a hard link to group {known.name!r} met before "
                                  "(a link cycle or a shared group); weightkit reads trees only", path=self.file.path)
        if known is not None:
            return known
        objects = self._objects(target)
        node: Group | Dataset
        if objects.find_msg_type(_DATASPACE):
            node = _dataset(path, objects, self.file.path)
        elif objects.msgs and objects.msgs[0]["type"] == _DATATYPE:
            raise UnsupportedError(f"HDF5 object {path!r} is a named datatype, not a group or dataset",
                                   path=self.file.path)
        else:
            limits.NESTING.check(depth + 1, f"HDF5 group {path[:200]!r}", path=self.file.path)
            node = Group(path)
            queue.append((node, objects, depth + 1))
        self.by_address[target] = node
        return node

    def _objects(self, address: int) -> Any:
        if not 0 < address < self.file.size:
            raise FileFormatError(f"an HDF5 link points to address {address}, outside the file "
                                  f"of {self.file.size} bytes", path=self.file.path, hint="the file is corrupted")
        return self.parser(self.file, address)

    def _resolve(self, group: Group, name: str, target: str) -> Group | Dataset:
        """Follow a soft link (through other soft links), refusing loops and dangling targets."""
        hops = 0
        link = f"{group.name.rstrip('/')}/{name}"
        while True:
            hops += 1
            if hops > limits.NESTING.value:
                raise FileFormatError(f"HDF5 soft link {link!r} is part of a loop of soft links",
                                      path=self.file.path)
            base = self.root if target.startswith("/") else group
            parent_path, _, last = posixpath.normpath(target).rpartition("/")
            parent = base if not parent_path.strip("/") else base._find(parent_path)
            found = parent.links.get(last) if isinstance(parent, Group) else None
            if found is not None:
                return found
            pending = next(((g, t) for g, n, t in self.soft if g is parent and n == last), None)
            if pending is None:
                raise FileFormatError(f"HDF5 soft link {link!r} points to {target!r}, which does not exist",
                                      path=self.file.path, hint="the file is corrupted or was edited by hand")
            group, target = pending


def _dataset(path: str, objects: Any, file: Path) -> Dataset:
    """A dataset's metadata, after refusing what weightkit does not read (see `_storage`)."""
    from pyfive.dataobjects import determine_data_shape

    space = objects.find_msg_type(_DATASPACE)[0]
    shape, _ = determine_data_shape(objects.msg_data, space["offset_to_message"])
    if shape is None:
        raise FileFormatError(f"dataset {path!r} has a null dataspace: no shape and no data", path=file,
                              hint="the file is corrupted or was not written by Keras")
    if len(shape) > _MAX_RANK:
        raise FileFormatError(f"dataset {path!r} has rank {len(shape)}; HDF5 allows at most {_MAX_RANK}", path=file)
    if objects.find_msg_type(_EXTERNAL_FILES):
        raise UnsafeFileError(f"dataset {path!r} keeps its data in external files; refused", path=file)
    storage = _storage(path, objects, file)
    dtype = objects.ptype.dtype
    return Dataset(path, tuple(int(d) for d in shape), np.dtype(dtype), objects.get_attributes(), storage)


def _storage(path: str, objects: Any, file: Path) -> Storage:
    """The data layout message (HDF5 spec IV.A.2.i), read by hand: virtual datasets never reach pyfive."""
    layouts = objects.find_msg_type(_LAYOUT)
    if not layouts:
        raise FileFormatError(f"dataset {path!r} has no data layout", path=file)
    data, at = objects.msg_data, layouts[0]["offset_to_message"]
    version, kind = data[at], data[at + 1]
    if version == 4 and kind == 3:
        raise UnsafeFileError(f"dataset {path!r} is a virtual dataset mapping other files; refused", path=file)
    if version not in (3, 4) or kind > 2:
        raise UnsupportedError(f"dataset {path!r} uses HDF5 layout version {version}, class {kind}, "
                               "which weightkit does not read", path=file)
    if kind == 0:
        size = struct.unpack_from("<H", data, at + 2)[0]
        return Storage("compact", size=size, data=bytes(data[at + 4:at + 4 + size]))
    if kind == 1:
        address, size = struct.unpack_from("<QQ", data, at + 2)
        return Storage("contiguous", address=address, size=size)
    if version == 4:
        raise UnsupportedError(f"dataset {path!r} uses an HDF5 1.10 chunk index (written with libver='latest'), "
                               "which weightkit does not read", path=file, hint="re-save it with h5py's defaults")
    rank = data[at + 2]
    address = struct.unpack_from("<Q", data, at + 3)[0]
    chunk = struct.unpack_from(f"<{rank}I", data, at + 11)
    return Storage("chunked", address=address, chunk=tuple(chunk[:-1]), filters=_filters(path, objects, file))


def _filters(path: str, objects: Any, file: Path) -> list[dict[str, Any]]:
    pipeline = objects.filter_pipeline or []
    for entry in pipeline:
        if entry["filter_id"] not in FILTERS:
            raise UnsupportedError(f"dataset {path!r} uses HDF5 filter {entry['filter_id']}; weightkit reads "
                                   "only the filters h5py and Keras write (gzip, shuffle, fletcher32)", path=file)
    return list(pipeline)
