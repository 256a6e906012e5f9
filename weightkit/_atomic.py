"""Writing outputs safely: a temporary file beside the target, renamed into place on success."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UsageError

__all__ = ["atomic_output"]


@contextmanager
def atomic_output(path: str | os.PathLike[str], *, force: bool = False,
                  inputs: tuple[str | os.PathLike[str], ...] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    Raises:
        UsageError: ``path`` exists and ``force`` is False, or ``path`` is one of ``inputs``.
    """
    target = Path(path)
    for source in inputs:
        if target.exists() and Path(source).exists() and target.resolve() == Path(source).resolve():
            raise UsageError(f"{target} is an input; weightkit never overwrites its inputs",
                             hint="choose another output path")
    if target.exists() and not force:
        raise UsageError(f"{target} already exists", hint="pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; a saved file gets the usual mode
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
