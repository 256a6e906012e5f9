"""PyTorch checkpoints: ``torch.save`` zip files, legacy pre-1.6 and tar files, TorchScript archives.

Nothing here imports torch or calls `pickle.load`: pickles are interpreted by
weightkit's restricted unpickler (`weightkit.formats._parsers.unpickler`) under torch's
``weights_only`` allowlist, so a file can name only tensors, storages, dtypes and
plain containers; pickled modules are recorded by class name, never rebuilt.
Storages are not read when the file is opened: each tensor reads its own bytes
from the zip member or file offset when asked.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from ...errors import FileFormatError, UnsupportedError
from ...model import Model
from .._owned import owned_by_model
from .._parsers.json_text import load_json
from .._parsers.unpickler import Unpickler, shown
from .._parsers.zip import open_zip, read_member
from .._probe import Probe
from . import legacy
from .data import StorageFile, ZipStorages, zip_errors
from .layers import build_model
from .pickle import TORCH_ALLOWLIST, StorageRef, storage_from_pid
from .tree import describe

__all__ = ["sniff", "read", "LABEL"]

LABEL = "PyTorch checkpoints (.pt/.pth/.bin/.ckpt: zip, legacy and tar formats; TorchScript archives)"

#: What a TorchScript archive holds (``metadata["description"]``): its architecture is code, kept but never run.
SCRIPT_DESCRIPTION = "a TorchScript module: weights readable, architecture as TorchScript code (kept, never run)"

_MAX_RECORD_BYTES = 64  # ``byteorder`` and ``version`` hold a word; anything longer is not one


def sniff(probe: Probe) -> bool:
    """A zip whose top folder holds ``data.pkl`` (or TorchScript's older ``model.json``), or a legacy file."""
    if probe.is_zip:
        folder = _folder(probe.zip_names())
        names = set(probe.zip_names())
        return folder is not None and (f"{folder}/data.pkl" in names or f"{folder}/model.json" in names)
    return legacy.is_legacy(probe.head) or legacy.is_tar(probe.head)


def read(probe: Probe) -> Model:
    """Read a PyTorch file of any of its formats into a `Model` (no tensor data is read)."""
    if probe.is_zip:
        return _read_zip(probe.path)
    if legacy.is_tar(probe.head):
        root, storages, metadata = legacy.read_tar(probe.path)
        return _model(root, storages, "torch-tar", probe.path, metadata)
    root, storages, metadata = legacy.read_stream(probe.path)
    return _model(root, storages, "torch-legacy", probe.path, metadata)


def _model(root: Any, storages: StorageFile, format: str, path: Path, metadata: dict[str, Any],
           extras: dict[str, Any] | None = None) -> Model:
    def build(storages: Any) -> Model:
        contents = describe(root)
        if extras:
            contents.extras.update(extras)
        return build_model(contents, storages, format=format, path=str(path), metadata=metadata)

    return owned_by_model(storages, build)


def _folder(names: list[str]) -> str | None:
    """The archive's top folder, taken from its first entry as torch does (not always ``archive``)."""
    if not names or "/" not in names[0]:
        return None
    return names[0].split("/", 1)[0]


def _read_zip(path: Path) -> Model:
    with zip_errors(path, "the zip archive"):
        archive = open_zip(path)
    try:
        folder = _folder(archive.namelist())
        if folder is None or f"{folder}/data.pkl" not in archive.namelist():
            raise UnsupportedError("a TorchScript archive from torch 1.0-1.3 (model.json and protobuf tensors), "
                                   "which weightkit does not read", path=path,
                                   hint="load and re-save it with a recent torch.jit.save")
        byteorder = _record(archive, f"{folder}/byteorder", path)
        if byteorder not in (None, "little", "big"):
            raise FileFormatError(f"byteorder record says {shown(byteorder)!r}, not 'little' or 'big'", path=path)
        storages = ZipStorages(path, archive, f"{folder}/", byteorder or "little")
    except BaseException:
        archive.close()
        raise
    try:
        is_script = f"{folder}/constants.pkl" in archive.namelist()
        root = _unpickle_member(archive, f"{folder}/data.pkl", path)
        extras = _script_constants(archive, folder, path) if is_script else {}
    except BaseException:
        storages.close()
        raise
    metadata = _zip_metadata(archive, folder, byteorder, path, is_script)
    return _model(root, storages, "torchscript" if is_script else "torch-zip", path, metadata, extras)


def _unpickle_member(archive: zipfile.ZipFile, name: str, path: Path, directory: str = "data") -> Any:
    """Interpret one pickle member; its storage references become `StorageRef`s keyed ``<directory>/<key>``."""
    with zip_errors(path, name):
        data = read_member(archive, name, path)  # a deflated pickle is inflated under the limits
    refs: dict[str, StorageRef] = {}

    def persistent_load(pid: Any) -> StorageRef:
        if isinstance(pid, tuple) and len(pid) != 5:
            raise ValueError(f"storage reference has {len(pid)} fields, not 5")
        return storage_from_pid(pid, refs, key_prefix=f"{directory}/")

    unpickler = Unpickler(data, TORCH_ALLOWLIST, persistent_load=persistent_load, path=path,
                          what=name.split("/", 1)[-1])
    return unpickler.load()


def _script_constants(archive: zipfile.ZipFile, folder: str, path: Path) -> dict[str, list[Any]]:
    """TorchScript constants (tensors stored under ``constants/``), as the extras group ``constants``."""
    found = describe(_unpickle_member(archive, f"{folder}/constants.pkl", path, directory="constants"))
    return {"constants": [(f"constants.{name}", record) for name, record in found.weights]} if found.weights else {}


def _record(archive: zipfile.ZipFile, name: str, path: Path, limit: int = _MAX_RECORD_BYTES) -> str | None:
    """A small text record (``byteorder``, ``version``, ``weightkit.json``) or None when absent."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > limit:
        raise FileFormatError(f"record {name} is {info.file_size} bytes, too long for what it holds", path=path)
    with zip_errors(path, name):
        return read_member(archive, name, path).decode("ascii", "replace").strip()


def _zip_metadata(archive: zipfile.ZipFile, folder: str, byteorder: str | None, path: Path,
                  is_script: bool) -> dict[str, Any]:
    names = archive.namelist()
    version = _record(archive, f"{folder}/version", path) or _record(archive, f"{folder}/.data/version", path)
    metadata: dict[str, Any] = {
        "writer": "torch.jit.save" if is_script else "torch.save (zip format)",
        "archive_folder": folder,
        "byteorder": byteorder or "not recorded (little-endian assumed)",
    }
    if version:
        metadata["file_format_version"] = version
    if is_script:
        metadata["description"] = SCRIPT_DESCRIPTION
        metadata["code_files"] = sum(1 for n in names if n.startswith(f"{folder}/code/") and n.endswith(".py"))
    metadata.update(_weightkit_records(archive, folder, path))
    return metadata


def _weightkit_records(archive: zipfile.ZipFile, folder: str, path: Path) -> dict[str, str]:
    """What weightkit recorded when it wrote the file (``weightkit.json``): string entries only."""
    from .write import RECORDS_NAME

    text = _record(archive, f"{folder}/{RECORDS_NAME}", path, limit=1 << 20)
    try:
        found = load_json(text, RECORDS_NAME, path) if text else {}
    except FileFormatError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if k.startswith("weightkit.") and isinstance(v, str)}
