"""Hostile sharded checkpoints: indexes whose shard names (or the links behind them) reach files outside
the index's folder, through a fake Hugging Face cache layout among others."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from tests.hostile.cases import Case

_INDEX = "model.safetensors.index.json"
_READS = ("inspect", "inspect-tensors", "inspect-json", "diff-values")


def _safetensors(path: Path, name: str = "secret") -> Path:
    header = json.dumps({name: {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"SECRET!!")
    return path


def _index(folder: Path, shard: str, key: str = "secret") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _INDEX).write_text(json.dumps({"metadata": {"total_size": 8}, "weight_map": {key: shard}}))
    return folder / _INDEX


def _snapshot(folder: Path) -> tuple[Path, Path]:
    """A Hugging Face cache repository folder and one snapshot in it."""
    repo = folder / "models--org--net"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    return repo, snapshot


def _hf_cache(folder: Path) -> Path:
    """The real layout: shards are relative links into the repository's own ``blobs``: allowed."""
    repo, snapshot = _snapshot(folder)
    _safetensors(repo / "blobs" / "0f1e2d3c")
    os.symlink("../../blobs/0f1e2d3c", snapshot / "model-00001-of-00001.safetensors")
    return _index(snapshot, "model-00001-of-00001.safetensors")


def _blobs_to_root(folder: Path) -> Path:
    """``repo/blobs -> /``: every absolute path became an allowed root, so a shard anywhere is read."""
    secret = _safetensors(folder / "outside" / "secret.safetensors")
    repo, snapshot = _snapshot(folder)
    os.symlink("/", repo / "blobs")
    os.symlink("../../blobs" + str(secret), snapshot / "model-00001-of-00001.safetensors")
    return _index(snapshot, "model-00001-of-00001.safetensors")


def _blobs_elsewhere(folder: Path) -> Path:
    """``repo/blobs -> <another folder>`` holding the file the shard link names."""
    secret = _safetensors(folder / "outside" / "secret.safetensors")
    repo, snapshot = _snapshot(folder)
    os.symlink(secret.parent, repo / "blobs")
    os.symlink("../../blobs/secret.safetensors", snapshot / "model-00001-of-00001.safetensors")
    return _index(snapshot, "model-00001-of-00001.safetensors")


def _blobs_to_root_passwd(folder: Path) -> Path:
    repo, snapshot = _snapshot(folder)
    os.symlink("/", repo / "blobs")
    os.symlink("../../blobs/etc/passwd", snapshot / "model-00001-of-00001.safetensors")
    return _index(snapshot, "model-00001-of-00001.safetensors")


def _shard_link_to_passwd(folder: Path) -> Path:
    os.makedirs(folder / "model")
    os.symlink("/etc/passwd", folder / "model" / "model-00001-of-00001.safetensors")
    return _index(folder / "model", "model-00001-of-00001.safetensors")


def _hard_link(folder: Path) -> Path:
    secret = _safetensors(folder / "outside" / "secret.safetensors")
    os.makedirs(folder / "model")
    os.link(secret, folder / "model" / "shard.safetensors")
    return _index(folder / "model", "shard.safetensors")


def _fifo(folder: Path) -> Path:
    os.makedirs(folder / "model")
    os.mkfifo(folder / "model" / "shard.safetensors")
    return _index(folder / "model", "shard.safetensors")


def _named(shard: str):
    def build(folder: Path) -> Path:
        _safetensors(folder / "outside" / "secret.safetensors")
        return _index(folder / "model", shard)

    return build


def _case(name: str, build, match: str, source: str = "issue 13 item 4") -> Case:
    return Case(f"sharded/{name}", source, build, match=match, commands=_READS)


CASES: list[Case] = [
    Case("sharded/hf-cache-layout", "issue 13 item 4 (the allowed layout)", _hf_cache, expect="ok", commands=_READS),
    _case("hf-cache-blobs-to-root", _blobs_to_root, "outside the model's folder"),
    _case("hf-cache-blobs-elsewhere", _blobs_elsewhere, "outside the model's folder"),
    _case("hf-cache-blobs-to-root-passwd", _blobs_to_root_passwd, "outside the model's folder"),
    _case("shard-link-to-passwd", _shard_link_to_passwd, "outside the model's folder", "symlink escape"),
    _case("shard-hard-link", _hard_link, "hard links", "hard-link escape"),
    _case("shard-fifo", _fifo, "not a regular file", "issue 13 item 9 (FIFO)"),
    _case("shard-parent-name", _named("../outside/secret.safetensors"), "'..'", "CVE-2022-25882 pattern"),
    _case("shard-nested-parent-name", _named("sub/../../outside/secret.safetensors"), "'..'",
          "CVE-2024-27318 pattern"),
    _case("shard-absolute-name", _named("/etc/passwd"), "absolute path", "CVE-2022-25882 pattern"),
]
