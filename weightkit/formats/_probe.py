"""What a file is, decided from its bytes: the facts every format's `sniff` looks at."""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FileFormatError
from ._parsers.zip import check_entry_count

__all__ = ["Probe", "probe"]

HEAD_SIZE = 4096


@dataclass
class Probe:
    """A file's path, size and first bytes; its zip entry names on demand."""

    path: Path
    size: int
    head: bytes
    _zip_names: list[str] | None = field(default=None, repr=False)

    @property
    def is_zip(self) -> bool:
        return self.head.startswith(b"PK\x03\x04")

    def zip_names(self) -> list[str]:
        """Entry names of a zip archive ([] for a broken or non-zip file).

        Raises:
            UnsafeFileError: the archive has more entries than ``limits.ENTRIES``.
        """
        if self._zip_names is None:
            self._zip_names = []
            if self.is_zip:
                check_entry_count(self.path)  # before zipfile builds an object per entry
                try:
                    with zipfile.ZipFile(self.path) as archive:
                        self._zip_names = archive.namelist()
                except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError):
                    pass
        return self._zip_names


def probe(path: str | os.PathLike[str]) -> Probe:
    """Check that ``path`` is a readable, non-empty regular file and read its first bytes.

    Raises:
        FileFormatError: missing, a directory, not a regular file, unreadable, or empty.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileFormatError("no such file", path=path, hint="check the path") from None
    except OSError as exc:
        raise FileFormatError(f"cannot read it: {exc.strerror}", path=path) from None
    if stat.S_ISDIR(info.st_mode):
        raise FileFormatError("is a directory, not a weight file", path=path, hint="name a file inside it")
    if not stat.S_ISREG(info.st_mode):
        raise FileFormatError("is not a regular file", path=path)
    if info.st_size == 0:
        raise FileFormatError("is empty (0 bytes)", path=path, hint="the download or copy may have failed")
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_SIZE)
    except OSError as exc:
        raise FileFormatError(f"cannot read it: {exc.strerror}", path=path) from None
    return Probe(path, info.st_size, head)
