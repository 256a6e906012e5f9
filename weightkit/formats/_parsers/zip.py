"""Reading zip members in place: stored members as seekable windows onto the file.

`.keras` archives and PyTorch checkpoints store their members uncompressed, so a
member's bytes can be read (or memory-mapped) straight from the archive without
extracting it. Deflated members are inflated in a stream that counts the bytes it
really produces and stops at `limits.inflate_allowance`; every other compression
method (bzip2, lzma, ...), which neither torch nor Keras writes, is refused, and so
are encrypted members. The number of entries is checked from the end-of-central-
directory record before Python's zipfile builds one object per entry.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, cast

from ... import limits
from ...errors import FileFormatError, UnsafeFileError

__all__ = ["open_zip", "member_offset", "open_member", "read_member", "read_member_range", "check_member",
           "check_entry_count", "inflate_refusal", "UnsupportedMember", "FileSlice"]

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_END_RECORD = struct.Struct("<4s4H2LH")  # signature, disks, entries here, entries, cd size, cd offset, comment
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")
_END_SEARCH = _END_RECORD.size + 0xFFFF  # the record sits within the last 22 bytes plus a comment of up to 64 KiB
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma", 9: "deflate64", 93: "zstandard"}
_ENCRYPTED = 0x1 | 0x40  # traditional and strong encryption flags
_CHUNK = 1 << 20
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, zlib.error, RuntimeError,
               OverflowError)


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open an archive, turning a broken zip into one clear error.

    Raises:
        UnsafeFileError: the central directory holds more entries than ``limits.ENTRIES``.
        FileFormatError: the archive is broken.
    """
    check_entry_count(path)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, OverflowError) as exc:
        raise FileFormatError(f"broken zip archive: {exc}", path=path,
                              hint="the file may be truncated; download it again") from None


def check_entry_count(path: Path) -> None:
    """Refuse an archive with more entries than ``limits.ENTRIES``, judged before zipfile reads them.

    Both the count the end record declares and the entry signatures in the central
    directory are counted, so a record that understates the count cannot hide entries.
    """
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, io.SEEK_END)
            tail_start = max(0, size - _END_SEARCH)
            handle.seek(tail_start)
            tail = handle.read()
            at = tail.rfind(b"PK\x05\x06")
            if at < 0 or at + _END_RECORD.size > len(tail):
                return  # not a zip end record: zipfile says what is wrong
            declared, cd_size = _declared_entries(handle, tail, at, tail_start + at)
            limits.ENTRIES.check(declared, "the zip archive's central directory", path=path)
            cd_end = tail_start + at
            if 0 < cd_size <= cd_end:
                handle.seek(cd_end - cd_size)
                found = handle.read(cd_size).count(b"PK\x01\x02")
                limits.ENTRIES.check(found, "the zip archive's central directory", path=path)
    except (OSError, struct.error, OverflowError, ValueError):
        return  # unreadable: zipfile reports it


def _declared_entries(handle: IO[bytes], tail: bytes, at: int, position: int) -> tuple[int, int]:
    """Entry count and central-directory size from the end record, or from its ZIP64 record when it defers."""
    fields = _END_RECORD.unpack_from(tail, at)
    entries, cd_size = fields[4], fields[5]
    locator_at = position - _ZIP64_LOCATOR.size
    if locator_at < 0:
        return entries, cd_size
    handle.seek(locator_at)
    locator = handle.read(_ZIP64_LOCATOR.size)
    if len(locator) != _ZIP64_LOCATOR.size or locator[:4] != b"PK\x06\x07":
        return entries, cd_size
    record_at = locator_at - _ZIP64_END_RECORD.size
    if record_at < 0:
        return entries, cd_size
    handle.seek(record_at)
    record = handle.read(_ZIP64_END_RECORD.size)
    if len(record) != _ZIP64_END_RECORD.size or record[:4] != b"PK\x06\x06":
        return entries, cd_size
    zip64 = _ZIP64_END_RECORD.unpack(record)
    return max(entries, zip64[7]), zip64[8]


class UnsupportedMember(UnsafeFileError):
    """A zip member weightkit refuses to decode: encrypted, or compressed by a method torch and Keras never use."""


def check_member(info: zipfile.ZipInfo, path: Path, archive_size: int | None = None) -> None:
    """Refuse a member weightkit cannot read safely: encrypted, compressed other than by deflate, or oversized.

    For a stored member the declared sizes must agree and fit in the archive's
    ``archive_size`` bytes; a deflated one may not declare more than its allowance.
    """
    name = info.filename
    if info.flag_bits & _ENCRYPTED:
        raise UnsupportedMember(f"zip member {name!r} is encrypted, which neither torch nor Keras writes; refused",
                                path=path, hint="decrypt the archive with the tool that made it")
    if info.compress_type not in _METHODS:
        method = _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
        raise UnsupportedMember(f"zip member {name!r} is compressed with {method}; weightkit reads only stored and "
                                "deflate members (what torch and Keras write)", path=path,
                                hint="re-save the file with torch.save or Keras, or re-zip it without compression")
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            raise FileFormatError(f"stored zip member {name!r} declares {info.file_size} bytes but holds "
                                  f"{info.compress_size}", path=path, hint="the file is corrupted")
        if archive_size is not None and info.header_offset + info.compress_size > archive_size:
            raise FileFormatError(f"zip member {name!r} declares {info.compress_size} bytes, past the end of the "
                                  "file", path=path, hint="the file is truncated or corrupted")
        return
    allowance = limits.inflate_allowance(info.compress_size)
    if info.file_size > allowance:
        raise _inflate_refusal(info, info.file_size, path)


def _inflate_refusal(info: zipfile.ZipInfo, amount: int, path: Path) -> UnsafeFileError:
    return inflate_refusal(info.compress_size, amount, f"zip member {info.filename!r}", path)


def inflate_refusal(stored: int, amount: int, subject: str, path: Path | None) -> UnsafeFileError:
    """The refusal for `amount` bytes decoded from `stored` bytes, naming the limit that set the allowance."""
    subject = f"{subject} ({stored:,} stored bytes, a possible bomb)"
    ratio_bound = limits.INFLATE_RATIO.value * stored
    if limits.MEMBER_BYTES.value < max(limits.INFLATE_FLOOR.value, ratio_bound):
        return limits.MEMBER_BYTES.refusal(amount, subject, path=path)
    if limits.INFLATE_FLOOR.value >= ratio_bound:
        return limits.INFLATE_FLOOR.refusal(amount, subject, path=path)
    return limits.INFLATE_RATIO.refusal(f"{amount / max(stored, 1):,.0f}", subject, path=path)


def _archive_size(archive: zipfile.ZipFile) -> int:
    fp = archive.fp
    assert fp is not None
    return fp.seek(0, io.SEEK_END)


def member_offset(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> int:
    """Byte offset in the archive file where a stored member's data starts."""
    check_member(info, path)
    fp = archive.fp
    assert fp is not None
    try:
        fp.seek(info.header_offset)
        header = fp.read(_LOCAL_HEADER.size)
    except (OSError, ValueError, OverflowError):
        header = b""
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise FileFormatError(f"zip member {info.filename!r} has a broken local header", path=path)
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
    start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    if start + info.compress_size > _archive_size(archive):
        raise FileFormatError(f"zip member {info.filename!r} runs past the end of the file", path=path,
                              hint="the file is truncated")
    return start


def _info(archive: zipfile.ZipFile, name: str, path: Path) -> zipfile.ZipInfo:
    try:
        return archive.getinfo(name)
    except KeyError:
        raise FileFormatError(f"zip archive has no member {name!r}", path=path) from None


def open_member(archive: zipfile.ZipFile, name: str, path: Path) -> IO[bytes]:
    """A seekable binary file over one member: a window for stored members, memory for deflated ones."""
    info = _info(archive, name, path)
    check_member(info, path, _archive_size(archive))
    if info.compress_type == zipfile.ZIP_STORED:
        # A FileSlice has every method of a binary file; typeshed's RawIOBase is just not an IO[bytes].
        return cast(IO[bytes], FileSlice(path, member_offset(archive, info, path), info.file_size))
    return io.BytesIO(_inflate(archive, info, path, 0, info.file_size))


def read_member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    """All the bytes of one member (stored or deflated, under the inflate allowance)."""
    info = _info(archive, name, path)
    return read_member_range(archive, info, path, 0, info.file_size)


def read_member_range(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, start: int, count: int) -> bytes:
    """``count`` bytes of a member from byte ``start``; a deflated member is inflated only as far as needed."""
    check_member(info, path, _archive_size(archive))
    if start < 0 or count < 0 or start + count > info.file_size:
        raise FileFormatError(f"zip member {info.filename!r} holds {info.file_size} bytes, not {start + count}",
                              path=path, hint="the file is corrupted")
    if info.compress_type == zipfile.ZIP_STORED:
        with FileSlice(path, member_offset(archive, info, path), info.file_size) as window:
            window.seek(start)
            data = window.read(count)
    else:
        data = _inflate(archive, info, path, start, count)
    if len(data) != count:
        raise FileFormatError(f"zip member {info.filename!r} is shorter than declared", path=path,
                              hint="the file is truncated")
    return data


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, start: int, count: int) -> bytes:
    """Bytes ``start`` to ``start + count`` of a deflated member, streamed, the real output counted."""
    allowance = limits.inflate_allowance(info.compress_size)
    produced = 0
    kept = io.BytesIO()
    try:
        with archive.open(info) as stream:
            while produced < start + count:
                chunk = stream.read(min(_CHUNK, start + count - produced))
                if not chunk:
                    break
                produced += len(chunk)
                if produced > allowance:
                    raise _inflate_refusal(info, produced, path)
                if produced > start:
                    kept.write(chunk[max(0, start - (produced - len(chunk))):])
    except _ZIP_ERRORS as exc:
        raise FileFormatError(f"cannot read zip member {info.filename!r}: {exc}", path=path,
                              hint="the file is truncated or corrupted") from exc
    return kept.getvalue()


class FileSlice(io.RawIOBase):
    """A read-only, seekable view of ``size`` bytes of a file starting at ``offset``."""

    def __init__(self, path: Path, offset: int, size: int):
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115  # the slice owns it; close() closes it
        self._offset = offset
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + position)
        return self._position

    def tell(self) -> int:
        return self._position

    # RawIOBase.readinto takes any writable buffer; this one slices it, which bytearray and
    # memoryview (all the callers pass) can do.
    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = max(0, min(len(buffer), self._size - self._position))
        if count == 0:
            return 0
        self._file.seek(self._offset + self._position)
        read = self._file.readinto(memoryview(buffer)[:count])
        self._position += read or 0
        return read or 0

    def close(self) -> None:
        self._file.close()
        super().close()
