"""safetensors files: an 8-byte header length, a JSON header, then the raw tensor bytes.

The header is read and validated as strictly as the reference implementation
(huggingface/safetensors ``tensor.rs``) does, so a file weightkit accepts is one the
safetensors library loads too. Tensors are read lazily from their byte range.
The writer follows the reference writer's layout: header padded with spaces to a
multiple of 8, tensors sorted by dtype alignment (widest first), then by name.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import IO, Any

import numpy as np

from ... import dtypes
from ..._atomic import atomic_output
from ...errors import FileFormatError, ModelClosedError, UnsupportedError, UsageError
from ...model import Model, Tensor
from ...records import records
from .._parsers.json_text import load_json
from .._probe import Probe
from ..state_dict import layers_from_state_dict

__all__ = ["sniff", "read", "write", "read_header", "Header", "Entry", "DTYPES", "MAX_HEADER_SIZE",
           "unique_object"]

LABEL = "safetensors files (.safetensors)"

#: Largest header the reference implementation accepts (its MAX_HEADER_SIZE).
MAX_HEADER_SIZE = 100_000_000

#: safetensors dtype code → weightkit dtype name, narrowest alignment first (the reference's enum order).
DTYPES: dict[str, str] = {
    "BOOL": "bool", "F4": "float4_e2m1fn", "F6_E2M3": "float6_e2m3fn", "F6_E3M2": "float6_e3m2fn",
    "U8": "uint8", "I8": "int8", "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn",
    "F8_E8M0": "float8_e8m0fnu", "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "I16": "int16", "U16": "uint16", "F16": "float16", "BF16": "bfloat16",
    "I32": "int32", "U32": "uint32", "F32": "float32", "C64": "complex64",
    "F64": "float64", "I64": "int64", "U64": "uint64",
}
_CODES = {name: code for code, name in DTYPES.items()}
_ALIGNMENT_RANK = {code: rank for rank, code in enumerate(DTYPES)}
_PACKED_6BIT = ("F6_E2M3", "F6_E3M2")
_U64_LIMIT = 2**64
_INTP_LIMIT = 2**63  # numpy's largest array size in bytes, plus one
_MAX_RANK = 64  # numpy's NPY_MAXDIMS
_FRAMEWORKS = {"pt": "pytorch", "tf": "tensorflow", "flax": "flax", "mlx": "mlx", "np": "numpy",
               "numpy": "numpy", "paddle": "paddle"}
_METADATA_KEY = "__metadata__"


# --------------------------------------------------------------------------- reading


def sniff(probe: Probe) -> bool:
    """A header length of at most 100 MB followed by ``{``.

    A broken file named ``.safetensors`` is read as one only after every family declined
    it (the format's ``by_suffix``), so it gets a precise error rather than "unknown format".
    """
    length = int.from_bytes(probe.head[:8], "little") if len(probe.head) >= 8 else None
    return length is not None and length <= MAX_HEADER_SIZE and probe.head[8:9] == b"{"


def read(probe: Probe) -> Model:
    """Read a safetensors file into a `Model` of layers grouped by key path (no tensor data read)."""
    source = _Source(probe.path)
    try:
        header = read_header(source.handle, probe.size, probe.path)
        tensors = [_tensor(entry, source, header.data_start) for entry in sorted(header.entries, key=_natural)]
    except BaseException:
        source.close()
        raise
    metadata: dict[str, Any] = {}
    if header.metadata is not None:
        metadata["safetensors_metadata"] = dict(header.metadata)
    model = Model(
        layers=layers_from_state_dict(tensors),
        format="safetensors",
        framework=_FRAMEWORKS.get((header.metadata or {}).get("format", "")),
        has_graph=False,
        metadata=metadata,
        source=str(probe.path),
    )
    model.adopt(source)
    return model


@dataclass(frozen=True)
class Entry:
    """One tensor's header entry: its safetensors dtype code, shape and ``[begin, end)`` in the buffer."""

    name: str
    code: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def dtype(self) -> str:
        return DTYPES[self.code]


@dataclass
class Header:
    """A validated header: its byte length, its entries in buffer order, and ``__metadata__``."""

    size: int
    entries: list[Entry]
    metadata: dict[str, str] | None

    @property
    def data_start(self) -> int:
        """File offset where the byte buffer starts."""
        return 8 + self.size


def read_header(handle: IO[bytes], file_size: int, path: Path) -> Header:
    """Read and validate the header of an open safetensors file, without reading the buffer.

    Raises:
        FileFormatError: any rule of the format is broken (the message names the tensor and the rule).
    """
    size = _header_length(handle, file_size, path)
    text = _header_text(handle, size, path)
    document = _parse_header(text, path)
    metadata = _metadata(document.pop(_METADATA_KEY, None), path)
    entries = sorted((_entry(name, value, path) for name, value in document.items()),
                     key=lambda entry: (entry.begin, entry.end))
    end = _check_layout(entries, path)
    _check_coverage(8 + size + end, file_size, path)
    return Header(size, entries, metadata)


def _header_length(handle: IO[bytes], file_size: int, path: Path) -> int:
    if file_size < 8:
        raise FileFormatError(f"too small for a safetensors file ({file_size} bytes; the header length alone "
                              "takes 8)", path=path, hint="the file is truncated or not a safetensors file")
    handle.seek(0)
    size = struct.unpack("<Q", handle.read(8))[0]
    if size > MAX_HEADER_SIZE:
        raise FileFormatError(f"safetensors header length is {size:,} bytes; the format allows at most "
                              f"{MAX_HEADER_SIZE:,}", path=path, hint="the file is corrupted or not a safetensors file")
    if 8 + size > file_size:
        raise FileFormatError(f"safetensors header length is {size:,} bytes but only {file_size - 8:,} bytes "
                              "follow it", path=path, hint="the file is truncated; download it again")
    return size


def _header_text(handle: IO[bytes], size: int, path: Path) -> bytes:
    raw = handle.read(size)
    if len(raw) != size:
        raise FileFormatError("the safetensors header could not be read in full", path=path,
                              hint="the file is truncated or changed while being read")
    if not raw.startswith(b"{"):
        raise FileFormatError(f"safetensors header must start with '{{', found {raw[:16]!r}", path=path,
                              hint="the file is corrupted or not a safetensors file")
    return raw


def _parse_header(raw: bytes, path: Path) -> dict[str, Any]:
    """The header as JSON, within the limits (entries counted while parsing) and without duplicate keys."""
    document = load_json(raw, "the safetensors header", path, pairs=unique_object)
    if not isinstance(document, dict):
        raise FileFormatError("safetensors header is not a JSON object", path=path)
    return document


def unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object from its pairs, refusing a key given twice (``json``'s ``object_pairs_hook``)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError(f"duplicate key {_first_repeat(pairs)!r}")
    return result


def _first_repeat(pairs: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    return ""


def _metadata(value: Any, path: Path) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FileFormatError(f"__metadata__ must be a map of strings to strings, found {_json_type(value)}",
                              path=path, hint="the file was written by a non-conforming tool")
    for key, item in value.items():
        if not isinstance(item, str):
            raise FileFormatError(f"__metadata__[{key!r}] must be a string, found {_json_type(item)}", path=path,
                                  hint="safetensors metadata holds only strings")
    return value


def _entry(name: str, value: Any, path: Path) -> Entry:
    if not isinstance(value, dict):
        raise FileFormatError(f"tensor {name!r}: header entry is {_json_type(value)}, not an object with "
                              "dtype, shape and data_offsets", path=path)
    missing = [key for key in ("dtype", "shape", "data_offsets") if key not in value]
    if missing:
        raise FileFormatError(f"tensor {name!r}: header entry has no {' or '.join(missing)}", path=path)
    code = value["dtype"]
    if not isinstance(code, str) or code not in DTYPES:
        raise FileFormatError(f"tensor {name!r}: unknown dtype {code!r}", path=path,
                              hint=f"safetensors dtypes are {', '.join(DTYPES)}")
    shape = _u64_list(value["shape"], f"tensor {name!r}: shape", None, path)
    _check_rank(name, shape, path)
    offsets = _u64_list(value["data_offsets"], f"tensor {name!r}: data_offsets", 2, path)
    return Entry(name, code, tuple(shape), offsets[0], offsets[1])


def _check_rank(name: str, shape: list[int], path: Path) -> None:
    """At most 64 dimensions (numpy's and PyTorch's most), and the non-zero ones must multiply to a size
    an array can have: ``[0, 2**62, 2**62]`` holds no bytes, but no library can make it."""
    if len(shape) > _MAX_RANK:
        raise FileFormatError(f"tensor {name!r}: shape has {len(shape):,} dimensions; numpy and PyTorch allow at "
                              f"most {_MAX_RANK}", path=path, hint="the header is corrupted")
    if prod(dim for dim in shape if dim) * 16 >= _INTP_LIMIT:
        raise FileFormatError(f"tensor {name!r}: shape {_short(shape)} needs more than a 64-bit size can hold "
                              "(zero dimensions aside)", path=path, hint="the header is corrupted")


def _u64_list(value: Any, what: str, length: int | None, path: Path) -> list[int]:
    wanted = "a list of non-negative integers" if length is None else f"a list of {length} non-negative integers"
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise FileFormatError(f"{what} must be {wanted}, found {_short(value)}", path=path)
    for item in value:
        if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item < _U64_LIMIT:
            raise FileFormatError(f"{what} must be {wanted} below 2**64, found {_short(value)}", path=path)
    return value


def _check_layout(entries: list[Entry], path: Path) -> int:
    """Tensors must tile the buffer from 0 in offset order, each exactly as long as its shape needs."""
    position = 0
    previous = None
    for entry in entries:
        if entry.end < entry.begin:
            raise FileFormatError(f"tensor {entry.name!r}: data_offsets [{entry.begin}, {entry.end}] end before "
                                  "they begin", path=path, hint="the header is corrupted")
        if entry.begin != position:
            raise FileFormatError(_offset_problem(entry, previous, position), path=path,
                                  hint="the header is corrupted; tensors must be packed back to back from offset 0")
        expected = _byte_size(entry, path)
        if entry.end - entry.begin != expected:
            raise FileFormatError(f"tensor {entry.name!r}: data_offsets [{entry.begin}, {entry.end}] hold "
                                  f"{entry.end - entry.begin} bytes but {entry.code}{list(entry.shape)} needs "
                                  f"{expected}", path=path, hint="the header is corrupted")
        position, previous = entry.end, entry
    return position


def _offset_problem(entry: Entry, previous: Entry | None, position: int) -> str:
    where = f"tensor {entry.name!r}: data_offsets [{entry.begin}, {entry.end}]"
    if previous is None:
        return f"{where}: the first tensor must begin at offset 0 (a gap of {entry.begin} bytes)"
    if entry.begin < position:
        return f"{where} overlap tensor {previous.name!r} [{previous.begin}, {previous.end}]"
    return f"{where} leave a gap of {entry.begin - position} bytes after tensor {previous.name!r}"


def _byte_size(entry: Entry, path: Path) -> int:
    count = prod(entry.shape)
    bits = count * dtypes.bits_of(entry.dtype)
    if count >= _U64_LIMIT or bits >= _U64_LIMIT:
        raise FileFormatError(f"tensor {entry.name!r}: shape {list(entry.shape)} has {count:,} elements, "
                              "more than a 64-bit size can hold", path=path, hint="the header is corrupted")
    if bits % 8:
        raise FileFormatError(f"tensor {entry.name!r}: {count} elements of {entry.code} fill {bits} bits, "
                              "not a whole number of bytes", path=path)
    return bits // 8


def _check_coverage(needed: int, file_size: int, path: Path) -> None:
    if needed > file_size:
        raise FileFormatError(f"tensors need {needed:,} bytes but the file has {file_size:,}", path=path,
                              hint="the file is truncated; download it again")
    if needed < file_size:
        raise FileFormatError(f"{file_size - needed:,} unexpected bytes after the last tensor", path=path,
                              hint="the file is corrupted or has data appended")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _natural(entry: Entry) -> list[tuple[int, int, str]]:
    """Order names as people do: ``h.2`` before ``h.10`` (digit runs compared by length, then digits)."""
    key = []
    for part in re.split(r"(\d+)", entry.name):
        digits = part.lstrip("0")
        key.append((0, len(digits), digits) if part.isdigit() else (1, 0, part))
    return key


# --------------------------------------------------------------------------- tensor data


class _Source:
    """The open file tensors are read from; reads are serialised so loaders may run in threads."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.handle: io.BufferedReader = open(path, "rb")  # noqa: SIM115  # closed by close()
        except OSError as exc:
            raise FileFormatError(f"cannot read it: {exc.strerror}", path=path) from None
        self._lock = threading.Lock()

    def read_into(self, offset: int, target: np.ndarray) -> None:
        """Fill ``target``'s bytes from ``offset`` in the file."""
        view = target.reshape(-1).view(np.uint8).data
        with self._lock:
            if self.handle.closed:
                raise ModelClosedError(self.path)
            self.handle.seek(offset)
            filled = 0
            while filled < len(view):
                count = self.handle.readinto(view[filled:])
                if not count:
                    raise FileFormatError("the file became shorter while being read", path=self.path)
                filled += count

    def close(self) -> None:
        self.handle.close()


def _tensor(entry: Entry, source: _Source, data_start: int) -> Tensor:
    if entry.code in _PACKED_6BIT:
        return Tensor(entry.name, entry.shape, entry.dtype,
                      note=f"packed 6-bit {entry.code} data; weightkit does not decode it yet")
    return Tensor(entry.name, entry.shape, entry.dtype, loader=_loader(entry, source, data_start + entry.begin))


def _loader(entry: Entry, source: _Source, offset: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        if entry.code == "F4":
            packed = np.empty(entry.end - entry.begin, dtype=np.uint8)
            source.read_into(offset, packed)
            return _unpack_f4(packed).reshape(entry.shape)
        array = np.empty(entry.shape, dtype=dtypes.to_numpy(entry.dtype))
        source.read_into(offset, array)
        if sys.byteorder == "big" and array.dtype.itemsize > 1:
            array = array.byteswap()
        return array

    return load


def _unpack_f4(packed: np.ndarray) -> np.ndarray:
    """Two float4_e2m1 values per byte, the first in the low nibble (PyTorch's float4_e2m1fn_x2)."""
    nibbles = np.empty(packed.size * 2, dtype=np.uint8)
    nibbles[0::2] = packed & 0x0F
    nibbles[1::2] = packed >> 4
    return nibbles.view(dtypes.to_numpy("float4_e2m1fn"))


def _pack_f4(values: np.ndarray) -> np.ndarray:
    nibbles = values.reshape(-1).view(np.uint8) & 0x0F
    return nibbles[0::2] | (nibbles[1::2] << 4)


# --------------------------------------------------------------------------- writing


@dataclass
class _Planned:
    """One tensor as it will be written: its name, dtype code, shape and bytes."""

    name: str
    code: str
    tensor: Tensor
    nbytes: int


def write(model: Model, path: str | os.PathLike[str], *, force: bool = False,
          metadata: dict[str, str] | None = None) -> None:
    """Write every layer tensor of ``model`` to a safetensors file, one tensor in memory at a time.

    Tensors keep their names; ``__metadata__`` is ``{"format": "pt"}``, weightkit's own records (the
    backbone a head was cut from: `weightkit.records.records`), plus ``metadata``.

    Raises:
        UsageError: ``path`` exists without ``force``, or ``metadata`` is not str → str.
        UnsupportedError: a tensor has a dtype safetensors cannot store, or two tensors share a name.

    Example:
        >>> safetensors.write(weightkit.load("model.h5"), "model.safetensors", metadata={"source": "keras"})
    """
    plan = _plan(model.tensors())
    header = _header_bytes(plan, _write_metadata({**records(model), **(metadata or {})}))
    with atomic_output(path, force=force) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(struct.pack("<Q", len(header)))
            handle.write(header)
            for item in plan:
                _write_tensor(handle, item)


def _plan(tensors: list[Tensor]) -> list[_Planned]:
    seen: set[str] = set()
    plan = []
    for tensor in tensors:
        if tensor.name in seen or tensor.name == _METADATA_KEY:
            raise UnsupportedError(f"two tensors are named {tensor.name!r}; safetensors keys must be unique"
                                   if tensor.name in seen else f"a tensor is named {_METADATA_KEY!r}, which "
                                   "safetensors reserves", hint="rename the tensor before saving")
        seen.add(tensor.name)
        code = _CODES.get(tensor.dtype)
        if code is None or code in _PACKED_6BIT or tensor.loader is None:
            raise UnsupportedError(f"tensor {tensor.name!r} has dtype {tensor.dtype}, which weightkit cannot "
                                   "write to safetensors", hint=f"safetensors stores {', '.join(sorted(_CODES))}")
        if code == "F4" and tensor.size % 2:
            raise UnsupportedError(f"tensor {tensor.name!r}: an odd number of float4 values cannot be packed "
                                   "two per byte")
        plan.append(_Planned(tensor.name, code, tensor, tensor.nbytes))
    plan.sort(key=lambda item: (-_ALIGNMENT_RANK[item.code], item.name))
    return plan


def _write_metadata(extra: dict[str, str] | None) -> dict[str, str]:
    metadata = {"format": "pt"}
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise UsageError(f"safetensors metadata must map strings to strings; {key!r}: {value!r} does not",
                             hint="convert the value with str() or json.dumps()")
        metadata[key] = value
    return metadata


def _header_bytes(plan: list[_Planned], metadata: dict[str, str]) -> bytes:
    document: dict[str, Any] = {_METADATA_KEY: metadata}
    offset = 0
    for item in plan:
        document[item.name] = {"dtype": item.code, "shape": list(item.tensor.shape),
                               "data_offsets": [offset, offset + item.nbytes]}
        offset += item.nbytes
    header = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header += b" " * (-len(header) % 8)
    if len(header) > MAX_HEADER_SIZE:
        raise UnsupportedError(f"the header would take {len(header):,} bytes, more than safetensors allows",
                               hint="split the model into several files")
    return header


def _write_tensor(handle: IO[bytes], item: _Planned) -> None:
    tensor = item.tensor
    array = np.asarray(tensor.read())
    if tuple(array.shape) != tuple(tensor.shape) or dtypes.from_numpy(array.dtype) != tensor.dtype:
        raise FileFormatError(f"tensor {tensor.name!r} was declared {tensor.dtype}{list(tensor.shape)} but reads as "
                              f"{dtypes.from_numpy(array.dtype)}{list(array.shape)}",
                              hint="the source file is corrupted")
    if item.code == "F4":
        data = _pack_f4(np.ascontiguousarray(array))
    else:
        data = np.ascontiguousarray(array, dtype=_little_endian(array.dtype)).reshape(-1).view(np.uint8)
    if data.nbytes != item.nbytes:
        raise FileFormatError(f"tensor {tensor.name!r} gave {data.nbytes} bytes, {item.nbytes} expected")
    handle.write(data.data)


def _little_endian(dtype: np.dtype) -> np.dtype:
    big = dtype.byteorder == ">" or (dtype.byteorder == "=" and sys.byteorder == "big")
    return dtype.newbyteorder("<") if big and dtype.itemsize > 1 else dtype
