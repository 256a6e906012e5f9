"""The resource limits every reader works under, in one table.

A weight file is untrusted input: whatever it declares (entries, nesting, opcodes,
decompressed sizes), weightkit does only a bounded amount of work and allocation for
it. Each limit has a default generous enough for real 100 GB checkpoints; a user
who trusts a file raises one with ``WEIGHTKIT_MAX_<NAME>=N`` in the environment,
``weightkit --limit name=N ...`` on the command line, or `raised` in Python.
A refusal names the limit and how to raise it (docs/security.md lists them all).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import UnsafeFileError, UsageError

__all__ = ["Limit", "LIMITS", "by_name", "raised", "inflate_allowance", "ENTRIES", "NESTING", "JSON_BYTES",
           "INFLATE_RATIO", "INFLATE_FLOOR", "MEMBER_BYTES", "PICKLE_OPCODES", "PICKLE_MEMO", "OBJECT_SIZE", "KEY_SIZE",
           "HASH_COLLISIONS", "GRAPH_NODES", "VERIFY_BYTES"]

_overrides: dict[str, int] = {}


@dataclass(frozen=True)
class Limit:
    """One bound: its name, its default, and what it counts (for the refusal message)."""

    name: str
    default: int
    counts: str

    @property
    def env(self) -> str:
        """The environment variable that raises (or lowers) this limit."""
        return f"WEIGHTKIT_MAX_{self.name.upper()}"

    @property
    def value(self) -> int:
        """The limit in force: `raised` first, then the environment, then the default."""
        if self.name in _overrides:
            return _overrides[self.name]
        text = os.environ.get(self.env)
        if text is None:
            return self.default
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise UsageError(f"{self.env}={text!r} is not a whole number") from None
        if value < 0:
            raise UsageError(f"{self.env}={text!r} is negative")
        return value

    def refusal(self, amount: int | str, subject: str, *, path: str | Path | None = None) -> UnsafeFileError:
        """The error for `subject` needing `amount` where the limit allows less."""
        shown = f"{amount:,}" if isinstance(amount, int) else amount
        return UnsafeFileError(
            f"{subject} needs {shown} {self.counts}, more than the limit of {self.value:,} "
            f"(limit {self.name!r})",
            path=path, hint=f"if you trust the file, raise it: {self.env}=N or --limit {self.name}=N")

    def check(self, amount: int, subject: str, *, path: str | Path | None = None) -> None:
        """Raise `refusal` when `amount` is over the limit."""
        if amount > self.value:
            raise self.refusal(amount, subject, path=path)


ENTRIES = Limit("entries", 1_000_000, "entries (tensors, zip members, HDF5 objects, keys) in one table")
NESTING = Limit("nesting", 256, "levels of nesting (JSON, HDF5 groups, pickled containers, protobuf)")
JSON_BYTES = Limit("json_bytes", 64 * 2**20, "bytes of JSON text (configs, metadata, indexes)")
INFLATE_RATIO = Limit("inflate_ratio", 200, "decompressed bytes per stored byte")
INFLATE_FLOOR = Limit("inflate_floor", 64 * 2**20, "decompressed bytes allowed whatever the ratio")
MEMBER_BYTES = Limit("member_bytes", 256 * 2**30, "decompressed bytes in one zip member or HDF5 dataset")
PICKLE_OPCODES = Limit("pickle_opcodes", 10_000_000, "pickle opcodes")
PICKLE_MEMO = Limit("pickle_memo", 10_000_000, "pickle memo entries")
OBJECT_SIZE = Limit("object_size", 10_000_000, "objects, counting each shared part every time it appears")
KEY_SIZE = Limit("key_size", 10_000, "objects in one dictionary key or set item")
HASH_COLLISIONS = Limit("hash_collisions", 32, "dictionary keys with one hash value")
GRAPH_NODES = Limit("graph_nodes", 1_000_000, "graph nodes")
VERIFY_BYTES = Limit("verify_bytes", 256 * 2**20, "bytes of test input for convert --verify")

LIMITS: tuple[Limit, ...] = (ENTRIES, NESTING, JSON_BYTES, INFLATE_RATIO, INFLATE_FLOOR, MEMBER_BYTES,
                             PICKLE_OPCODES, PICKLE_MEMO, OBJECT_SIZE, KEY_SIZE, HASH_COLLISIONS, GRAPH_NODES,
                             VERIFY_BYTES)


def by_name(name: str) -> Limit:
    """The limit called `name` (as in ``--limit name=N``)."""
    for limit in LIMITS:
        if limit.name == name:
            return limit
    raise UsageError(f"no limit called {name!r}", hint="choose one of " + ", ".join(lim.name for lim in LIMITS))


def inflate_allowance(stored: int) -> int:
    """How many bytes a compressed stream of `stored` bytes may decode to."""
    return min(MEMBER_BYTES.value, max(INFLATE_FLOOR.value, INFLATE_RATIO.value * stored))


@contextmanager
def raised(**values: int) -> Iterator[None]:
    """Run a block with some limits set to other values: ``with raised(entries=5_000_000): ...``."""
    for name in values:
        by_name(name)
    saved = dict(_overrides)
    _overrides.update(values)
    try:
        yield
    finally:
        _overrides.clear()
        _overrides.update(saved)
