"""Writing outputs safely: whole or not at all, never over an input, never over a file that appeared meanwhile.

On Linux the data goes to an unnamed file in the target's folder (``O_TMPFILE``), which vanishes
if the process dies however it dies (SIGKILL included), and gets its name only once complete.
Where the file system or the writer cannot do that (h5py resolves the path it is given), a hidden
``.NAME.XXXX.partial`` beside the target stands in. Without ``force`` the name is given with a
primitive that fails when the target exists (a hard link), so a file created at the target while
weightkit was writing is kept and the write refused; with ``force`` it is replaced.
"""

from __future__ import annotations

import contextvars
import errno
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UsageError

__all__ = ["atomic_output", "protecting", "check_not_an_input", "is_same_file"]

# Files the writes under way must not replace: what the models being written were read from.
_protected: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar("weightkit_protected", default=())
# O_TMPFILE where the platform has it (Linux); 0 elsewhere.
_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)


@contextmanager
def protecting(paths: Iterable[str | os.PathLike[str]]) -> Iterator[None]:
    """Within the block, every `atomic_output` refuses to replace any of ``paths`` (a model's input files)."""
    token = _protected.set((*_protected.get(), *(Path(p) for p in paths)))
    try:
        yield
    finally:
        _protected.reset(token)


def is_same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Are ``a`` and ``b`` one file on disk (symlinks, hard links, ``./A`` and ``A`` alike)? False if one is absent."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_not_an_input(target: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None]) -> None:
    """Refuse ``target`` when it is one of ``inputs`` (or of the files being protected), whatever ``force`` says.

    Raises:
        UsageError: ``target`` is the same file as an input.
    """
    for source in (*inputs, *_protected.get()):
        if source is not None and is_same_file(target, source):
            shown = "" if os.fspath(source) == os.fspath(target) else f" (it is {os.fspath(source)})"
            raise UsageError(f"{os.fspath(target)} is an input{shown}; weightkit never overwrites its inputs",
                             hint="choose another output path")


@contextmanager
def atomic_output(path: str | os.PathLike[str], *, force: bool = False,
                  inputs: tuple[str | os.PathLike[str] | None, ...] = (), named: bool = False) -> Iterator[Path]:
    """Yield a temporary path for the output; it becomes ``path`` only if the block succeeds.

    The temporary is an unnamed file (``/proc/self/fd/N``) where the platform allows, else (or with
    ``named``, for writers that need a real name, such as h5py) a hidden file beside ``path``.

    Raises:
        UsageError: ``path`` exists and ``force`` is False (also when it appears while writing), ``path``
            is one of ``inputs`` or of the files being protected (see `protecting`), or its folder
            cannot be created.
    """
    target = Path(path)
    check_not_an_input(target, inputs)
    if os.path.lexists(target) and not force:  # a symlink there, even a dangling one, is a file in the way
        raise _exists(target)
    _make_folder(target.parent)
    unnamed = None if named else _unnamed_file(target.parent)
    if unnamed is not None:
        with _publishing_unnamed(unnamed, target, force, inputs) as temporary:
            yield temporary
        return
    with _publishing_named(target, force, inputs) as temporary:
        yield temporary


@contextmanager
def _publishing_unnamed(handle: int, target: Path, force: bool, inputs: tuple) -> Iterator[Path]:
    """Yield the unnamed file's ``/proc/self/fd`` path; link it in as ``target`` when the block succeeds."""
    proc_path = f"/proc/self/fd/{handle}"
    try:
        yield Path(proc_path)
        check_not_an_input(target, inputs)
        try:
            _link_unnamed(proc_path, target)
        except FileExistsError:
            if not force:
                raise _appeared(target) from None
            _replace_by_link(proc_path, target)
    finally:
        os.close(handle)


def _replace_by_link(proc_path: str, target: Path) -> None:
    """Give the unnamed file a hidden name beside ``target``, then rename it over ``target``."""
    for _ in range(100):
        hidden = target.with_name(f".{target.name}.{os.urandom(4).hex()}.partial")
        try:
            _link_unnamed(proc_path, hidden)
            break
        except FileExistsError:
            continue
    else:
        raise UsageError(f"cannot find a free temporary name beside {target}")
    try:
        os.replace(hidden, target)
    finally:
        if os.path.lexists(hidden):
            os.unlink(hidden)


@contextmanager
def _publishing_named(target: Path, force: bool, inputs: tuple) -> Iterator[Path]:
    """Yield a hidden temporary beside ``target``; move it to ``target`` when the block succeeds."""
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; a saved file gets the usual mode
        check_not_an_input(target, inputs)
        if force:
            os.replace(temporary, target)
        else:
            _rename_no_replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _rename_no_replace(temporary: str, target: Path) -> None:
    """Move ``temporary`` to ``target``, refusing if ``target`` exists (even if it appeared a moment ago)."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise _appeared(target) from None
    except OSError as error:  # a file system without hard links: check, then rename
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        if target.exists():
            raise _appeared(target) from None
        os.replace(temporary, target)
        return
    os.unlink(temporary)


def _link_unnamed(proc_path: str, target: Path) -> None:
    """Give the unnamed file behind ``proc_path`` the name ``target`` (FileExistsError if it is taken).

    ``linkat(..., AT_SYMLINK_FOLLOW)`` through ``/proc/self/fd`` needs no privilege; Python calls
    linkat (rather than link, which would link the /proc symlink itself) only when given a folder fd.
    """
    folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(proc_path, target.name, dst_dir_fd=folder, follow_symlinks=True)
    finally:
        os.close(folder)


def _unnamed_file(folder: Path) -> int | None:
    """A file descriptor of a new unnamed file in ``folder`` that can be given a name later, or None where the
    platform, the file system or /proc cannot do that (then a named temporary stands in)."""
    if not _O_TMPFILE or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        if not _can_link_unnamed(folder):
            return None
        return os.open(folder, _O_TMPFILE | os.O_RDWR, 0o666)  # the mode is masked by the umask, as for open()
    except OSError as error:
        if error.errno in _NO_UNNAMED:
            return None
        raise


# What open(O_TMPFILE) or linkat through /proc fail with where they are not supported.
_NO_UNNAMED = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT, errno.EXDEV, errno.EPERM, errno.EACCES)


def _can_link_unnamed(folder: Path) -> bool:
    """Try it once on an empty unnamed file: some file systems and sandboxes refuse one step or the other."""
    handle = os.open(folder, _O_TMPFILE | os.O_RDWR, 0o600)
    probe = folder / f".weightkit-probe-{os.urandom(6).hex()}"
    try:
        _link_unnamed(f"/proc/self/fd/{handle}", probe)
    except OSError as error:
        if error.errno in _NO_UNNAMED:
            return False
        raise
    finally:
        os.close(handle)
    os.unlink(probe)
    return True


def _make_folder(folder: Path) -> None:
    """Create the output's folder (and its parents) if needed, or say in one line why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"cannot create the folder {folder}: a file is in the way (it or a parent is not a folder)",
                         hint="choose another output folder") from None
    except OSError as error:
        raise UsageError(f"cannot create the folder {folder}: {error.strerror or error}",
                         hint="choose another output folder") from None


def _exists(target: Path) -> UsageError:
    return UsageError(f"{target} already exists", hint="pass --force to replace it")


def _appeared(target: Path) -> UsageError:
    return UsageError(f"{target} appeared while weightkit was writing it; the other file was kept",
                      hint="pass --force to replace it, or choose another output path")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
