"""ONNX external data, read only from regular files inside the model's folder.

A tensor's ``external_data`` names a file (``location``) and a byte range. The
location is untrusted and follows weightkit's one rule for files beside a model
(`weightkit.formats._paths`): a relative name without ``..`` that resolves to a
regular file with one hard link inside the model's folder (or its real Hugging Face
``blobs``). Offset and length must be plain ASCII decimal numbers that fit the file.
Files are opened by their resolved path without following symlinks and checked to
be the file that was validated, so swapping it in between does not help an attacker.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from ...errors import FileFormatError, UnsafeFileError
from .._paths import resolve_beside

__all__ = ["ExternalFile", "ExternalData", "parse_size"]

_DIGITS = 19
_SIZE = re.compile(f"[0-9]{{1,{_DIGITS}}}", re.ASCII)

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


@dataclass(frozen=True)
class ExternalFile:
    """A validated external data file: where it is, its size, and which inode it was."""

    location: str
    path: Path
    size: int
    identity: tuple[int, int]

    def open(self) -> int:
        """A read-only descriptor on the validated file (symlinks never followed)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY)
        except OSError as exc:
            raise UnsafeFileError(f"external data file {self.location!r} cannot be opened safely: {exc.strerror}",
                                  path=self.path) from None
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != self.identity or not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise UnsafeFileError(f"external data file {self.location!r} was replaced while weightkit read it",
                                  path=self.path, hint="make sure nothing else writes to the model folder")
        return fd


class ExternalData:
    """The external data files of one model, validated once each."""

    def __init__(self, model_path: Path):
        self.model_path = model_path
        self.folder = model_path.parent
        self._real_folder = Path(os.path.realpath(self.folder))
        self._files: dict[str, ExternalFile] = {}

    @property
    def files(self) -> list[ExternalFile]:
        return list(self._files.values())

    def locate(self, tensor: str, entries: dict[str, str], expected: int | None) -> tuple[ExternalFile, int, int]:
        """The file, offset and length holding ``tensor``'s bytes, checked against the file's size.

        Raises:
            UnsafeFileError: the location leaves the model folder or is not a plain file.
            FileFormatError: the file is missing, or the range does not fit in it or in the tensor.
        """
        file = self.file(entries.get("location", ""), tensor)
        offset = self._number(entries, "offset", tensor, default=0)
        length = self._number(entries, "length", tensor, default=max(file.size - offset, 0))
        if offset + length > file.size:
            raise FileFormatError(
                f"tensor {tensor!r} needs bytes {offset}..{offset + length} of external data file "
                f"{file.location!r}, which has only {file.size}", path=self.model_path,
                hint="the data file is truncated or belongs to another model")
        if expected is not None and length != expected:
            raise FileFormatError(
                f"tensor {tensor!r} has {length} bytes in external data file {file.location!r} "
                f"but its shape and type need {expected}", path=self.model_path,
                hint="the data file is truncated or belongs to another model")
        return file, offset, length

    def file(self, location: str, tensor: str) -> ExternalFile:
        """The validated file at ``location`` (cached)."""
        if location not in self._files:
            self._files[location] = self._validate(location, tensor)
        return self._files[location]

    def _validate(self, location: str, tensor: str) -> ExternalFile:
        found = resolve_beside(self.model_path, location,
                               f"external data file {location!r} of tensor {tensor!r}")
        return ExternalFile(location, found.path, found.size, found.identity)

    def _number(self, entries: dict[str, str], key: str, tensor: str, default: int) -> int:
        text = entries.get(key)
        if text is None:
            return default
        value = parse_size(text)
        if value is None:
            raise FileFormatError(f"tensor {tensor!r} has external data {key} {_shown(text)}, not a non-negative "
                                  f"integer of at most {_DIGITS} ASCII digits", path=self.model_path,
                                  hint="the file is corrupted or was written by a non-conforming tool")
        return value


def parse_size(text: str) -> int | None:
    """An external-data offset or length: ASCII decimal digits only (``int()`` also takes other scripts'
    digits and underscores) and few enough to fit 64 bits; None for anything else."""
    if not _SIZE.fullmatch(text):
        return None
    value = int(text)
    return value if value < 2**63 else None


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37]) + f"... ({len(text):,} characters)"
