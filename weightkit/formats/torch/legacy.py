"""PyTorch's formats before the zip: the pre-1.6 pickle stream and the older tar archive.

Stream (``torch.save(..., _use_new_zipfile_serialization=False)``, torch 0.4-1.5):
consecutive pickles — the magic number, protocol version 1001, ``sys_info``, the
object, the sorted storage keys — then per key an int64 element count and the raw
little-endian bytes. Tar (torch 0.1): members ``storages``, ``tensors`` and
``pickle``. Both are read through a memory map: pickles are interpreted in place and
storages are located by walking their counts, never read.
"""

from __future__ import annotations

import mmap
import struct
import tarfile
from pathlib import Path
from typing import Any

from ...errors import FileFormatError, UnsafeFileError, UnsupportedError
from .._parsers.unpickler import BASE_ALLOWLIST, ClassRef, Global, Unpickler, shown
from .data import StorageFile
from .pickle import (
    NUMPY_MAX_DIMS,
    TORCH_ALLOWLIST,
    StorageKind,
    StorageRef,
    TorchTensor,
    element_size,
    storage_from_pid,
)

__all__ = ["MAGIC_NUMBER", "is_legacy", "is_tar", "read_stream", "read_tar"]

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_MAGIC_BYTES = MAGIC_NUMBER.to_bytes(10, "little")
_TAR_MEMBERS = (b"sys_info", b"pickle", b"storages", b"tensors")
_INT64 = struct.Struct("<q")
_INT32 = struct.Struct("<i")


def is_legacy(head: bytes) -> bool:
    """The stream starts with a pickle of the magic number (a LONG1 after an optional PROTO/FRAME)."""
    pickled = _MAGIC_BYTES in head[:32] and (head[:1] == b"\x80" or head[:2] == b"\x8a\x0a")
    return pickled or head.startswith(b"L%dL\n" % MAGIC_NUMBER)


def is_tar(head: bytes) -> bool:
    """A tar archive whose first member is one of the legacy checkpoint's members."""
    return len(head) >= 512 and head[257:262] == b"ustar" and head[:100].rstrip(b"\0") in _TAR_MEMBERS


def read_stream(path: Path) -> tuple[Any, StorageFile, dict[str, Any]]:
    """The object a legacy stream holds, where its storages are, and what its header says."""
    with _mapped(path) as data:
        position, sys_info = _read_header(data, path)
        refs: dict[str, StorageRef] = {}
        modules: list[str] = []
        unpickler = Unpickler(data, TORCH_ALLOWLIST, persistent_load=lambda pid: _persistent(pid, refs, modules),
                              path=path, what="the checkpoint pickle", start=position)
        root = unpickler.load()
        keys_reader = Unpickler(data, BASE_ALLOWLIST, path=path, what="the storage key list", start=unpickler.pos)
        keys = keys_reader.load()
        storages = StorageFile(path, "little")
        end = _locate_storages(data, keys_reader.pos, keys, refs, storages, path)
        _refuse_trailer(data, end, path)
    return root, storages, _stream_metadata(sys_info, modules)


def _refuse_trailer(data: mmap.mmap, end: int, path: Path) -> None:
    """torch.save writes nothing after the last storage; bytes there are hidden data, never read."""
    extra = len(data) - end
    if extra <= 0:
        return
    if data[end:end + 1] == b"\x80":
        raise UnsafeFileError(f"{extra} bytes after the last storage hold an extra pickle, which torch.save "
                              "never writes; refused", path=path, hint="the file may be malicious")
    raise FileFormatError(f"{extra} unexpected bytes follow the last storage", path=path,
                          hint="the file is corrupted, or holds more than one checkpoint")


def _mapped(path: Path) -> mmap.mmap:
    try:
        with open(path, "rb") as handle:
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"cannot map the file: {exc}", path=path) from None


def _read_header(data: mmap.mmap, path: Path) -> tuple[int, dict[str, Any]]:
    """Check the magic number and protocol version; return where the object pickle starts, and sys_info."""
    reader = Unpickler(data, BASE_ALLOWLIST, path=path, what="the magic-number pickle")
    if reader.load() != MAGIC_NUMBER:
        raise FileFormatError("not a PyTorch legacy file: wrong magic number", path=path)
    reader = Unpickler(data, BASE_ALLOWLIST, path=path, what="the protocol pickle", start=reader.pos)
    version = reader.load()
    if version != PROTOCOL_VERSION:
        raise UnsupportedError(f"legacy PyTorch protocol version {version!r} (expected {PROTOCOL_VERSION})",
                               path=path)
    reader = Unpickler(data, BASE_ALLOWLIST, path=path, what="the sys_info pickle", start=reader.pos)
    sys_info = reader.load()
    return reader.pos, sys_info if isinstance(sys_info, dict) else {}


def _persistent(pid: Any, refs: dict[str, StorageRef], modules: list[str]) -> Any:
    """A legacy persistent id: a storage (6 fields) or a pickled module's class with its source text."""
    if isinstance(pid, tuple) and len(pid) == 4 and _text(pid[0]) == "module":
        if not isinstance(pid[1], ClassRef | Global):
            raise ValueError("module persistent id does not name a class")
        modules.append(pid[1].qualname)
        return pid[1]
    if isinstance(pid, tuple) and len(pid) != 6:
        raise ValueError(f"storage reference has {len(pid)} fields, not 6")
    return storage_from_pid(pid, refs)


def _text(value: Any) -> Any:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


def _key(value: Any) -> str | None:
    """A storage or tensor key as the file wrote it (text, bytes or a small int), else None.

    Nothing else is turned into text: a container from the file could expand without bound.
    """
    value = _text(value)
    if isinstance(value, str):
        return value
    if type(value) is int and value.bit_length() <= 64:
        return str(value)
    return None


def _locate_storages(data: mmap.mmap, position: int, keys: Any, refs: dict[str, StorageRef],
                     storages: StorageFile, path: Path) -> int:
    """Walk the storages after the pickles: an int64 element count, then the bytes, per key."""
    if not isinstance(keys, list) or not all(isinstance(_text(k), str) for k in keys):
        raise FileFormatError("the storage key list is not a list of keys", path=path)
    for raw_key in keys:
        key = _text(raw_key)
        ref = refs.get(key)
        if ref is None:
            raise FileFormatError(f"storage {shown(key)!r} is listed but no tensor refers to it", path=path)
        count = _unpack(_INT64, data, position, path, f"the size of storage {shown(key)!r}")
        nbytes = count * element_size(ref.dtype)
        position += _INT64.size
        if count < 0 or position + nbytes > len(data):
            raise FileFormatError(f"storage {shown(key)!r} claims {nbytes} bytes past the end of the file", path=path,
                                  hint="the file is truncated")
        storages.runs[key] = (position, nbytes)
        position += nbytes
    return position


def _unpack(fmt: struct.Struct, data: mmap.mmap, position: int, path: Path, what: str) -> Any:
    if position + fmt.size > len(data):
        raise FileFormatError(f"the file ends before {what}", path=path, hint="the file is truncated")
    return fmt.unpack(data[position:position + fmt.size])[0]


def _stream_metadata(sys_info: dict[str, Any], modules: list[str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"writer": "torch.save (legacy format, before torch 1.6)"}
    if "little_endian" in sys_info:
        metadata["byteorder"] = "little" if sys_info.get("little_endian") is True else "big (data still little-endian)"
    sizes = sys_info.get("type_sizes")
    if isinstance(sizes, dict):
        metadata["type_sizes"] = {shown(k): v for k, v in sizes.items()
                                  if type(v) is int and v.bit_length() <= 64 and isinstance(k, str)}
    if modules:
        metadata["module_source_saved"] = len(modules)
    return metadata


# --- the tar format (torch 0.1) ------------------------------------------------------------


def read_tar(path: Path) -> tuple[Any, StorageFile, dict[str, Any]]:
    """The object a tar-format checkpoint holds, with its storages located in the file."""
    members = _tar_members(path)
    with _mapped(path) as data:
        storages = StorageFile(path, "little")
        refs = _tar_storages(data, members["storages"], storages, path)
        tensors = _tar_tensors(data, members["tensors"], refs, path)
        start, _ = members["pickle"]
        unpickler = Unpickler(data, TORCH_ALLOWLIST, persistent_load=lambda pid: _tar_persistent(pid, tensors, refs),
                              path=path, what="the pickle member", start=start)
        root = unpickler.load()
    return root, storages, {"writer": "torch.save (tar format, torch 0.1)"}


def _tar_members(path: Path) -> dict[str, tuple[int, int]]:
    try:
        with tarfile.open(path, "r:") as archive:
            found = {m.name: (m.offset_data, m.size) for m in archive.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        raise FileFormatError(f"broken tar archive: {exc}", path=path, hint="the file may be truncated") from None
    missing = [name for name in ("storages", "tensors", "pickle") if name not in found]
    if missing:
        raise FileFormatError(f"a tar archive without the checkpoint member(s) {', '.join(missing)}", path=path)
    return found


def _tar_storages(data: mmap.mmap, member: tuple[int, int], storages: StorageFile,
                  path: Path) -> dict[str, StorageRef]:
    """Member ``storages``: a count, then per storage a pickled (key, location, type) and counted bytes."""
    position, end = member[0], member[0] + member[1]
    reader = Unpickler(data, BASE_ALLOWLIST, path=path, what="the storages member", start=position)
    count = reader.load()
    position = reader.pos
    refs: dict[str, StorageRef] = {}
    for _ in range(count if isinstance(count, int) else -1):
        reader = Unpickler(data, TORCH_ALLOWLIST, path=path, what="a storage header", start=position)
        header = reader.load()
        key, location, kind = _storage_header(header, path)
        numel = _unpack(_INT64, data, reader.pos, path, f"the size of storage {shown(key)}")
        position = reader.pos + _INT64.size
        ref = StorageRef(key, kind.dtype, location, max(numel, 0))
        if numel < 0 or position + ref.nbytes > end:
            raise FileFormatError(f"storage {shown(key)} runs past the end of its tar member", path=path)
        storages.runs[key], refs[key] = (position, ref.nbytes), ref
        position += ref.nbytes
    if not isinstance(count, int):
        raise FileFormatError("the storages member does not start with a count", path=path)
    reader = Unpickler(data, BASE_ALLOWLIST, path=path, what="the storage views", start=position)
    _tar_views(reader.load(), refs, path)
    return refs


def _storage_header(header: Any, path: Path) -> tuple[str, str, StorageKind]:
    if not (isinstance(header, tuple) and len(header) == 3 and isinstance(header[2], Global)
            and isinstance(header[2].value, StorageKind)):
        raise FileFormatError("a storage header in the storages member is malformed", path=path)
    key, location = _key(header[0]), _key(header[1])
    if key is None or location is None:
        raise FileFormatError("a storage header in the storages member is malformed", path=path)
    return key, location, header[2].value


def _tar_views(views: Any, refs: dict[str, StorageRef], path: Path) -> None:
    if not isinstance(views, list):
        raise FileFormatError("the storage views list is malformed", path=path)
    for view in views:
        if not (isinstance(view, tuple) and len(view) == 4 and _key(view[1]) in refs and _key(view[0]) is not None
                and all(type(v) is int and v >= 0 for v in view[2:])):
            raise FileFormatError("a storage view is malformed", path=path)
        root, key = refs[str(_key(view[1]))], str(_key(view[0]))
        refs[key] = StorageRef(key, root.dtype, root.location, view[3], base=root, base_offset=view[2])


def _tar_tensors(data: mmap.mmap, member: tuple[int, int], refs: dict[str, StorageRef],
                 path: Path) -> dict[str, TorchTensor]:
    """Member ``tensors``: a count, then per tensor a pickled (key, storage, type), ndim, sizes, strides, offset."""
    position, end = member
    end += position
    reader = Unpickler(data, BASE_ALLOWLIST, path=path, what="the tensors member", start=position)
    count = reader.load()
    if not isinstance(count, int):
        raise FileFormatError("the tensors member does not start with a count", path=path)
    position, tensors = reader.pos, {}
    for _ in range(count):
        reader = Unpickler(data, TORCH_ALLOWLIST, path=path, what="a tensor header", start=position)
        header = reader.load()
        if not (isinstance(header, tuple) and len(header) == 3 and _key(header[1]) in refs
                and _key(header[0]) is not None):
            raise FileFormatError("a tensor header in the tensors member is malformed", path=path)
        tensor, position = _tar_tensor(data, reader.pos, end, refs[str(_key(header[1]))], path)
        tensors[str(_key(header[0]))] = tensor
    return tensors


def _tar_tensor(data: mmap.mmap, position: int, end: int, storage: StorageRef,
                path: Path) -> tuple[TorchTensor, int]:
    ndim = _unpack(_INT32, data, position, path, "a tensor's rank")
    position += 8
    if not 0 <= ndim <= NUMPY_MAX_DIMS or position + 8 * (2 * ndim + 1) > end:
        raise FileFormatError(f"a tensor header claims rank {ndim}", path=path)
    values = struct.unpack_from(f"<{2 * ndim + 1}q", data, position)
    position += 8 * (2 * ndim + 1)
    if any(v < 0 for v in values):
        raise FileFormatError("a tensor header has negative sizes, strides or offset", path=path)
    shape, stride, offset = values[:ndim], values[ndim:2 * ndim], values[-1]
    return TorchTensor(tuple(shape), storage.dtype, storage, offset, tuple(stride)), position


def _tar_persistent(pid: Any, tensors: dict[str, TorchTensor], refs: dict[str, StorageRef]) -> Any:
    if isinstance(pid, tuple) and pid and isinstance(pid[0], ClassRef | Global):
        return pid[0]
    key = _key(pid)
    if key is None:
        raise ValueError("the pickle refers to a tensor or storage by a key that is not text or a number")
    if key in tensors:
        return tensors[key]
    if key in refs:
        return refs[key]
    raise ValueError(f"the pickle refers to tensor or storage {shown(key)!r}, which the archive does not hold")
