"""Hostile safetensors files: header bombs (entries, metadata keys), shapes no array can have, and the
layout rules (holes, overlaps, trailing bytes, duplicate keys, absurd header lengths, non-UTF-8)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from tests.hostile.cases import Case

_READS = ("inspect", "inspect-tensors", "inspect-json", "identify", "diff-values")


def _file(folder: Path, header: bytes | dict[str, Any], data: bytes = b"", name: str = "model.safetensors",
          length: int | None = None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    path = folder / name
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def _tensor(shape: list[int], begin: int, end: int, dtype: str = "U8") -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def _many_entries(count: int):
    """``count`` one-byte tensors: 4 JSON entries each, parsed under limits.ENTRIES."""
    def build(folder: Path) -> Path:
        parts = [f'"t{i}":{{"dtype":"U8","shape":[1],"data_offsets":[{i},{i + 1}]}}' for i in range(count)]
        return _file(folder, ("{" + ",".join(parts) + "}").encode(), bytes(count))

    return build


def _metadata_keys(count: int):
    """``__metadata__`` with ``count`` keys (4·10^6 of them took over 1 GB to build as dicts)."""
    def build(folder: Path) -> Path:
        keys = ",".join(f'"k{i}":""' for i in range(count))
        return _file(folder, ('{"__metadata__":{' + keys + '},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}')
                     .encode(), b"\0")

    return build


def _million_rank(folder: Path) -> Path:
    shape = ",".join("1" for _ in range(1_000_000))
    return _file(folder, ('{"a":{"dtype":"U8","shape":[' + shape + '],"data_offsets":[0,1]}}').encode(), b"\0")


def _case(name: str, build, match: str | None = None, source: str = "issue 13 item 9", **options: Any) -> Case:
    return Case(f"safetensors/{name}", source, build, match=match, **options)


CASES: list[Case] = [
    _case("entries-over-limit", _many_entries(30_000), match="limit 'entries'", commands=_READS,
          env={"WEIGHTKIT_MAX_ENTRIES": "100000"}),
    _case("metadata-keys-over-limit", _metadata_keys(200_000), match="limit 'entries'", commands=_READS,
          env={"WEIGHTKIT_MAX_ENTRIES": "100000"}),
    _case("rank-65", lambda f: _file(f, {"a": _tensor([1] * 65, 0, 1)}, b"\0"), match="at most 64", commands=_READS,
          source="issue 13 item 6"),
    _case("million-rank", _million_rank, match="at most 64", commands=_READS),
    _case("zero-beside-giant-dims", lambda f: _file(f, {"a": _tensor([0, 2**62, 2**62], 0, 0)}),
          match="64-bit size", commands=_READS),
    _case("giant-dims-then-zero", lambda f: _file(f, {"a": _tensor([2**63, 2**63, 0], 0, 0)}),
          match="64-bit size", commands=_READS),
    _case("zero-beside-max-u64", lambda f: _file(f, {"a": _tensor([0, 2**64 - 1], 0, 0, "F64")}),
          match="64-bit size", commands=_READS),
    _case("trailing-bytes", lambda f: _file(f, {"a": _tensor([4], 0, 4)}, bytes(4) + b"EXTRA"),
          match="unexpected bytes after the last tensor", commands=("inspect",)),
    _case("hole", lambda f: _file(f, {"a": _tensor([4], 0, 4), "b": _tensor([4], 8, 12)}, bytes(12)),
          match="gap", commands=("inspect",), source="safetensors header holes"),
    _case("overlap", lambda f: _file(f, {"a": _tensor([4], 0, 4), "b": _tensor([4], 2, 6)}, bytes(6)),
          match="overlap", commands=("inspect",), source="safetensors overlapping ranges"),
    _case("duplicate-key", lambda f: _file(f, b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                                              b'"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0"),
          match="duplicate key", commands=("inspect",), source="safetensors duplicate keys"),
    _case("header-length-max-u64", lambda f: _file(f, b"{}", length=2**64 - 1), match="header length",
          commands=("inspect",), source="safetensors header bombs"),
    _case("non-utf8-header", lambda f: _file(f, b'{"a\xff\xfe":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
                                             b"\0"), match="not UTF-8", commands=("inspect",)),
    _case("deep-json-header", lambda f: _file(f, b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
          match="limit 'nesting'", commands=("inspect",), source="safetensors header bombs"),
    _case("metadata-not-strings", lambda f: _file(f, {"__metadata__": {"k": [1]}, "a": _tensor([1], 0, 1)}, b"\0"),
          match="must be a string", commands=("inspect",)),
]
