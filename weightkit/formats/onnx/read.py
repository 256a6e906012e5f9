"""ONNX models (``.onnx``, with or without external data): read as layers, written back.

Each node with the constant tensors it consumes is a layer (``Conv`` → ``conv2d``,
``Gemm``/``MatMul`` → ``dense``, ...; see docs/onnx.md). Reading never loads tensor
bytes: the protobuf is parsed with its big payloads left in the file (see
`weightkit.formats.onnx.source`), and external data is only read from regular files
inside the model's folder. The parsed ``onnx.ModelProto`` is kept in `Model.graph`,
which is what `write` saves, with the Model's (possibly replaced) tensors.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...model import Model
from .._parsers import protobuf as _onnx_wire
from .._probe import Probe

__all__ = ["sniff", "read", "write", "model_from_proto", "LABEL"]

LABEL = "ONNX models (.onnx, with external data)"


#: A bound no file reaches: the ModelProto fields are judged as if the file went on past its end.
_UNBOUNDED = 1 << 62


def sniff(probe: Probe) -> bool:
    """ONNX has no magic number: the first protobuf fields must be ModelProto's, ir_version first among them.
    A file whose fields run past its end is a truncated model, taken so that `read` can say so."""
    return _onnx_wire.looks_like_model(probe.head, probe.size) or truncated_at(probe) is not None


def truncated_at(probe: Probe) -> int | None:
    """For a file that starts like an ONNX model but ends before one of its first fields does: where that
    field ends (so at least the size the whole file had). None otherwise."""
    if not _onnx_wire.looks_like_model(probe.head, _UNBOUNDED):
        return None
    try:
        for field in _onnx_wire.fields(probe.head, 0, _UNBOUNDED):
            if field.end > probe.size:
                return field.end
            if field.end >= len(probe.head):
                return None
    except (_onnx_wire.WireError, IndexError):  # a field cut by the end of the first bytes
        return None
    return None


def read(probe: Probe) -> Model:
    """Read an ONNX model into a `Model` (no tensor data is read).

    Raises:
        FileFormatError: a truncated or corrupted protobuf, a model without a graph, missing external data.
        UnsafeFileError: external data that leaves the model's folder or is not a plain file.
    """
    from ...errors import FileFormatError
    from .._owned import owned_by_model
    from .source import OnnxSource

    end = truncated_at(probe)
    if end is not None:
        raise FileFormatError(f"a truncated ONNX model: the file ends at {probe.size:,} bytes, but its fields run "
                              f"to at least {end:,}", path=probe.path,
                              hint="the download or copy stopped early; fetch the file again")

    with _collector_paused():
        return owned_by_model(OnnxSource(probe.path), _model)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Building a layer per node makes many small objects and no garbage: the cyclic
    collector's passes over them would take a third of the time on big graphs."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _model(source: Any) -> Model:
    return model_from_proto(source.proto, source)


def model_from_proto(proto: Any, source: Any) -> Model:
    """A `Model` for ``proto``, a graph whose big tensors are external references into ``source``'s
    files (the source's own graph, or a part of it cut by `weightkit.arch.onnx`)."""
    from ...errors import FileFormatError
    from .graph import GraphReader
    from .info import graph_inputs, graph_outputs, model_metadata, opsets

    if not proto.HasField("graph"):
        raise FileFormatError("an ONNX protobuf without a graph", path=source.path,
                              hint="it may be a tensor or another ONNX message, not a model")
    versions = opsets(proto)
    reader = GraphReader(source, versions)
    layers = reader.read(proto.graph)
    model = Model(
        layers=layers,
        format="onnx",
        framework="onnx",
        framework_version=str(versions["ai.onnx"]) if "ai.onnx" in versions else None,
        has_graph=True,
        inputs=graph_inputs(proto.graph),
        outputs=graph_outputs(proto.graph),
        metadata=model_metadata(proto, reader.histogram, [f.location for f in source.external.files]),
        source=str(source.path),
    )
    unused = reader.unused()
    if unused:
        model.extras["unused_constants"] = unused
    model.graph = proto
    return model


def write(model: Model, path: str | os.PathLike[str], *, force: bool = False,
          external_data: bool | None = None) -> None:
    """Save a Model that carries an ONNX graph (`Model.graph`) as an .onnx file, atomically.

    Tensors are written from the Model (by name), so replaced tensors are saved;
    the rest is the graph as read. Data goes to ``<name>.data`` beside the file
    when ``external_data`` is True, or when it is None and the model exceeds 2 GB.

    Raises:
        UnsupportedError: the Model has no ONNX graph (convert it first).
        UsageError: the output exists and ``force`` is False, or it is an input.
    """
    from .write import write_model

    write_model(model, path, force=force, external_data=external_data)
