"""Writing a `Model` as a PyTorch state_dict checkpoint that ``torch.load(weights_only=True)`` reads.

The file is the zip format ``torch.save`` writes: ``<stem>/data.pkl`` (a protocol-2
pickle of an ``OrderedDict`` whose values are ``_rebuild_tensor_v2`` calls on
persistent storage ids), ``<stem>/byteorder``, one ``<stem>/data/<key>`` record per
tensor with its payload aligned to 64 bytes (as torch pads it, so it can be
memory-mapped), and ``<stem>/version``. The pickle is written opcode by opcode here;
tensors are read and written one at a time, so memory holds one tensor at most.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import dtypes
from ..._atomic import atomic_output
from ...errors import FileFormatError, UnsupportedError
from ...model import Model, Tensor
from ...records import records
from .data import contiguous_strides

__all__ = ["write", "state_dict_pickle", "STORAGE_TYPES", "UNTYPED_DTYPES", "RECORDS_NAME"]

#: The zip record holding weightkit's own records (the backbone a head was cut from, ...).
RECORDS_NAME = "weightkit.json"

#: weightkit dtype → torch's legacy storage class, rebuilt with ``_rebuild_tensor_v2``.
STORAGE_TYPES = {
    "float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
    "bfloat16": "BFloat16Storage", "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage",
    "int8": "CharStorage", "uint8": "ByteStorage", "bool": "BoolStorage",
    "complex64": "ComplexFloatStorage", "complex128": "ComplexDoubleStorage",
}
#: dtypes torch saves as ``UntypedStorage`` (sized in bytes) plus a dtype, rebuilt with ``_rebuild_tensor_v3``.
UNTYPED_DTYPES = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
                  "uint16", "uint32", "uint64")
ALIGNMENT = 64
_CHUNK = 64 << 20
_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass
class _Planned:
    key: str
    tensor: Tensor
    nbytes: int


def write(model: Model, path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Write every layer tensor of ``model`` as a state_dict, named by tensor name.

    Extras (optimizer state ...) are not written: the file is what ``model.state_dict()`` gives,
    plus weightkit's own records (`weightkit.records.records`) in a ``weightkit.json`` record.

    Raises:
        UsageError: ``path`` exists without ``force``, or is the model's own source.
        UnsupportedError: two tensors share a name, a dtype has no torch storage, or a tensor has no data.

    Example:
        >>> torch_write.write(weightkit.load("model.safetensors"), "model.pt")
    """
    plan = _plan(model.tensors())
    folder = _folder(Path(path))
    pickle_bytes = state_dict_pickle([(item.key, item.tensor) for item in plan])
    with atomic_output(path, force=force) as temporary:
        with open(temporary, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            _write_bytes(archive, handle, f"{folder}/data.pkl", pickle_bytes)
            _write_bytes(archive, handle, f"{folder}/byteorder", sys.byteorder.encode("ascii"))
            for item in plan:
                _write_tensor(archive, handle, f"{folder}/data/{item.key}", item)
            _write_bytes(archive, handle, f"{folder}/version", b"3\n")
            if records(model):  # torch.load reads only the records it knows; this one is weightkit's
                _write_bytes(archive, handle, f"{folder}/{RECORDS_NAME}", json.dumps(records(model)).encode())


def _plan(tensors: list[Tensor]) -> list[_Planned]:
    seen: set[str] = set()
    plan: list[_Planned] = []
    for tensor in tensors:
        if tensor.name in seen:
            raise UnsupportedError(f"two tensors are named {tensor.name!r}; state_dict keys must be unique",
                                   hint="rename one of them before saving")
        if tensor.dtype not in STORAGE_TYPES and tensor.dtype not in UNTYPED_DTYPES:
            raise UnsupportedError(f"tensor {tensor.name!r} is {tensor.dtype}, which PyTorch has no storage for",
                                   hint="convert it to a supported dtype (float32, float16, int8, ...) first")
        if tensor.loader is None:
            raise UnsupportedError(f"tensor {tensor.name!r} has no readable data ({tensor.note or tensor.dtype})")
        seen.add(tensor.name)
        plan.append(_Planned(str(len(plan)), tensor, tensor.nbytes))
    return plan


def _folder(path: Path) -> str:
    """The archive's top folder: the file name without its last suffix, as torch.save names it."""
    stem = os.path.splitext(path.name)[0]
    return stem if stem and "/" not in stem and "\\" not in stem else "archive"


# --- the pickle ---------------------------------------------------------------------------


def state_dict_pickle(entries: list[tuple[str, Tensor]]) -> bytes:
    """A protocol-2 pickle of ``OrderedDict(name → tensor)`` whose tensors are storages ``data/<key>``."""
    out = bytearray(b"\x80\x02")
    out += _global("collections", "OrderedDict") + b")R"
    for start in range(0, len(entries), 1000):
        out += b"("
        for key, tensor in entries[start:start + 1000]:
            out += _text(tensor.name) + _tensor_call(key, tensor)
        out += b"u"
    return bytes(out + b".")


def _tensor_call(key: str, tensor: Tensor) -> bytes:
    untyped = tensor.dtype in UNTYPED_DTYPES
    storage = _global("torch.storage", "UntypedStorage") if untyped else _global("torch", STORAGE_TYPES[tensor.dtype])
    numel = tensor.nbytes if untyped else tensor.size
    pid = b"(" + _text("storage") + storage + _text(key) + _text("cpu") + _int(numel) + b"tQ"
    hooks = _global("collections", "OrderedDict") + b")R"
    args = pid + _int(0) + _tuple(tensor.shape) + _tuple(contiguous_strides(tensor.shape)) + b"\x89" + hooks
    if untyped:
        return _global("torch._utils", "_rebuild_tensor_v3") + b"(" + args + _global("torch", tensor.dtype) + b"tR"
    return _global("torch._utils", "_rebuild_tensor_v2") + b"(" + args + b"tR"


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode("ascii") + b"\n" + name.encode("ascii") + b"\n"


def _text(value: str) -> bytes:
    encoded = value.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(encoded)) + encoded


def _int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    encoded = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(encoded)]) + encoded


def _tuple(values: tuple[int, ...]) -> bytes:
    body = b"".join(_int(v) for v in values)
    return {0: b")", 1: body + b"\x85", 2: body + b"\x86", 3: body + b"\x87"}.get(len(values), b"(" + body + b"t")


# --- the zip records -------------------------------------------------------------------------


def _record_info(handle: object, name: str, size: int) -> tuple[zipfile.ZipInfo, bool]:
    """A stored entry whose payload will start on a 64-byte boundary (an ``FB`` padding extra field)."""
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    zip64 = size * 1.05 > zipfile.ZIP64_LIMIT
    start = handle.tell() + 30 + len(name.encode("utf-8")) + 4 + (20 if zip64 else 0)  # type: ignore[attr-defined]
    padding = -start % ALIGNMENT
    info.extra = b"FB" + struct.pack("<H", padding) + b"Z" * padding
    return info, zip64


def _write_bytes(archive: zipfile.ZipFile, handle: object, name: str, data: bytes) -> None:
    info, zip64 = _record_info(handle, name, len(data))
    with archive.open(info, "w", force_zip64=zip64) as member:
        member.write(data)


def _write_tensor(archive: zipfile.ZipFile, handle: object, name: str, item: _Planned) -> None:
    tensor = item.tensor
    array = np.asarray(tensor.read(), dtype=dtypes.to_numpy(tensor.dtype), order="C")
    if array.shape != tuple(tensor.shape):
        raise FileFormatError(f"tensor {tensor.name!r} read as shape {array.shape}, not {tuple(tensor.shape)}")
    raw = array.reshape(-1).view(np.uint8).data
    info, zip64 = _record_info(handle, name, len(raw))
    with archive.open(info, "w", force_zip64=zip64) as member:
        for start in range(0, len(raw), _CHUNK):
            member.write(raw[start:start + _CHUNK])
