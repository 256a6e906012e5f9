"""Every file format weightkit reads or writes, as `Format` records in one registry.

A file is matched by content, never by its extension: the first format whose
``sniff`` accepts the file's first bytes reads it. Each family package
(`keras`, `torch`, `safetensors`, `onnx`, and `sharded` indexes over any of them)
declares its formats; a new format is a new record there, not new branches here.
Writing goes through `write` alone, which never replaces a file the model reads from.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..errors import FileFormatError, UnsupportedError, UsageError
from ..model import Model
from ._parsers import protobuf as _wire
from ._probe import Probe, probe

__all__ = ["Format", "registry", "detect", "read", "write", "writable", "by_name", "output_format_for"]

Writer = Callable[..., None]


@dataclass(frozen=True)
class Format:
    """A file format: how to recognize it, read it and write it.

    Attributes:
        name: what ``--format`` and ``save(format=...)`` call it (``keras-h5``, ``torch``, ...).
        label: the files it covers, in a few words, for error messages.
        suffixes: file name endings that choose it as an output format; the first is the default.
        sniff: True when a file's first bytes are this format (None: never chosen when reading).
        read: the file as a `Model`, tensors unread.
        write: ``write(model, path, force=...)``; None when weightkit cannot write it.
        writes_back: the `Model.format` values this format writes by default (a split's parts keep
            their source's format: a ``torch-legacy`` checkpoint's parts are written as ``torch``).
        by_suffix: a file no sniffer takes is still read as this format when its name has one of
            ``suffixes`` (so a broken file gets this format's precise error, not "unknown format").
    """

    name: str
    label: str
    suffixes: tuple[str, ...] = ()
    sniff: Callable[[Probe], bool] | None = None
    read: Callable[[Probe], Model] | None = None
    write: Writer | None = None
    writes_back: tuple[str, ...] = ()
    by_suffix: bool = False

    def __repr__(self) -> str:
        return f"<Format {self.name}>"


@cache
def registry() -> tuple[Format, ...]:
    """Every format, in the order their sniffers run (the families are imported on first use)."""
    from . import keras, onnx, safetensors, sharded, torch

    # Sniffing order: cheap, certain signatures first (HDF5, zip entries, the safetensors header, the
    # pickle magic); a JSON index, then the protobufs: a SavedModel before ONNX (the loosest), which
    # would otherwise take it for a model without a graph.
    return (*keras.FORMATS, *safetensors.FORMATS, *torch.FORMATS, sharded.FORMAT, _SAVED_MODEL, *onnx.FORMATS)


def detect(path: str | os.PathLike[str]) -> tuple[Format, Probe]:
    """The format that reads ``path``, decided by content.

    Raises:
        FileFormatError: the file is missing, empty, or in no format weightkit reads.
        UnsupportedError: a format weightkit recognises but does not read (a TensorFlow SavedModel).
    """
    if _is_saved_model_folder(Path(path)):
        raise UnsupportedError(f"a TensorFlow SavedModel folder: {_SAVED_MODEL_IS}", path=Path(path),
                               hint=_SAVED_MODEL_HINT)
    found = probe(path)
    for candidate in registry():
        if candidate.sniff is not None and candidate.read is not None and candidate.sniff(found):
            return candidate, found
    name = found.path.name.lower()
    for candidate in registry():  # content first, always: the name decides only what nothing claimed
        if candidate.by_suffix and candidate.read is not None and name.endswith(candidate.suffixes):
            return candidate, found
    raise FileFormatError(_unknown_format(found), path=found.path, hint=f"weightkit reads {_supported()}")


def read(path: str | os.PathLike[str]) -> Model:
    """Read any supported weight file into a `Model`, without reading tensor data."""
    chosen, found = detect(path)
    assert chosen.read is not None  # detect returns readable formats only
    return chosen.read(found)


def writable() -> list[Format]:
    """The formats weightkit writes, in registry order."""
    return [f for f in registry() if f.write is not None]


def by_name(name: str) -> Format:
    """The writable format called ``name``.

    Raises:
        UsageError: weightkit writes no format of that name.
    """
    for candidate in writable():
        if candidate.name == name:
            return candidate
    raise UsageError(f"weightkit cannot write {name!r}", hint=f"formats it writes: {_names(writable())}")


def output_format_for(model: Model) -> Format:
    """The format a model read from a file is written back in by default (safetensors when none claims it)."""
    for candidate in writable():
        if model.format in candidate.writes_back:
            return candidate
    return by_name("safetensors")


def write(model: Model, path: str | os.PathLike[str], format: str | None = None, *, force: bool = False) -> None:
    """Write ``model`` to ``path`` in ``format`` (by default chosen from the suffix), atomically.

    Raises:
        UsageError: unknown format, a suffix that names none, ``path`` exists without ``force``,
            or ``path`` is a file ``model`` reads from (its source, a shard, external data, the
            architecture file, either part of a merge), however it is named (`os.path.samefile`),
            whatever ``force`` says.
    """
    from .._atomic import check_not_an_input, protecting

    chosen = by_name(format) if format is not None else _from_suffix(path)
    inputs = model.input_files()
    check_not_an_input(path, inputs)
    assert chosen.write is not None  # by_name and _from_suffix return writable formats only
    with protecting(inputs):  # every file the writer makes (an ONNX data file too) is checked again
        chosen.write(model, path, force=force)


def _from_suffix(path: str | os.PathLike[str]) -> Format:
    name = os.fspath(path).lower()
    matches = [(len(s), f) for f in writable() for s in f.suffixes if name.endswith(s)]
    if not matches:
        raise UsageError(f"cannot tell the output format from {os.fspath(path)!r}",
                         hint=f"pass format= one of {_names(writable())}")
    return max(matches, key=lambda match: match[0])[1]  # .weights.h5 before .h5


def _names(formats: list[Format]) -> str:
    return ", ".join(f.name for f in formats) or "none yet"


def _supported() -> str:
    return "; ".join(f.label for f in registry() if f.sniff is not None and f is not _SAVED_MODEL)


def _unknown_format(found: Probe) -> str:
    if found.is_zip:
        names = found.zip_names()
        if not names:
            return "a zip archive that cannot be opened (truncated or corrupted)"
        return f"a zip archive, but neither a .keras model nor a checkpoint (entries: {', '.join(names[:4])})"
    head = found.head[:8]
    if head.strip() and all(32 <= byte < 127 or byte in b"\t\n\r" for byte in head):
        return f"not a weight file (it starts with text {found.head[:24]!r})"
    return f"not a weight file weightkit recognises (first bytes {head.hex(' ')})"


# ---- TensorFlow SavedModel: recognised, so that it is named, but not read ---------------------------
# saved_model.pb is a protobuf ``SavedModel {int64 saved_model_schema_version = 1; repeated MetaGraphDef
# meta_graphs = 2}`` (tensorflow/core/protobuf/saved_model.proto); the weights are a TensorFlow checkpoint
# in variables/. Every MetaGraphDef field (meta_info_def = 1 ... object_graph_def = 7) is a message.

_SAVED_MODEL_IS = ("a TensorFlow graph (saved_model.pb) whose weights are a TensorFlow checkpoint (variables/), "
                   "which weightkit does not read")
_SAVED_MODEL_HINT = ("convert it to ONNX with tf2onnx (python -m tf2onnx.convert --saved-model DIR --output "
                     "model.onnx), or, if Keras saved it, load it in tf.keras and save it as .keras or .h5")


def _is_saved_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").is_file()


def _sniff_saved_model(found: Probe) -> bool:
    """Every field in the first bytes is the schema version (1) or a meta graph that starts like a MetaGraphDef."""
    head, pos, meta_graphs = found.head, 0, 0
    try:
        while pos < len(head):
            field = next(_wire.fields(head, pos, _UNBOUNDED))
            if (field.number, field.wire) == (1, _wire.VARINT):
                if field.value != 1:
                    return False
            elif (field.number, field.wire) == (2, _wire.LEN) and _starts_like_meta_graph(head, field):
                meta_graphs += 1
            else:
                return False
            pos = field.end
    except (_wire.WireError, IndexError, StopIteration):  # a field cut by the end of the first bytes
        pass
    return meta_graphs > 0


def _starts_like_meta_graph(head: bytes, field: _wire.Field) -> bool:
    if field.value_start >= len(head):
        return True
    tag, _ = _wire.read_varint(head, field.value_start, len(head))
    return 1 <= tag >> 3 <= 7 and tag & 7 == _wire.LEN


def _refuse_saved_model(found: Probe) -> Model:
    raise UnsupportedError(f"a TensorFlow SavedModel: {_SAVED_MODEL_IS}", path=found.path, hint=_SAVED_MODEL_HINT)


_UNBOUNDED = 1 << 62
_SAVED_MODEL = Format("tensorflow-savedmodel", "TensorFlow SavedModels (saved_model.pb): recognised, not read",
                     sniff=_sniff_saved_model, read=_refuse_saved_model)
