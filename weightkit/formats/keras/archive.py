"""Keras 3 ``.keras`` archives: config.json, metadata.json and model.weights.h5, read in place.

The weights member is opened as a window onto the archive (members are stored
uncompressed), so nothing is extracted to disk and no tensor is read until asked.
config.json and metadata.json are the file author's JSON: read through the zip reader's
bounded `open_member`, at most ``limits.JSON_BYTES`` of it, and parsed under the limits.
"""

from __future__ import annotations

import json
import zipfile
from typing import Any

from ... import limits
from ...errors import FileFormatError, UnsupportedError
from ...model import Model
from ...records import records
from .._owned import owned_by_model
from .._parsers.hdf5 import H5Source
from .._parsers.json_text import load_json
from .._parsers.zip import open_member, open_zip
from .._probe import Probe
from . import store
from .config import parse_config, remember_architecture
from .shapes import output_specs

__all__ = ["sniff", "read", "write"]

LABEL = "Keras .keras archives"


def sniff(probe: Probe) -> bool:
    names = probe.zip_names()
    return "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names)


def read(probe: Probe) -> Model:
    """Read a ``.keras`` archive: architecture from config.json, tensors from model.weights.h5."""
    path = probe.path
    with open_zip(path) as archive:
        config_data = _json_member(archive, "config.json", probe)
        metadata = _json_member(archive, "metadata.json", probe) if "metadata.json" in archive.namelist() else {}
        names = archive.namelist()
    if "model.weights.h5" not in names:
        if "model.weights.npz" in names:
            raise UnsupportedError("this .keras file stores its weights as model.weights.npz, not yet read",
                                   path=path)
        raise FileFormatError(".keras archive has no model.weights.h5", path=path)
    try:
        root = parse_config(config_data, config_data.get("build_config") if isinstance(config_data, dict) else None)
    except ValueError as exc:
        raise FileFormatError(f"config.json is not a Keras config: {exc}", path=path) from exc

    def open_weights() -> Any:
        with open_zip(path) as archive:
            return open_member(archive, "model.weights.h5", path)

    def build(source: H5Source) -> Model:
        layers, extras = store.read_store(source, root)
        version = metadata.get("keras_version") if isinstance(metadata, dict) else None
        version = version if isinstance(version, str) else None
        model = Model(
            layers=layers, format="keras-zip", framework="keras", framework_version=version, has_graph=True,
            inputs=root.input_specs(), outputs=output_specs(root), extras=extras, config=config_data,
            source=str(path), metadata=_metadata(metadata, version, names),
        )
        if isinstance(metadata, dict):
            model.metadata.update({k: v for k, v in metadata.items() if k.startswith("weightkit.")})
        remember_architecture(model, root)
        return model

    return owned_by_model(H5Source(path, opener=open_weights), build)


def _json_member(archive: zipfile.ZipFile, name: str, probe: Probe) -> Any:
    """A JSON member, its declared and its decoded size both within ``limits.JSON_BYTES``, parsed under the limits."""
    subject = f"{name} in the archive"
    limits.JSON_BYTES.check(archive.getinfo(name).file_size, subject, path=probe.path)
    with open_member(archive, name, probe.path) as member:
        text = member.read(limits.JSON_BYTES.value + 1)  # a member that decodes to more than it declared stops here
    return load_json(text, subject, probe.path)


def _metadata(metadata: Any, version: str | None, names: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {"writer": f"Keras {version}" if version else "Keras 3 (no version recorded)"}
    if isinstance(metadata, dict) and isinstance(metadata.get("date_saved"), str) and metadata["date_saved"]:
        result["date_saved"] = metadata["date_saved"]
    assets = [n for n in names if n.startswith("assets/") and not n.endswith("/")]
    if assets:
        result["assets"] = len(assets)
    return result


def write(model: Model, path: Any, *, force: bool = False) -> None:
    """Write ``model`` as a ``.keras`` archive that ``keras.models.load_model`` opens.

    Needs a config in the ``.keras`` spelling (every class with its ``module``), which
    ``.keras`` files carry; ``.h5`` configs lack it, even Keras 3's, and are refused with
    the reason and a hint to write ``.h5`` instead.
    """
    import datetime
    import tempfile
    from pathlib import Path

    import h5py

    from ..._atomic import atomic_output
    from .write import keras_version, write_store

    refusal = _archive_refusal(model)
    if refusal:
        raise UnsupportedError(refusal, hint="write a .h5 file instead")
    metadata = {"keras_version": keras_version(model),
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    metadata.update(records(model))
    with atomic_output(path, force=force, named=True) as temporary:  # scratch space beside it
        with tempfile.TemporaryDirectory(dir=Path(temporary).parent) as scratch:
            weights = Path(scratch) / "model.weights.h5"
            with h5py.File(weights, "w") as file:
                write_store(file, model)
            with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
                archive.writestr("metadata.json", json.dumps(metadata))
                archive.writestr("config.json", json.dumps(model.config))
                archive.write(weights, "model.weights.h5")


def _archive_refusal(model: Model) -> str | None:
    """Why ``model`` cannot be written as a ``.keras`` archive Keras loads, or None when it can."""
    config = model.config
    if model.framework != "keras" or not isinstance(config, dict):
        return ".keras needs a Keras architecture; this model has none (weights only)"
    if "module" in config:  # what .keras configs (serialize_keras_object) carry
        return None
    version = model.framework_version or ""
    if version.startswith("3."):
        return (f".keras needs a config in the .keras spelling; this one is Keras {version}'s .h5 spelling, whose "
                "classes have no 'module', and load_model cannot find them in a .keras archive")
    writer = model.metadata.get("writer") or "Keras 1 or 2"
    return f".keras needs a Keras 3 architecture; this model's config was written by {writer}"
