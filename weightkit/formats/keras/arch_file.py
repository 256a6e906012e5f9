"""A Keras architecture given apart from its weights: a JSON config, or a full-model file of the same network.

``--arch`` for weights-only files (`weightkit.load(path, arch=...)`, ``convert --arch``,
``split --arch``): a Keras 3 ``.weights.h5`` records neither layer order nor graph, and
a legacy weights ``.h5`` no graph; the architecture supplies both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import limits
from ...errors import FileFormatError, UsageError
from ...model import Model
from .._parsers.json_text import load_json
from .config import ConfigLayer, architecture, parse_config

__all__ = ["ArchitectureRecord", "read_with_architecture", "read_architecture", "model_architecture",
           "architecture_record", "parse_record"]


@dataclass
class ArchitectureRecord:
    """The raw ``{"class_name", "config"}`` record, the Keras version that wrote it (if known), the record parsed."""

    record: dict[str, Any]
    keras_version: str | None
    root: ConfigLayer


def read_with_architecture(path: str | os.PathLike[str], arch: str | os.PathLike[str]) -> Model:
    """The Keras weights file ``path`` read with the architecture in ``arch``: its layers in the config's order.

    Raises:
        UsageError: ``path`` is not a Keras file, or ``arch`` holds no architecture.
        FileFormatError: either file cannot be read.
    """
    from .. import detect
    from .._owned import owned_by_model
    from .._parsers.hdf5 import H5Source
    from .h5 import read_source

    given = read_architecture(arch)
    found, _ = detect(path)  # the format by content, without reading the file's layers a first time
    if found.name != "keras-h5":
        raise UsageError(f"--arch gives an architecture to Keras .h5 weights; {path} is {found.label}")
    model = owned_by_model(H5Source(Path(path)), lambda source: read_source(source, given.record, given.root))
    model.framework_version = model.framework_version or given.keras_version
    model.metadata["architecture_from"] = os.fspath(arch)
    return model


def read_architecture(path: str | os.PathLike[str]) -> ArchitectureRecord:
    """The architecture in ``path``: a JSON config (``model.to_json()``, a ``.keras``'s config.json) or a full model.

    Raises:
        UsageError: the file is a Keras file without an architecture.
        FileFormatError: the file is not a Keras architecture.
    """
    if _looks_like_json(path):
        data = _read_json(path)
        record = architecture_record(data, path)
        version = data.get("keras_version") if isinstance(data, dict) else None
        version = version if isinstance(version, str) else None
        return ArchitectureRecord(record, version, parse_record(record, path))
    from .. import read

    with read(path) as model:
        if model.framework != "keras" or model.config is None:
            raise UsageError(f"{path} holds no Keras architecture",
                             hint="give a Keras JSON config or a full-model .h5/.keras file")
        return model_architecture(model, path)


def model_architecture(model: Model, path: Any) -> ArchitectureRecord:
    """A full model's architecture, parsed once and shared with every other user of the model."""
    record = architecture_record(model.config, path)
    wrapped = record is not model.config and not isinstance(model.config, list)  # {"model_config": ...}
    root = parse_record(record, path) if wrapped else architecture(model) or parse_record(record, path)
    return ArchitectureRecord(record, model.framework_version, root)


def architecture_record(data: Any, path: Any) -> dict[str, Any]:
    """``data`` as a ``{"class_name", "config"}`` record (Keras 1 bare lists and ``{"model_config": ...}`` too)."""
    if isinstance(data, list):  # Keras 1 Sequential: a bare list of layers
        return {"class_name": "Sequential", "config": data}
    if isinstance(data, dict) and "class_name" in data and "config" in data:
        return data
    if isinstance(data, dict) and isinstance(data.get("model_config"), dict):
        return architecture_record(data["model_config"], path)
    raise FileFormatError("not a Keras architecture (expected a JSON object with 'class_name' and 'config')", path=path)


def parse_record(record: dict[str, Any], path: Any) -> ConfigLayer:
    """`parse_config` with a file-format error naming ``path``."""
    try:
        return parse_config(record, record.get("build_config"))
    except ValueError as exc:
        raise FileFormatError(f"not a Keras architecture: {exc}", path=path) from exc


def _looks_like_json(path: Any) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(64).lstrip()
    except OSError as exc:
        raise FileFormatError(f"cannot read the architecture file: {exc.strerror}", path=path) from exc
    return head[:1] in (b"{", b"[", b'"')


def _read_json(path: Any) -> Any:
    """The architecture file's JSON, at most ``limits.JSON_BYTES`` of it, parsed under the limits."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(limits.JSON_BYTES.value + 1)
    except OSError as exc:
        raise FileFormatError(f"cannot read the architecture file: {exc.strerror}", path=path) from exc
    data = load_json(text, "the architecture", path)
    if isinstance(data, str):  # model.to_json() written with json.dump: a JSON string of JSON
        data = load_json(data, "the architecture (a JSON string of JSON)", path)
    return data
