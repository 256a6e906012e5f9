"""An open ONNX file: its graph parsed without its tensor bytes, and lazy readers for them.

Reading goes in two steps. `_onnx_wire.rewrite` copies the file's protobuf with
every big tensor payload (``raw_data``, or packed ``float_data``/``double_data``,
which hold the same little-endian bytes) swapped for an ONNX external-data
reference to the payload's place in the .onnx file itself; onnx then parses that
skeleton, which is small. So the skeleton is a valid ModelProto whose big tensors
are "external", in the model file or in real external data files, and a tensor's
bytes are read from disk only when `Tensor.read` asks.
"""

from __future__ import annotations

import mmap
import os
import sys
from collections.abc import Callable, Iterator
from math import prod
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ... import dtypes
from ...errors import FileFormatError, ModelClosedError, UnsafeFileError, UnsupportedError
from ...model import Tensor
from .._parsers import protobuf as wire
from .external import ExternalData, ExternalFile, parse_size

__all__ = ["OnnxSource", "Span", "ONNX_DTYPES", "ONNX_CODES", "onnx_dtype", "text", "STRIP_THRESHOLD"]

#: Payloads smaller than this stay in the skeleton; it is not worth a file read each.
STRIP_THRESHOLD = 1024

#: ONNX TensorProto.DataType codes → weightkit dtype names.
ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128",
    16: "bfloat16", 17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2", 20: "float8_e5m2fnuz",
    21: "uint4", 22: "int4", 23: "float4_e2m1fn", 24: "float8_e8m0fnu", 25: "uint2", 26: "int2",
    27: "float6_e2m3fn", 28: "float6_e3m2fn",
}
#: weightkit dtype names → ONNX codes.
ONNX_CODES = {name: code for code, name in ONNX_DTYPES.items()}
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_RAW, _FLOATS, _DOUBLES = 9, 4, 10
#: Packed typed fields that hold exactly the bytes raw_data would, by data type.
_RAW_EQUIVALENT = {_FLOATS: (1, 14), _DOUBLES: (11, 15)}
_PAYLOAD_FIELDS = (4, 5, 6, 7, 9, 10, 11)
_MAX_RANK = 64  # numpy's NPY_MAXDIMS
_NUMPY_READABLE = {"bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16",
                   "float32", "float64", "complex64", "complex128", "bfloat16", "float8_e4m3fn",
                   "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu"}


class Span(NamedTuple):
    """Where a tensor's bytes are: a validated external file (None: the .onnx file itself), offset, length."""

    file: ExternalFile | None
    offset: int
    length: int


def onnx_dtype(code: int) -> str:
    """weightkit's name for an ONNX data type code (``onnx_type_99`` for codes it does not know)."""
    return ONNX_DTYPES.get(code, f"onnx_type_{code}")


class OnnxSource:
    """One .onnx file held open: the skeleton `proto`, and readers for its tensors' bytes.

    Attributes:
        path: the .onnx file.
        proto: the parsed ModelProto; big tensors in it are external references.
        location: how those references name the .onnx file itself (its file name).
        external: the model's external data files, validated on first use.
    """

    def __init__(self, path: Path):
        self.path = path
        self.location = path.name
        self.external = ExternalData(path)
        self._self_spans: set[tuple[int, int]] = set()
        self._loaders: dict[int, Callable[[], np.ndarray]] = {}
        self._location_entry: bytes | None = None
        self._handle = open(path, "rb")  # noqa: SIM115  # the source owns it; close() closes it
        try:
            self.proto = self._parse()
        except BaseException:
            self._handle.close()
            raise

    def close(self) -> None:
        self._handle.close()

    def input_files(self) -> list[Path]:
        """The .onnx file and the external data files it has used so far."""
        return [self.path, *(file.path for file in self.external.files)]

    # -- parsing ---------------------------------------------------------------------

    def _parse(self) -> Any:
        import onnx
        from google.protobuf.message import DecodeError

        size = os.fstat(self._handle.fileno()).st_size
        with mmap.mmap(self._handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
            try:
                chunks = wire.rewrite(view, 0, size, self._strip_tensor, threshold=STRIP_THRESHOLD)
            except wire.WireError as exc:
                raise FileFormatError(f"not a readable ONNX protobuf: {exc}", path=self.path,
                                      hint="the file is truncated or corrupted; download or export it again") from None
            except UnsafeFileError as exc:  # a limit: say which file
                raise UnsafeFileError(exc.message, path=self.path, hint=exc.hint) from exc
            skeleton = view[:] if chunks is None else b"".join(bytes(c) for c in chunks)
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(skeleton)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise FileFormatError(f"not a readable ONNX protobuf: {exc}", path=self.path,
                                  hint="the file is truncated or corrupted; download or export it again") from None
        return proto

    def _strip_tensor(self, buf: Any, start: int, end: int) -> list[wire.Chunk] | None:
        """A tensor with its one big payload swapped for a reference into this file, or None to keep it."""
        found = list(wire.fields(buf, start, end))
        data_type = next((f.value for f in reversed(found) if f.number == 2 and f.wire == wire.VARINT), 0)
        payloads = [f for f in found if f.number in _PAYLOAD_FIELDS]
        if len(payloads) != 1 or any(f.number in (13, 14) for f in found):
            return None
        payload = payloads[0]
        if payload.wire != wire.LEN or payload.end - payload.value_start < STRIP_THRESHOLD:
            return None
        if payload.number != _RAW and data_type not in _RAW_EQUIVALENT.get(payload.number, ()):
            return None
        offset, length = payload.value_start, payload.end - payload.value_start
        self._self_spans.add((offset, length))
        return [buf[start:payload.start], buf[payload.end:end], self._reference(offset, length)]

    def _reference(self, offset: int, length: int) -> bytes:
        """external_data entries (location, offset, length) and data_location EXTERNAL, encoded."""
        if self._location_entry is None:
            self._location_entry = _entry(b"location", self.location.encode("utf-8", "surrogateescape"))
        return (self._location_entry + _entry(b"offset", str(offset).encode())
                + _entry(b"length", str(length).encode()) + _EXTERNAL_FIELD)

    # -- tensors ---------------------------------------------------------------------

    def tensor(self, proto: Any, name: str, **fields: Any) -> Tensor:
        """A lazily read `Tensor` for a TensorProto of the skeleton (checked, nothing read).

        Raises:
            FileFormatError: bad dims, or data that does not match the shape and type.
            UnsafeFileError: external data outside the model's folder.
        """
        shape = tuple(proto.dims)
        _check_shape(shape, name, self.path)
        dtype = onnx_dtype(proto.data_type)
        tensor = Tensor(name, shape, dtype, **fields)
        if proto.HasField("segment"):
            tensor.note = "segmented tensor (TensorProto.segment); weightkit does not read segments"
        elif dtype.startswith("onnx_type_") or proto.data_type == 0:
            tensor.note = f"ONNX data type {proto.data_type} is not one weightkit knows"
        elif proto.data_location == _EXTERNAL:
            tensor.loader = self._span_loader(self.span(proto, name), tensor, proto.data_type)
        else:
            self._check_inline(proto, tensor)
            tensor.loader = _inline_loader(proto, name, self.path)
        if tensor.loader is not None:
            self._loaders[id(tensor.loader)] = tensor.loader
        return tensor

    def is_original(self, tensor: Tensor) -> bool:
        """True when ``tensor`` still reads the data this file holds for it (its loader is ours)."""
        return tensor.loader is not None and self._loaders.get(id(tensor.loader)) is tensor.loader

    def owns(self, proto: Any, entries: dict[str, str] | None = None) -> bool:
        """True when an external tensor points into this .onnx file (a payload the reader left there)."""
        if entries is None:
            entries = _entries(proto)
        offset, length = parse_size(entries.get("offset", "")), parse_size(entries.get("length", ""))
        return entries.get("location") == self.location and (offset, length) in self._self_spans

    def span(self, proto: Any, name: str) -> Span:
        """Where an external tensor's bytes are (``file`` None: the .onnx file itself), size-checked.

        Raises:
            FileFormatError: the bytes do not fit the shape, or the external file is missing or short.
            UnsafeFileError: the external location is not a regular file inside the model's folder.
        """
        entries = _entries(proto)
        dtype = onnx_dtype(proto.data_type)
        if dtype == "string":
            raise UnsupportedError(f"string tensor {name!r} is stored as external data, which ONNX does not allow",
                                   path=self.path)
        expected = dtypes.nbytes_of(dtype, prod(proto.dims)) if dtypes.bits_of(dtype) else None
        if self.owns(proto, entries):
            offset, length = int(entries["offset"]), int(entries["length"])  # checked by `owns`
            if expected is not None and length != expected:
                raise FileFormatError(f"tensor {name!r} holds {length} bytes but its shape {list(proto.dims)} "
                                      f"and type {dtype} need {expected}", path=self.path,
                                      hint="the file is corrupted")
            return Span(None, offset, length)
        return Span(*self.external.locate(name, entries, expected))

    def read_bytes(self, where: Span) -> bytearray:
        """The raw bytes at a span."""
        buffer = bytearray(where.length)
        self._read_into(where, memoryview(buffer))
        return buffer

    def iter_bytes(self, where: Span, chunk: int = 1 << 24) -> Iterator[bytearray]:
        """The raw bytes at a span, in pieces of at most ``chunk`` bytes (for copying big tensors)."""
        for start in range(0, where.length, chunk):
            yield self.read_bytes(Span(where.file, where.offset + start, min(chunk, where.length - start)))

    def _span_loader(self, where: Span, tensor: Tensor, code: int) -> Callable[[], np.ndarray]:
        shape, dtype, name = tensor.shape, tensor.dtype, tensor.name

        def load() -> np.ndarray:
            if dtype in _NUMPY_READABLE and sys.byteorder == "little":
                array = np.empty(shape, dtype=dtypes.to_numpy(dtype))
                self._read_into(where, array.reshape(-1).view(np.uint8).data)
                return array
            return _array_from_raw(bytes(self.read_bytes(where)), shape, code, name, self.path)

        return load

    def _read_into(self, where: Span, target: memoryview) -> None:
        file, offset, length = where
        if self._handle.closed:
            raise ModelClosedError(self.path)
        fd = self._handle.fileno() if file is None else file.open()
        try:
            _pread_into(fd, target[:length], offset, file.path if file else self.path)
        finally:
            if file is not None:
                os.close(fd)

    def _check_inline(self, proto: Any, tensor: Tensor) -> None:
        """Payload counts must match the shape before anything trusts them."""
        if tensor.dtype == "string" or not dtypes.bits_of(tensor.dtype):
            return
        if proto.HasField("raw_data"):
            found, expected = len(proto.raw_data), tensor.nbytes
        else:
            values = max(len(proto.float_data), len(proto.int32_data), len(proto.int64_data),
                         len(proto.double_data), len(proto.uint64_data))
            found, expected = values, _typed_count(tensor)
        if found != expected:
            unit = "bytes" if proto.HasField("raw_data") else "values"
            raise FileFormatError(f"tensor {tensor.name!r} holds {found} {unit} "
                                  f"but its shape {list(tensor.shape)} and type {tensor.dtype} need {expected}",
                                  path=self.path, hint="the file is corrupted")


def _check_shape(shape: tuple[int, ...], name: str, path: Path) -> None:
    """Dimensions an array can have: none negative, at most 64 (numpy's most), and the non-zero ones
    multiplying to a size below 2**63 bytes (a zero beside giant dimensions holds nothing, but no
    library can make it)."""
    if len(shape) > _MAX_RANK:
        raise FileFormatError(f"tensor {name!r} has {len(shape):,} dimensions; numpy and PyTorch allow at most "
                              f"{_MAX_RANK}", path=path, hint="the file is corrupted")
    if shape and min(shape) < 0:
        raise FileFormatError(f"tensor {name!r} has a negative dimension {list(shape)}", path=path)
    if prod(dim for dim in shape if dim) * 16 >= 2**63:
        raise FileFormatError(f"tensor {name!r} has dimensions {list(shape)}: it needs more than a 64-bit size "
                              "can hold (zero dimensions aside)", path=path, hint="the file is corrupted")


def _entries(proto: Any) -> dict[str, str]:
    """A tensor's external_data as text (bytes that are not UTF-8 never match a key or name a file)."""
    return {text(entry.key): text(entry.value) for entry in proto.external_data}


def text(value: str | bytes) -> str:
    """A protobuf string field: protobuf hands back bytes when a file's string is not valid UTF-8."""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _entry(key: bytes, value: bytes) -> bytes:
    return wire.encode_len_field(13, wire.encode_len_field(1, key) + wire.encode_len_field(2, value))


_EXTERNAL_FIELD = wire.encode_tag(14, wire.VARINT) + wire.encode_varint(_EXTERNAL)


def _typed_count(tensor: Tensor) -> int:
    """How many typed-field values a tensor needs (complex: two each; 4- and 2-bit types packed)."""
    if tensor.dtype.startswith("complex"):
        return 2 * tensor.size
    bits = dtypes.bits_of(tensor.dtype)
    if bits < 8:
        return (tensor.size * bits + 7) // 8
    return tensor.size


def _inline_loader(proto: Any, name: str, path: Path) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from onnx import numpy_helper

        try:
            return numpy_helper.to_array(proto)
        except (ValueError, TypeError) as exc:
            raise FileFormatError(f"tensor {name!r} cannot be decoded: {exc}", path=path) from None

    return load


def _array_from_raw(raw: bytes, shape: tuple[int, ...], code: int, name: str, path: Path) -> np.ndarray:
    """Decode raw bytes of any ONNX type (sub-byte packing included) through onnx itself."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.TensorProto(dims=shape, data_type=code, raw_data=raw)
    try:
        return numpy_helper.to_array(proto)
    except (ValueError, TypeError) as exc:
        raise FileFormatError(f"tensor {name!r} cannot be decoded: {exc}", path=path) from None


def _pread_into(fd: int, target: memoryview, offset: int, path: Path) -> None:
    done = 0
    while done < len(target):
        if hasattr(os, "preadv"):
            count = os.preadv(fd, [target[done:]], offset + done)
        else:  # pragma: no cover - platforms without preadv
            chunk = os.pread(fd, min(len(target) - done, 1 << 30), offset + done)
            target[done:done + len(chunk)] = chunk
            count = len(chunk)
        if count == 0:
            raise FileFormatError(f"ends before byte {offset + len(target)}", path=path,
                                  hint="the file is truncated or changed since it was opened")
        done += count
