"""One exception hierarchy: every failure a user can cause is a `WeightkitError`.

Each error owns its message and an optional hint (what to do about it); the CLI
prints ``message`` and ``hint`` on one line and exits with ``exit_code``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "WeightkitError",
    "FileFormatError",
    "UnsafeFileError",
    "UnsupportedError",
    "UsageError",
    "ModelClosedError",
]


class WeightkitError(Exception):
    """Base of every error weightkit raises on purpose.

    Args:
        message: what went wrong, naming the file or tensor involved.
        hint: what the user can do about it, or None.
        path: the file the error is about, when there is one.
    """

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, path: str | Path | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = str(path) if path is not None else None

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{text} ({self.hint})" if self.hint else text


class FileFormatError(WeightkitError):
    """The file is missing, unreadable, truncated, corrupted, or not a format weightkit reads."""


class UnsafeFileError(WeightkitError):
    """The file asks for something weightkit refuses to do: run code, follow a link out, allocate absurd sizes."""


class UnsupportedError(WeightkitError):
    """The file is valid but uses a feature weightkit does not handle yet."""


class UsageError(WeightkitError):
    """The arguments do not make sense together (bad option, output exists, ...)."""


class ModelClosedError(UsageError):
    """A tensor was read after the model (and every part sharing its file) was closed."""

    def __init__(self, path: str | Path | None = None):
        super().__init__("the model was closed; its tensors can no longer be read", path=path,
                         hint="read tensors inside the `with weightkit.load(...)` block")
