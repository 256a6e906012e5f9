"""ONNX external data, read only from regular files inside the model's folder.

A tensor's ``external_data`` names a file (``location``) and a byte range. The
location is untrusted: it is refused when it is empty or absolute, has a ``..``
component, is itself a symlink, resolves outside the model's folder (through a
symlinked parent), is not a regular file, or has more than one hard link — the
rules of onnx's own ``resolve_external_data_location`` (``onnx/checker.cc``).
Files are opened without following symlinks and checked to be the file that was
validated, so swapping it in between does not help an attacker.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from ...errors import FileFormatError, UnsafeFileError

__all__ = ["ExternalFile", "ExternalData"]

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
        candidate = self.folder / _relative(location, tensor, self.model_path)
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            raise FileFormatError(f"tensor {tensor!r} is stored in external data file {location!r}, "
                                  "which is missing", path=self.model_path,
                                  hint="copy the data file next to the model") from None
        except OSError as exc:
            raise FileFormatError(f"external data file {location!r} cannot be read: {exc.strerror}",
                                  path=self.model_path) from None
        if stat.S_ISLNK(info.st_mode):
            raise _unsafe(location, tensor, "is a symlink", self.model_path)
        real = Path(os.path.realpath(candidate))
        if not real.is_relative_to(self._real_folder):
            raise _unsafe(location, tensor, "resolves outside the model's folder (through a symlinked folder)",
                          self.model_path)
        if not stat.S_ISREG(info.st_mode):
            raise _unsafe(location, tensor, "is not a regular file", self.model_path)
        if info.st_nlink > 1:
            raise _unsafe(location, tensor, f"has {info.st_nlink} hard links", self.model_path,
                          hint="copy it so that it is a file of its own (onnx refuses hard links too)")
        return ExternalFile(location, candidate, info.st_size, (info.st_dev, info.st_ino))

    def _number(self, entries: dict[str, str], key: str, tensor: str, default: int) -> int:
        text = entries.get(key)
        if text is None:
            return default
        if not text.strip().isdigit():
            raise FileFormatError(f"tensor {tensor!r} has external data {key} {text!r}, not a non-negative integer",
                                  path=self.model_path)
        return int(text)


def _relative(location: str, tensor: str, model_path: Path) -> PurePosixPath:
    """The location as a path below the model's folder, or a refusal."""
    if not location:
        raise _unsafe(location, tensor, "is empty", model_path)
    if "\0" in location:
        raise _unsafe(location, tensor, "contains a NUL character", model_path)
    windows = PureWindowsPath(location)
    if PurePosixPath(location).is_absolute() or windows.is_absolute() or windows.drive:
        raise _unsafe(location, tensor, "is an absolute path", model_path)
    parts = [part for part in re.split(r"[\\/]", location) if part not in ("", ".")]
    if ".." in parts:
        raise _unsafe(location, tensor, "has a '..' component", model_path)
    if not parts:
        raise _unsafe(location, tensor, "names the model's folder itself", model_path)
    return PurePosixPath(*parts)


def _unsafe(location: str, tensor: str, problem: str, model_path: Path, hint: str | None = None) -> UnsafeFileError:
    return UnsafeFileError(
        f"tensor {tensor!r} points to external data {location!r}, which {problem}; refused: external data "
        "must be a regular file inside the model's folder", path=model_path,
        hint=hint or "only open models from sources you trust, or fix the location")
