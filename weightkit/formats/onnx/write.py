"""Writing an ONNX model: `Model.graph` with the Model's tensors, streamed to disk.

Every tensor site of the graph (initializers, Constant node values, subgraph
tensors) is filled from, in this order: the Model's tensor of the same name when
it was replaced or changed; the bytes the source file holds (copied without
decoding); the data already inline in the proto. Data never sits in memory all
at once: a single file is streamed by re-encoding the small skeleton around each
tensor's bytes (`_onnx_wire.rewrite`), and external data is appended to
``<name>.data`` one tensor at a time, each at a 4 KiB-aligned offset.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ... import dtypes
from ..._atomic import atomic_output
from ...errors import UnsupportedError, UsageError
from ...model import Model, Tensor
from ...records import records
from .._parsers import protobuf as wire
from .external import parse_size
from .source import ONNX_CODES, STRIP_THRESHOLD, OnnxSource, onnx_dtype

__all__ = ["write_model", "PROTOBUF_LIMIT"]

#: protobuf cannot serialize a message of 2 GiB or more (onnx.checker.MAXIMUM_PROTOBUF).
PROTOBUF_LIMIT = 2**31 - 1
_HEADROOM = 1 << 20
_ALIGN = 4096
_SLOT = "\x00weightkit-slot"
_EXTERNAL = 1
_DATA_FIELDS = ("raw_data", "float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")
_TENSOR, _GRAPH, _TENSORS, _GRAPHS, _SPARSE, _SPARSES = 4, 5, 9, 10, 11, 12


@dataclass
class _Slot:
    """One tensor's bytes to write: how many, and where to get them."""

    site: Any
    size: int
    pieces: Any  # () -> Iterable[bytes-like]


def write_model(model: Model, path: str | os.PathLike[str], *, force: bool = False,
                external_data: bool | None = None) -> None:
    """Save ``model.graph`` with ``model``'s tensors to ``path`` (see the module docstring)."""
    import onnx

    if not isinstance(model.graph, onnx.ModelProto):
        raise UnsupportedError("this model carries no ONNX graph, so it cannot be saved as .onnx",
                               hint="convert it to ONNX first (weightkit convert)")
    target = Path(path)
    proto = onnx.ModelProto()
    proto.CopyFrom(model.graph)
    _keep_records(proto, records(model))
    sources = model.resources(OnnxSource)
    tensors = _tensors_by_name(model)
    promoted = _promote_aliases(proto.graph, tensors, sources)
    if proto.ir_version <= 3:  # IR 3 lists every initializer among the graph inputs
        from onnx import helper

        proto.graph.input.extend(helper.make_tensor_value_info(name, ONNX_CODES.get(tensors[name].dtype, 0),
                                                               tensors[name].shape) for name in promoted)
    slots = _plan(proto, tensors, sources)
    total = proto.ByteSize() + sum(slot.size + 16 for slot in slots)
    if external_data is None:
        external_data = total > PROTOBUF_LIMIT - _HEADROOM
    inputs = tuple(model.input_files())  # the data file beside the output must not be one either
    if external_data:
        _write_external(proto, slots + _inline_slots(proto, slots), target, force, inputs)
    elif total > PROTOBUF_LIMIT - _HEADROOM:
        raise UsageError(f"the model needs about {total / 2**30:.1f} GiB, over protobuf's 2 GiB limit for one file",
                         hint="save it with external data (external_data=True)")
    else:
        _write_single(proto, slots, target, force, inputs)


def _keep_records(proto: Any, found: dict[str, str]) -> None:
    """weightkit's own records (the backbone a head was cut from, ...) as metadata_props entries."""
    kept = [(entry.key, entry.value) for entry in proto.metadata_props if entry.key not in found]
    del proto.metadata_props[:]
    for key, value in [*kept, *found.items()]:
        proto.metadata_props.add(key=key, value=value)


def _tensors_by_name(model: Model) -> dict[str, Tensor]:
    tensors = model.tensors() + [t for group in model.extras.values() for t in group]
    return {tensor.name: tensor for tensor in tensors}


# -- deciding where each tensor's bytes come from -----------------------------------------

def _plan(proto: Any, tensors: dict[str, Tensor], sources: list[OnnxSource]) -> list[_Slot]:
    """A slot for every tensor site whose bytes must be written; inline sites stay as they are."""
    slots = []
    for site, name in _sites(proto):
        tensor = tensors.get(name) if name else None
        slot = None
        if tensor is not None and not any(_unchanged(source, tensor, site) for source in sources):
            slot = _from_tensor(site, tensor)
        elif site.data_location == _EXTERNAL:
            slot = _from_source(site, name or site.name, sources)
        if slot is not None:
            slots.append(slot)
    return slots


def _inline_slots(proto: Any, planned: list[_Slot]) -> list[_Slot]:
    """For external data: big inline raw_data moves out too (as onnx's own converter does)."""
    taken = {id(slot.site) for slot in planned}
    slots = []
    for site, _ in _sites(proto):
        if id(site) not in taken and site.HasField("raw_data") and len(site.raw_data) >= STRIP_THRESHOLD:
            raw = site.raw_data
            slots.append(_Slot(site, len(raw), lambda raw=raw: (raw,)))
    return slots


def _promote_aliases(graph: Any, tensors: dict[str, Tensor], sources: list[OnnxSource]) -> list[str]:
    """A changed tensor named after an Identity's output (an exporter's copy of a shared weight)
    gets an initializer of its own in place of the Identity, so the change reaches the file."""
    promoted = []
    for index in reversed(range(len(graph.node))):
        node = graph.node[index]
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == _GRAPH else attr.graphs if attr.type == _GRAPHS else []:
                _promote_aliases(sub, tensors, sources)
        if node.op_type != "Identity" or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
            continue
        tensor = tensors.get(node.output[0])
        if tensor is None or any(source.is_original(tensor) for source in sources):
            continue
        del graph.node[index]
        graph.initializer.add(name=tensor.name)
        promoted.append(tensor.name)
    return promoted


def _unchanged(source: OnnxSource, tensor: Tensor, site: Any) -> bool:
    return (source.is_original(tensor) and tensor.shape == tuple(site.dims)
            and tensor.dtype == onnx_dtype(site.data_type))


def _from_tensor(site: Any, tensor: Tensor) -> _Slot | None:
    """Put a Model tensor in a site: new dims and type; its bytes in a slot (strings inline)."""
    if tensor.dtype not in ONNX_CODES:
        raise UnsupportedError(f"tensor {tensor.name!r} has type {tensor.dtype}, which ONNX cannot store")
    for field in (*_DATA_FIELDS, "external_data", "dims"):
        site.ClearField(field)
    site.data_location = 0
    site.dims.extend(tensor.shape)
    site.data_type = ONNX_CODES[tensor.dtype]
    if tensor.dtype == "string":
        from onnx import numpy_helper

        site.string_data.extend(numpy_helper.from_array(_checked(tensor)).string_data)
        return None
    return _Slot(site, tensor.nbytes, lambda: (_array_bytes(_checked(tensor), tensor.dtype),))


def _from_source(site: Any, name: str, sources: list[OnnxSource]) -> _Slot:
    """Copy an external tensor's bytes from the file they are in (the .onnx itself or external data)."""
    if not sources:
        raise UnsupportedError(f"tensor {name!r} is external data, and the model has no file to read it from",
                               hint="load the data first (onnx.load_external_data_for_model)")
    source = next((s for s in sources if s.owns(site)), sources[0])
    where = source.span(site, name)
    site.ClearField("external_data")
    site.data_location = 0
    return _Slot(site, where.length, lambda: source.iter_bytes(where))


def _checked(tensor: Tensor) -> np.ndarray:
    array = np.asarray(tensor.read())
    if array.shape != tensor.shape or dtypes.from_numpy(array.dtype) != tensor.dtype:
        raise UsageError(f"tensor {tensor.name!r} reads as {dtypes.from_numpy(array.dtype)}{list(array.shape)} "
                         f"but says it is {tensor.dtype}{list(tensor.shape)}",
                         hint="set the tensor's shape and dtype to match its data")
    return array


def _array_bytes(array: np.ndarray, dtype: str) -> Any:
    """The little-endian bytes ONNX's raw_data holds for an array (4- and 2-bit types packed)."""
    if dtypes.bits_of(dtype) < 8:
        from onnx import numpy_helper

        return numpy_helper.from_array(array).raw_data
    array = np.ascontiguousarray(array)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        array = array.byteswap()
    return array.reshape(-1).view(np.uint8).data  # a memoryview of the same bytes


def _sites(proto: Any) -> Iterator[tuple[Any, str | None]]:
    """Every TensorProto of a model, with the name weightkit's reader gives it (None: not a Tensor)."""
    yield from _graph_sites(proto.graph)
    for training in proto.training_info:
        yield from _graph_sites(training.initialization)
        yield from _graph_sites(training.algorithm)
    for function in proto.functions:
        for node in function.node:
            yield from _node_sites(node)


def _graph_sites(graph: Any) -> Iterator[tuple[Any, str | None]]:
    for init in graph.initializer:
        yield init, init.name
    for sparse in graph.sparse_initializer:
        yield sparse.values, None
        yield sparse.indices, None
    for node in graph.node:
        yield from _node_sites(node)


def _node_sites(node: Any) -> Iterator[tuple[Any, str | None]]:
    constant = node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.output) == 1
    for attr in node.attribute:
        if attr.type == _TENSOR:
            yield attr.t, node.output[0] if constant and attr.name == "value" else None
        elif attr.type == _TENSORS:
            yield from ((t, None) for t in attr.tensors)
        elif attr.type in (_SPARSE, _SPARSES):
            for sparse in [attr.sparse_tensor] if attr.type == _SPARSE else attr.sparse_tensors:
                yield sparse.values, None
                yield sparse.indices, None
        elif attr.type in (_GRAPH, _GRAPHS):
            for graph in [attr.g] if attr.type == _GRAPH else attr.graphs:
                yield from _graph_sites(graph)


# -- writing ---------------------------------------------------------------------------

def _write_single(proto: Any, slots: list[_Slot], target: Path, force: bool, inputs: tuple) -> None:
    """One .onnx file: mark each slot's site, serialize the small skeleton, then expand the marks."""
    for index, slot in enumerate(slots):
        _set_external(slot.site, _SLOT, index, slot.size)
    skeleton = proto.SerializeToString()
    needle = _SLOT.encode()

    def expand(buf: Any, start: int, end: int) -> list[wire.Chunk] | None:
        found = list(wire.fields(buf, start, end))
        index = _slot_index(buf, found)
        if index is None or index >= len(slots):
            return None
        payload = wire.Payload(slots[index].size, slots[index].pieces)
        before = [buf[f.start:f.end] for f in found if f.number < 9]  # raw_data in field order, as protobuf writes
        after = [buf[f.start:f.end] for f in found if f.number > 9 and f.number not in (13, 14)]
        return [*before, wire.encode_len_header(9, payload.size), payload, *after]

    chunks = wire.rewrite(skeleton, 0, len(skeleton), expand, needle=needle) or [skeleton]
    with atomic_output(target, force=force, inputs=inputs) as temporary, open(temporary, "wb") as out:
        for chunk in chunks:
            if isinstance(chunk, wire.Payload):
                _write_pieces(out, chunk.produce(), chunk.size)
            else:
                out.write(chunk)


def _slot_index(buf: bytes, found: list[wire.Field]) -> int | None:
    """The slot a tensor was marked with, from its external_data entries."""
    entries = {}
    for field in found:
        if field.number == 13 and field.wire == wire.LEN:
            pair = {f.number: buf[f.value_start:f.end] for f in wire.fields(buf, field.value_start, field.end)}
            entries[pair.get(1, b"")] = pair.get(2, b"")
    if entries.get(b"location") != _SLOT.encode():
        return None
    return parse_size(entries.get(b"offset", b"").decode("ascii", "replace"))


def _write_external(proto: Any, slots: list[_Slot], target: Path, force: bool, inputs: tuple) -> None:
    """Big tensors to ``<name>.data`` (aligned), small ones inline, then the model file."""
    data_name = f"{target.name}.data"
    outside = [slot for slot in slots if slot.size >= STRIP_THRESHOLD]
    for slot in slots:
        if slot.size < STRIP_THRESHOLD:
            slot.site.raw_data = b"".join(bytes(piece) for piece in slot.pieces())
    with atomic_output(target, force=force, inputs=inputs) as temporary_model:
        if outside:
            with atomic_output(target.parent / data_name, force=force, inputs=inputs) as temporary_data:
                with open(temporary_data, "wb") as data:
                    for slot in outside:
                        offset = data.tell() + (-data.tell() % _ALIGN)
                        data.write(b"\0" * (offset - data.tell()))
                        _write_pieces(data, slot.pieces(), slot.size)
                        _set_external(slot.site, data_name, offset, slot.size)
                blob = proto.SerializeToString()  # before the data file is renamed into place
        else:
            blob = proto.SerializeToString()
        temporary_model.write_bytes(blob)


def _set_external(site: Any, location: str, offset: int, length: int) -> None:
    for field in (*_DATA_FIELDS, "external_data"):
        site.ClearField(field)
    site.data_location = _EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = site.external_data.add()
        entry.key, entry.value = key, value


def _write_pieces(out: Any, pieces: Iterable[Any], size: int) -> None:
    written = 0
    for piece in pieces:
        out.write(piece)
        written += memoryview(piece).nbytes
    if written != size:
        raise UsageError(f"a tensor produced {written} bytes where {size} were expected",
                         hint="a tensor's data no longer matches its shape and dtype")
