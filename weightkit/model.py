"""The common model every reader produces and every operation consumes.

A `Model` is an ordered list of `Layer`s; a layer holds its `Tensor`s by role.
Tensors know their shape and dtype from the file's metadata and read their data
only when asked, so looking at a file never reads its weights.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from . import dtypes

__all__ = ["Tensor", "Layer", "Model", "TensorSpec", "Dim", "Resource"]

#: A dimension: a size, a symbolic name (ONNX ``"batch"``), or None when unknown.
Dim = int | str | None


@dataclass(eq=False)
class Tensor:
    """One named array in a file, read lazily.

    Attributes:
        name: the name the file gives it (``conv1/kernel:0``, ``layer1.0.conv1.weight``).
        shape: its shape as stored.
        dtype: element type name (see `weightkit.dtypes`).
        role: what it is to its layer, in one vocabulary across frameworks
            (``weight``, ``bias``, ``running_mean``, ``running_var``, ...).
        layout: axis order where it is a kernel (``HWIO``, ``OIHW``, ``IO``, ``OI``, ``HWCM``).
        trainable: True/False where the file says, None where it cannot be known.
        note: anything the reader could not represent (a quantization scheme, ...).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    role: str = ""
    layout: str | None = None
    trainable: bool | None = None
    note: str | None = None
    loader: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def from_array(cls, name: str, array: np.ndarray, **fields: Any) -> Tensor:
        """A tensor whose data is already in memory (for writers and tests)."""
        array = np.asarray(array)
        return cls(name, tuple(array.shape), dtypes.from_numpy(array.dtype), loader=lambda: array, **fields)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes the data takes (as stored: sub-byte types packed)."""
        return dtypes.nbytes_of(self.dtype, self.size)

    def read(self) -> np.ndarray:
        """Read the data from the file: a numpy array of ``shape``.

        Raises:
            UnsupportedError: the tensor has no data weightkit can read (a dtype or layout it does not decode).
            UnsafeFileError: the file asks for more memory than the machine has (or a limit of
                `weightkit.limits` allows) to hold this tensor.
            FileFormatError: the data is missing or broken (truncated file, bad compression, ...).
            ModelClosedError: the model was closed before the read.
        """
        if self.loader is None:
            from .errors import UnsupportedError

            raise UnsupportedError(f"tensor {self.name!r} has no readable data ({self.note or self.dtype})")
        try:
            return self.loader()
        except MemoryError as exc:  # a reader allocated what the file declares and the machine has not
            from .errors import UnsafeFileError

            raise UnsafeFileError(f"tensor {self.name!r} ({self.dtype}{list(self.shape)}) needs more memory to "
                                  f"read than is available ({exc or 'MemoryError'})",
                                  hint="the file may declare a size it does not hold; if you trust it, read it on "
                                       "a machine with more memory") from exc

    def __repr__(self) -> str:
        layout = f" {self.layout}" if self.layout else ""
        return f"<Tensor {self.name!r} {self.dtype}{list(self.shape)}{layout}>"


@dataclass(eq=False)
class Layer:
    """A layer: its tensors by role, and where the file says so, its type, config and inputs.

    Attributes:
        name: the layer's name (Keras layer name, PyTorch module path, ONNX node name).
        kind: normalized kind: ``conv2d``, ``depthwise_conv2d``, ``dense``, ``batch_norm``, ...
            or ``unknown``.
        type_name: the framework's own class or op name (``Conv2D``, ``Conv``), if known.
        config: the framework's config for the layer, if the file has one.
        tensors: tensors by role, in the order the file keeps them.
        inbound: names of the layers feeding this one, where the file has a graph.
        layers: sublayers, for a model used as a layer (nested Keras models).
        stored_as: where the file keeps the layer when that is not its name: a Keras 3
            store's group (``conv2d_1``, named after the class), which is what Keras 3 loads by.
    """

    name: str
    kind: str = "unknown"
    type_name: str | None = None
    config: dict[str, Any] | None = field(default=None, repr=False)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    inbound: list[str] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    stored_as: str | None = None

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """Yield ``(path, layer)`` for this layer and every sublayer, depth first."""
        path = f"{prefix}/{self.name}" if prefix else self.name
        yield path, self
        for sub in self.layers:
            yield from sub.walk(path)

    def all_tensors(self) -> list[Tensor]:
        """Tensors of this layer and of all its sublayers."""
        return [t for _, layer in self.walk() for t in layer.tensors.values()]

    @property
    def num_params(self) -> int:
        return sum(t.size for t in self.all_tensors())

    def __repr__(self) -> str:
        kind = self.type_name or self.kind
        return f"<Layer {self.name!r} {kind} tensors={len(self.tensors)} sublayers={len(self.layers)}>"


@dataclass
class TensorSpec:
    """A graph input or output: name, shape (dims may be symbolic or None), dtype."""

    name: str
    shape: tuple[Dim, ...] | None
    dtype: str | None = None


class Resource(Protocol):
    """An open file (or a model over files) that lazy tensors read from.

    It may also name the files it reads, as ``input_files()`` or a ``path`` attribute.
    """

    def close(self) -> None: ...


ResourceType = TypeVar("ResourceType")


class _Held:
    """A resource and how many models keep it open: the last one to close closes it."""

    __slots__ = ("resource", "holders")

    def __init__(self, resource: Resource):
        self.resource = resource
        self.holders = 0

    def release(self) -> None:
        self.holders -= 1
        if self.holders == 0:
            self.resource.close()

    def files(self) -> list[Path]:
        named = getattr(self.resource, "input_files", None)
        if callable(named):
            return [Path(p) for p in named()]
        path = getattr(self.resource, "path", None)
        return [Path(path)] if path is not None else []


@dataclass(eq=False)
class Model:
    """What a file holds, in one shape for every format.

    Attributes:
        layers: top-level layers in the file's order.
        format: the file layout, e.g. ``keras-h5``, ``keras-weights-h5``, ``keras-v3-weights``,
            ``keras-zip``, ``torch-zip``, ``safetensors``, ``onnx``.
        framework: ``keras``, ``pytorch``, ``onnx`` ... and its version where recorded.
        has_graph: True when the file holds an architecture, not only weights.
        inputs, outputs: graph inputs and outputs where known.
        metadata: what the file says about itself (writer, backend, dates, ...).
        extras: tensors that belong to no layer, by group (``optimizer``, ``top_level``).
        config: the framework's architecture description, if the file has one.
        source: the path it was read from.
        graph: the framework's own graph object where a writer needs one to write the model
            back (ONNX: an ``onnx.ModelProto``; see docs/onnx.md), else None.
    """

    layers: list[Layer] = field(default_factory=list)
    format: str = "unknown"
    framework: str | None = None
    framework_version: str | None = None
    has_graph: bool = False
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, list[Tensor]] = field(default_factory=dict)
    config: dict[str, Any] | None = field(default=None, repr=False)
    source: str | None = None
    graph: Any = field(default=None, repr=False)
    _held: list[_Held] = field(default_factory=list, repr=False)
    _read_from: list[Path] = field(default_factory=list, repr=False)

    def walk(self) -> Iterator[tuple[str, Layer]]:
        """Yield ``(path, layer)`` for every layer and sublayer, depth first."""
        for layer in self.layers:
            yield from layer.walk()

    def tensors(self) -> list[Tensor]:
        """Every layer tensor, in file order (extras not included)."""
        return [t for _, layer in self.walk() for t in layer.tensors.values()]

    def layer(self, path: str) -> Layer:
        """The layer at ``path`` (``name`` or ``outer/inner``); KeyError if absent."""
        for layer_path, layer in self.walk():
            if layer_path == path:
                return layer
        raise KeyError(path)

    @property
    def num_params(self) -> int:
        return sum(t.size for t in self.tensors())

    def adopt(self, resource: Resource) -> None:
        """Make ``resource`` this model's: it is closed when the model (and every model sharing it) is."""
        held = _Held(resource)
        held.holders = 1
        self._held.append(held)

    def share_resources(self, other: Model) -> None:
        """Keep ``other``'s open files alive while this model is open (parts cut from it, models joined from it).

        Closing either model then leaves the other readable; the files close with the last of them.
        ``other``'s input files become this model's too (see `input_files`).
        """
        for path in other.input_files():
            self.add_input_file(path)
        for held in other._held:
            if held not in self._held:
                held.holders += 1
                self._held.append(held)

    def resources(self, kind: type[ResourceType]) -> list[ResourceType]:
        """The open resources of type ``kind`` this model reads from (an ONNX writer wants its `OnnxSource`)."""
        return [held.resource for held in self._held if isinstance(held.resource, kind)]

    def add_input_file(self, path: str | os.PathLike[str]) -> None:
        """Record a file the model was made from but does not keep open (an architecture file given apart)."""
        if Path(path) not in self._read_from:
            self._read_from.append(Path(path))

    def input_files(self) -> list[Path]:
        """Every file this model was read from (its source, shards, external data, an architecture file, the
        files of the models it was cut or joined from): writers never replace any of them."""
        files = [Path(self.source)] if self.source else []
        for held in self._held:
            files.extend(held.files())
        files.extend(self._read_from)
        return list(dict.fromkeys(files))

    def __post_init__(self) -> None:
        # A model dropped without close() still lets go of its files when it is collected.
        weakref.finalize(self, _release_all, self._held)

    def close(self) -> None:
        """Release this model's hold on its files; tensors can no longer be read from it after this."""
        _release_all(self._held)

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Model {self.format} layers={len(self.layers)} params={self.num_params}>"


def _release_all(held: list[_Held]) -> None:
    """Let go of every resource in ``held`` (each closes with its last holder), leaving it empty."""
    for item in reversed(held):
        item.release()
    held.clear()
