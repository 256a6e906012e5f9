"""Shared pieces of terminal output: the console, numbers, shapes, JSON."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["console", "print_json", "fmt_shape", "fmt_count", "fmt_bytes", "parse_shape"]


def console() -> Any:
    """A rich console: colour on a terminal, plain and wide when piped; NO_COLOR respected."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(highlight=False, no_color=True, width=int(os.environ.get("COLUMNS", 200)), soft_wrap=False)


def print_json(document: Any) -> None:
    """Print one JSON document on stdout, nothing else."""
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def fmt_shape(shape: Sequence[Any] | None) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def fmt_count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def fmt_bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def parse_shape(text: str | None, option: str, hint: str) -> tuple[int, ...] | None:
    """``224,224,3`` (or ``224x224x3``) given to ``option`` as a tuple of positive sizes; None when not given."""
    from ..errors import UsageError

    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a list of integers", hint=hint) from None
    if any(size <= 0 for size in shape):
        raise UsageError(f"{option} {text!r}: every size must be a positive integer", hint=hint)
    return shape
