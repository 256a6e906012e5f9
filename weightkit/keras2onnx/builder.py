"""The ONNX graph under construction: nodes, initializers, unique names, and tensor layouts.

Every tensor is a `Value` that remembers its Keras shape and how its ONNX axes
relate to Keras's (``perm``: the ONNX tensor is the Keras tensor transposed by it).
Emitters ask for the layout they need (`channels_first`, `keras_order`) and the
builder inserts one Transpose per value and layout, reused by every later user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..model import Dim
from .proto import Initializer, Node

__all__ = ["Value", "GraphBuilder", "channels_first_perm", "identity"]

Shape = tuple[Dim, ...]


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def channels_first_perm(rank: int) -> tuple[int, ...]:
    """Keras channels-last → channels-first: ``(0, r-1, 1, ..., r-2)``; NHWC → NCHW for rank 4."""
    return (0, rank - 1, *range(1, rank - 1)) if rank >= 3 else identity(rank)


@dataclass(frozen=True)
class Value:
    """A tensor of the graph: its ONNX name, its Keras shape, and its ONNX axis order."""

    name: str
    shape: Shape | None
    perm: tuple[int, ...] | None = None  # None: same order as Keras

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    def axes(self) -> tuple[int, ...]:
        """The Keras axis at each ONNX axis."""
        if self.perm is not None:
            return self.perm
        return identity(self.rank or 0)

    def onnx_axis(self, keras_axis: int) -> int:
        """Where Keras axis ``keras_axis`` (negative allowed) is in the ONNX tensor."""
        rank = self.rank
        if rank is None:
            raise ValueError(f"{self.name}: rank unknown")
        return self.axes().index(keras_axis % rank)

    def onnx_shape(self) -> Shape | None:
        if self.shape is None:
            return None
        return tuple(self.shape[axis] for axis in self.axes())

    def with_name(self, name: str, shape: Shape | None | Literal[True] = True) -> Value:
        """The same layout under another name (and shape, if given; True keeps this one's)."""
        return Value(name, self.shape if shape is True else shape, self.perm)


class GraphBuilder:
    """Collects nodes and initializers; every name it hands out is unique in the graph.

    Args:
        opset: the ONNX opset the graph targets (emitters branch on it).
        keras_major: 1, 2 or 3 — which Keras wrote the config (activation definitions differ).
    """

    def __init__(self, opset: int, keras_major: int = 3):
        self.opset = opset
        self.keras_major = keras_major
        self.nodes: list[Node] = []
        self.initializers: list[Initializer] = []
        self.warnings: list[str] = []
        self.layer_nodes: dict[str, list[str]] = {}
        self.layer_classes: dict[str, str] = {}
        self._names: set[str] = set()
        self._weights: dict[tuple[str, ...], str] = {}
        self._relayouts: dict[tuple[str, tuple[int, ...]], Value] = {}
        self._current: str | None = None

    # -- names and records ------------------------------------------------------------------
    def unique(self, name: str) -> str:
        """``name``, or ``name_1``, ``name_2``... if taken."""
        candidate, counter = name, 0
        while candidate in self._names:
            counter += 1
            candidate = f"{name}_{counter}"
        self._names.add(candidate)
        return candidate

    def begin_layer(self, path: str, class_name: str) -> None:
        """Attribute the nodes added from now on to Keras layer ``path`` (for the report)."""
        self._current = path
        self.layer_nodes.setdefault(path, [])
        self.layer_classes[path] = class_name

    # -- nodes ------------------------------------------------------------------------------
    def node(self, op: str, inputs: Sequence[str], name: str, **attrs: Any) -> str:
        """Add one single-output node named after ``name`` (made unique); returns its output name."""
        return self._add_node(op, inputs, name, 1, attrs)[0]

    def multi_node(self, op: str, inputs: Sequence[str], name: str, *, outputs: int, **attrs: Any) -> list[str]:
        """Add one node with ``outputs`` outputs (named ``name:0``, ``name:1``...); returns their names."""
        return self._add_node(op, inputs, name, outputs, attrs)

    def _add_node(self, op: str, inputs: Sequence[str], name: str, outputs: int, attrs: dict[str, Any]) -> list[str]:
        node_name = self.unique(name)
        names = [node_name] if outputs == 1 else [self.unique(f"{node_name}:{i}") for i in range(outputs)]
        attrs = {key: value for key, value in attrs.items() if value is not None}
        self.nodes.append(Node(op, list(inputs), names, node_name, attrs))
        if self._current is not None:
            self.layer_nodes[self._current].append(node_name)
        return names

    def value(self, op: str, inputs: Sequence[str], name: str, like: Value,
              shape: Shape | None | Literal[True] = True, **attrs: Any) -> Value:
        """Add a node whose single output has ``like``'s layout (and shape unless given)."""
        output = self.node(op, inputs, name, **attrs)
        return like.with_name(output, shape)

    # -- initializers -----------------------------------------------------------------------
    def constant(self, array: Any, name: str, dtype: Any = np.float32) -> str:
        """A new initializer holding ``array`` (cast to ``dtype``, little-endian)."""
        unique = self.unique(name)
        data = np.ascontiguousarray(np.asarray(array, dtype=np.dtype(dtype).newbyteorder("<")))
        self.initializers.append(Initializer(unique, data))
        return unique

    def weight(self, key: tuple[str, ...], name: str, make: Callable[[], np.ndarray]) -> str:
        """An initializer made once per ``key``: a layer called twice shares its weights."""
        found = self._weights.get(key)
        if found is None:
            found = self._weights[key] = self.constant(make(), name)
        return found

    def ints(self, values: Sequence[int], name: str) -> str:
        """An int64 initializer (shapes, axes, pads), shared by equal values."""
        key = ("__ints__", *(str(int(v)) for v in values))
        found = self._weights.get(key)
        if found is None:
            found = self._weights[key] = self.constant(np.asarray(values, dtype=np.int64), name, np.int64)
        return found

    def scalar(self, number: float, name: str) -> str:
        """A float32 scalar initializer, shared by equal values."""
        key = ("__scalar__", repr(float(np.float32(number))))
        found = self._weights.get(key)
        if found is None:
            found = self._weights[key] = self.constant(np.float32(number), name)
        return found

    # -- layouts ----------------------------------------------------------------------------
    def relayout(self, value: Value, perm: tuple[int, ...]) -> Value:
        """``value`` with its ONNX axes in order ``perm`` of Keras axes (one Transpose, cached)."""
        current = value.axes()
        if tuple(perm) == current:
            return value
        key = (value.name, tuple(perm))
        found = self._relayouts.get(key)
        if found is None:
            steps = [current.index(axis) for axis in perm]
            output = self.node("Transpose", [value.name], f"{value.name}/to_{_layout_label(perm)}", perm=steps)
            found = Value(output, value.shape, None if tuple(perm) == identity(len(perm)) else tuple(perm))
            self._relayouts[key] = found
        return found

    def keras_order(self, value: Value) -> Value:
        """``value`` with ONNX axes in Keras's own order (NHWC for images)."""
        return self.relayout(value, identity(_rank(value)))

    def channels_first(self, value: Value) -> Value:
        """``value`` with the Keras channel axis (last) moved to axis 1 (NCHW for images)."""
        return self.relayout(value, channels_first_perm(_rank(value)))

    def broadcast_constant(self, array: Any, like: Value, name: str) -> str:
        """An initializer that broadcasts against ``like`` as ``array`` does in Keras (NumPy rules)."""
        array = np.asarray(array, dtype=np.float64)
        rank = _rank(like)
        if array.ndim == 0:
            return self.scalar(float(array), name)
        if array.ndim > rank:
            raise ValueError(f"constant of shape {array.shape} does not broadcast against rank {rank}")
        array = array.reshape((1,) * (rank - array.ndim) + array.shape)
        return self.constant(array.transpose(like.axes()), name)

    def align(self, values: Sequence[Value], name: str, expand_at: int = 0) -> list[Value]:
        """Operands of an elementwise op in one layout, so that ONNX broadcasting equals Keras's.

        A lower-rank operand gets size-1 axes inserted at ``expand_at``: 0 is NumPy's rule
        (Keras operations), 1 is Keras merge layers' (``(N, C)`` with ``(N, H, W, C)`` → ``(N, 1, 1, C)``).
        """
        known = [v for v in values if v.rank is not None]
        if len(known) < len(values):
            return [self.keras_order(v) if v.perm else v for v in values]
        rank = max(_rank(v) for v in known)
        target = next((v.axes() for v in known if v.rank == rank and v.perm is not None), identity(rank))
        aligned = []
        for index, value in enumerate(values):
            if value.rank != rank and (expand_at or target != identity(rank)):
                value = self.keras_order(value)
                known_shape = _shape(value)
                missing = list(range(expand_at, expand_at + rank - len(known_shape)))
                shape = tuple(known_shape[:expand_at]) + (1,) * len(missing) + tuple(known_shape[expand_at:])
                value = Value(self.unsqueeze(value.name, missing, f"{name}/expand{index}"), shape)
            aligned.append(self.relayout(value, target) if value.rank == rank else value)
        return aligned

    # -- opset-dependent helpers ------------------------------------------------------------
    def reduce(self, op: str, value: str, axes: Sequence[int], name: str, keepdims: bool) -> str:
        """A Reduce* node over ``axes`` (an input from opset 18, ReduceSum from 13; before, an attribute)."""
        as_input = self.opset >= 18 or (op == "ReduceSum" and self.opset >= 13)
        if as_input:
            return self.node(op, [value, self.ints(list(axes), "axes")], name, keepdims=int(keepdims))
        return self.node(op, [value], name, axes=list(axes), keepdims=int(keepdims))

    def unsqueeze(self, value: str, axes: Sequence[int], name: str) -> str:
        return self.node("Unsqueeze", [value, self.ints(list(axes), "axes")], name)

    def squeeze(self, value: str, axes: Sequence[int], name: str) -> str:
        return self.node("Squeeze", [value, self.ints(list(axes), "axes")], name)


def _rank(value: Value) -> int:
    if value.rank is None:
        raise ValueError(f"the rank of {value.name!r} is unknown")
    return value.rank


def _shape(value: Value) -> Shape:
    if value.shape is None:
        raise ValueError(f"the shape of {value.name!r} is unknown")
    return value.shape


def _layout_label(perm: tuple[int, ...]) -> str:
    if perm == identity(len(perm)):
        return "keras_order"
    if perm == channels_first_perm(len(perm)):
        return "channels_first"
    return "perm_" + "".join(map(str, perm))
