"""Hugging Face sharded checkpoints: an ``*.index.json`` naming the shard file of every tensor.

``model.safetensors.index.json`` / ``pytorch_model.bin.index.json`` hold
``{"metadata": {"total_size": ...}, "weight_map": {tensor: shard file}}``. The index
opens as one `Model`: each shard is read through the format registry (so any format
weightkit reads can be a shard), and the tensors are listed in ``weight_map`` order.
Shard names are untrusted: they must stay inside the index's folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .. import limits
from ..errors import FileFormatError, WeightkitError
from ..model import Model, Tensor
from . import Format
from ._parsers.json_text import load_json
from ._paths import resolve_beside
from ._probe import Probe
from .safetensors.file import unique_object
from .state_dict import layers_from_state_dict

__all__ = ["FORMAT", "sniff", "read"]

LABEL = "Hugging Face sharded checkpoints (*.index.json)"

_SHOWN = 5


def sniff(probe: Probe) -> bool:
    """A small JSON object with a ``weight_map`` (or named ``*.index.json``, for precise errors)."""
    if probe.size > limits.JSON_BYTES.value or not probe.head.lstrip().startswith(b"{"):
        return False
    if b'"weight_map"' in probe.head or probe.path.name.lower().endswith(".index.json"):
        return True
    try:
        document = load_json(probe.path.read_bytes(), "index", probe.path, pairs=unique_object)
    except (OSError, WeightkitError):
        return False
    return isinstance(document, dict) and isinstance(document.get("weight_map"), dict)


def read(probe: Probe) -> Model:
    """Open every shard of the index and combine their tensors into one `Model` (no tensor data read)."""
    weight_map, index_metadata = _load_index(probe)
    files = list(dict.fromkeys(weight_map.values()))
    shards = _open_shards(probe.path, files)
    try:
        tensors, unlisted = _collect(weight_map, shards, probe.path)
    except BaseException:
        _close_all(shards.values())
        raise
    model = Model(
        layers=layers_from_state_dict(tensors),
        format=_combined(shards, "format", "sharded-{}") or "sharded",
        framework=_combined(shards, "framework"),
        framework_version=_combined(shards, "framework_version"),
        has_graph=False,
        metadata=_metadata(index_metadata, files, shards, unlisted),
        source=str(probe.path),
    )
    if unlisted:
        model.extras["not_in_index"] = unlisted
    for shard in shards.values():
        model.adopt(shard)
    return model


def _load_index(probe: Probe) -> tuple[dict[str, str], dict[str, Any]]:
    path = probe.path
    limits.JSON_BYTES.check(probe.size, "the sharded-checkpoint index", path=path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileFormatError(f"cannot read it: {exc.strerror}", path=path) from None
    document = load_json(data, "the sharded-checkpoint index", path, pairs=unique_object)
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict):
        raise FileFormatError("not a sharded-checkpoint index: it has no \"weight_map\" object", path=path,
                              hint='an index looks like {"metadata": {...}, "weight_map": {"tensor": "shard file"}}')
    bad = next((key for key, value in weight_map.items() if not isinstance(value, str) or not value), None)
    if bad is not None:
        raise FileFormatError(f"weight_map[{bad!r}] must name a shard file, found {weight_map[bad]!r}", path=path)
    metadata = document.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise FileFormatError("the index's \"metadata\" must be an object", path=path)
    return weight_map, metadata


def _shard_path(index_path: Path, name: str) -> Path:
    """The shard's real path, by the one rule for files beside a model (`weightkit.formats._paths`)."""
    return resolve_beside(index_path, name, f"shard {name!r} listed in the index").path


def _open_shards(index_path: Path, files: list[str]) -> dict[str, Model]:
    from . import detect

    limits.ENTRIES.check(len(files), "the shard list of the index", path=index_path)
    paths = {name: _shard_path(index_path, name) for name in files}
    shards: dict[str, Model] = {}
    try:
        for name, path in paths.items():
            chosen, found = detect(path)
            if chosen is FORMAT:
                raise FileFormatError(f"shard {name!r} is itself an index; indexes do not nest", path=index_path)
            assert chosen.read is not None  # detect returns readable formats only
            shards[name] = chosen.read(found)
    except BaseException:
        _close_all(shards.values())
        raise
    return shards


def _collect(weight_map: dict[str, str], shards: dict[str, Model],
             index_path: Path) -> tuple[list[Tensor], list[Tensor]]:
    """Tensors in weight_map order (copies, so grouping them leaves the shards alone), and those not listed."""
    by_shard = {name: {t.name: t for t in shard.tensors()} for name, shard in shards.items()}
    missing = [(key, file) for key, file in weight_map.items() if key not in by_shard[file]]
    if missing:
        raise FileFormatError(_missing_message(missing, by_shard), path=index_path,
                              hint="the index does not match its shards; download the checkpoint again")
    tensors = [dataclasses.replace(by_shard[file][key]) for key, file in weight_map.items()]
    unlisted = [dataclasses.replace(tensor) for file, named in by_shard.items()
                for key, tensor in named.items() if weight_map.get(key) != file]
    return tensors, unlisted


def _missing_message(missing: list[tuple[str, str]], by_shard: dict[str, dict[str, Tensor]]) -> str:
    parts = []
    for key, file in missing[:_SHOWN]:
        elsewhere = next((other for other, named in by_shard.items() if key in named), None)
        parts.append(f"{key!r} (not in {file}" + (f"; it is in {elsewhere})" if elsewhere else ")"))
    more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
    return f"{len(missing)} tensor(s) listed in weight_map are missing from their shard: {', '.join(parts)}{more}"


def _metadata(index_metadata: dict[str, Any], files: list[str], shards: dict[str, Model],
              unlisted: list[Tensor]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"shards": len(files)}
    if "total_size" in index_metadata:
        metadata["total_size"] = index_metadata["total_size"]
    others = {key: value for key, value in index_metadata.items() if key != "total_size"}
    if others:
        metadata["index_metadata"] = others
    metadata["shard_files"] = files
    shard_metadata = [shard.metadata.get("safetensors_metadata") for shard in shards.values()]
    if shard_metadata and shard_metadata[0] is not None and all(m == shard_metadata[0] for m in shard_metadata):
        metadata["safetensors_metadata"] = shard_metadata[0]
    if unlisted:
        names = ", ".join(t.name for t in unlisted[:_SHOWN]) + (" ..." if len(unlisted) > _SHOWN else "")
        metadata["not_in_index"] = f"{len(unlisted)} shard tensor(s) missing from weight_map: {names}"
    return metadata


def _combined(shards: dict[str, Model], field: str, template: str = "{}", mixed: str | None = None) -> str | None:
    values = {getattr(shard, field) for shard in shards.values()}
    if len(values) == 1 and None not in values:
        return template.format(values.pop())
    return mixed


def _close_all(models: Any) -> None:
    for model in models:
        model.close()


#: Written by nobody: a split or merge of a sharded checkpoint writes one file.
FORMAT = Format("sharded", LABEL, (".index.json",), sniff, read)
