"""Reading zip members in place: stored members as seekable windows onto the file.

`.keras` archives and PyTorch checkpoints store their members uncompressed, so a
member's bytes can be read (or memory-mapped) straight from the archive without
extracting it. Compressed members are inflated into memory, after a zip-bomb check.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, cast

from ...errors import FileFormatError, UnsafeFileError

__all__ = ["open_zip", "member_offset", "open_member", "FileSlice", "MAX_INFLATE_RATIO"]

MAX_INFLATE_RATIO = 1100
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open an archive, turning a broken zip into one clear error."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise FileFormatError(f"broken zip archive: {exc}", path=path,
                              hint="the file may be truncated; download it again") from None


def member_offset(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> int:
    """Byte offset in the archive file where a member's data starts."""
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
    archive_size = fp.seek(0, io.SEEK_END)
    if start + info.compress_size > archive_size:
        raise FileFormatError(f"zip member {info.filename!r} runs past the end of the file", path=path,
                              hint="the file is truncated")
    return start


def open_member(archive: zipfile.ZipFile, name: str, path: Path) -> IO[bytes]:
    """A seekable binary file over one member: a window for stored members, memory for others."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise FileFormatError(f"zip archive has no member {name!r}", path=path) from None
    if info.compress_type == zipfile.ZIP_STORED:
        # A FileSlice has every method of a binary file; typeshed's RawIOBase is just not an IO[bytes].
        return cast(IO[bytes], FileSlice(path, member_offset(archive, info, path), info.file_size))
    if info.file_size > max(info.compress_size, 1) * MAX_INFLATE_RATIO:
        raise UnsafeFileError(
            f"zip member {name!r} claims to inflate {info.compress_size} bytes to {info.file_size}; "
            "refused as a zip bomb", path=path)
    try:
        return io.BytesIO(archive.read(name))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, zlib.error) as exc:
        raise FileFormatError(f"cannot read zip member {name!r}: {exc}", path=path) from None


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
