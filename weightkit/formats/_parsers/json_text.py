"""JSON from a file, parsed under weightkit's limits: bounded text, entries and nesting.

Configs, metadata and indexes are JSON that a file author controls. Python's parser
builds whatever the text describes and recurses as deep as it nests; here the text
size, the number of entries (objects counted while parsing, lists before) and the
nesting depth are bounded, and every failure is a `FileFormatError` or
`UnsafeFileError` naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ... import limits
from ...errors import FileFormatError

__all__ = ["load_json", "depth"]


def load_json(data: bytes | str, subject: str, path: str | Path | None = None, *,
              pairs: Callable[[list[tuple[str, Any]]], Any] = dict) -> Any:
    """Parse `data` (the JSON text of `subject` in `path`) within the limits.

    ``pairs`` builds each object from its key/value pairs (``json``'s
    ``object_pairs_hook``), for formats that refuse duplicate keys.

    Raises:
        UnsafeFileError: the text, its entries or its nesting exceed a limit.
        FileFormatError: the text is not JSON (or not UTF-8).
    """
    limits.JSON_BYTES.check(len(data), subject, path=path)
    # Objects are counted while parsing; lists only here: ``[[],[],...]`` builds a 56-byte
    # list for every 3 bytes. Brackets inside strings count too: an over-count, never an under-count.
    lists = data.count(b"[") if isinstance(data, bytes) else data.count("[")
    limits.ENTRIES.check(lists, f"{subject} (its lists)", path=path)
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"{subject} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                                  path=path) from exc
    entries = 0
    most = limits.ENTRIES.value

    def counted(items: list[tuple[str, Any]]) -> Any:
        nonlocal entries
        entries += len(items) + 1
        if entries > most:
            raise limits.ENTRIES.refusal(f"over {most:,}", subject, path=path)
        return pairs(items)

    try:
        value = json.loads(data, object_pairs_hook=counted)
    except RecursionError as exc:
        raise limits.NESTING.refusal("more", subject, path=path) from exc
    except ValueError as exc:  # JSONDecodeError, and what ``pairs`` refuses
        raise FileFormatError(f"{subject} is not valid JSON ({exc})", path=path) from exc
    limits.NESTING.check(depth(value), subject, path=path)
    return value


def depth(value: Any) -> int:
    """How deeply lists and dicts nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        level += 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in item if isinstance(child, (dict, list)))
    return deepest
