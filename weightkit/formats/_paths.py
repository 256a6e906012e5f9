"""The one rule for files a model names beside itself (shards of an index, ONNX external data).

A name written in a file is untrusted. It is accepted only when it is a relative
path without ``..`` that, after every symlink is resolved, is a regular file with a
single hard link inside the model's own folder. The Hugging Face cache layout
(``<repo>/snapshots/<rev>/file -> ../../blobs/<hash>``) is allowed too, but only when
``blobs`` and ``snapshots`` are real folders side by side in the repository folder:
a ``blobs`` that is itself a symlink (to ``/`` or anywhere else) allows nothing.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import FileFormatError, UnsafeFileError

__all__ = ["Beside", "resolve_beside"]


@dataclass(frozen=True)
class Beside:
    """A validated file named by a model: the real path (no symlinks left), its size and its inode."""

    name: str
    path: Path
    size: int
    identity: tuple[int, int]


def resolve_beside(model_path: Path, name: str, what: str) -> Beside:
    """The file `name` (a `what`, e.g. ``"shard 'a.safetensors'"``) beside `model_path`, checked.

    Raises:
        UnsafeFileError: the name is absolute, climbs with ``..``, resolves outside the model's
            folder (or its real Hugging Face ``blobs``), is not a regular file, or has hard links.
        FileFormatError: the file does not exist or cannot be examined.
    """
    folder = Path(os.path.abspath(model_path.parent))
    candidate = folder / _relative(name, what, model_path)
    real = Path(os.path.realpath(candidate))
    try:
        info = os.stat(real)
    except FileNotFoundError:
        raise FileFormatError(f"{what} does not exist", path=model_path,
                              hint=f"download or copy it into {folder}") from None
    except OSError as exc:
        raise FileFormatError(f"{what} cannot be examined: {exc.strerror}", path=model_path) from None
    if not any(real.is_relative_to(root) for root in allowed_roots(folder)):
        raise _unsafe(f"{what} resolves to {real}, outside the model's folder", model_path,
                      "copy the file into the model's folder instead of linking to it")
    if not stat.S_ISREG(info.st_mode):
        raise _unsafe(f"{what} is not a regular file", model_path, "only plain files are read")
    if info.st_nlink > 1:
        raise _unsafe(f"{what} has {info.st_nlink} hard links (it may be a file from elsewhere)", model_path,
                      "copy it so that it is a file of its own")
    return Beside(name, real, info.st_size, (info.st_dev, info.st_ino))


def allowed_roots(folder: Path) -> list[Path]:
    """The model's real folder; in a Hugging Face cache snapshot, also the repository's real ``blobs``."""
    real = Path(os.path.realpath(folder))
    roots = [real]
    snapshots = real.parent
    if snapshots.name == "snapshots":
        blobs = snapshots.parent / "blobs"
        if not os.path.islink(blobs) and os.path.isdir(blobs) and Path(os.path.realpath(blobs)) == blobs:
            roots.append(blobs)
    return roots


def _relative(name: str, what: str, model_path: Path) -> PurePosixPath:
    """The name as a path below the model's folder, or a refusal."""
    if not name:
        raise _unsafe(f"{what} has an empty name", model_path)
    if "\0" in name:
        raise _unsafe(f"{what} has a NUL character in its name", model_path)
    windows = PureWindowsPath(name)
    if PurePosixPath(name).is_absolute() or windows.is_absolute() or windows.drive:
        raise _unsafe(f"{what} is an absolute path", model_path)
    parts = [part for part in re.split(r"[\\/]", name) if part not in ("", ".")]
    if ".." in parts:
        raise _unsafe(f"{what} climbs out of the model's folder with '..'", model_path)
    if not parts:
        raise _unsafe(f"{what} names the model's folder itself", model_path)
    return PurePosixPath(*parts)


def _unsafe(problem: str, model_path: Path, hint: str | None = None) -> UnsafeFileError:
    return UnsafeFileError(f"{problem}; refused: files a model names must be regular files inside its folder",
                           path=model_path, hint=hint or "the file may be hostile; only open models you trust")
