"""What every emitter receives (`LayerCall`) and the registry that maps Keras class names to emitters.

An emitter turns one call of one Keras layer into ONNX nodes and returns the
call's output `Value`s. A family module registers its emitters with `emits`
(layer classes) or `emits_op` (Keras 3 operations such as ``keras.src.ops.numpy.Add``),
optionally with a ``check`` that names what in a config it cannot convert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np

from ...errors import FileFormatError
from ...formats.keras import ConfigLayer
from ...formats.keras.shapes import layer_output_shape
from ...model import Layer, Tensor
from ..builder import GraphBuilder, Value
from ..nodes import Call

__all__ = ["LayerCall", "Emitter", "LAYERS", "OPS", "emits", "emits_op", "option"]


@dataclass
class LayerCall:
    """One call of a Keras layer, with its inputs already in the graph.

    Attributes:
        layer: the layer's parsed config.
        path: where the layer sits (``outer/inner``): its weights' path and its nodes' names.
        call: the call's record; ``args`` and ``kwargs`` hold its arguments with tensors as `Value`s.
        inputs: the tensors fed to the call, in order.
        weights: the file's layer at ``path`` (None if it has no weights in the file).
    """

    layer: ConfigLayer
    path: str
    call: Call
    inputs: list[Value]
    args: list[Any] = field(default_factory=list)
    weights: Layer | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        return self.layer.config

    def tensor(self, role: str, sole: bool = False) -> Tensor | None:
        """The layer's weight with ``role`` (``weight``, ``bias``, ``running_mean``...), if the file has it.

        With ``sole``, a layer's only weight answers whatever its name (Keras 3 names
        LayerScale's gamma ``variable`` in ``.h5`` files).
        """
        if self.weights is None:
            return None
        found = self.weights.tensors.get(role)
        if found is None and sole and len(self.weights.tensors) == 1:
            found = next(iter(self.weights.tensors.values()))
        return found

    @overload
    def array(self, role: str, required: Literal[True] = True, sole: bool = False,
              expect: tuple[Any, ...] | None = None) -> np.ndarray: ...

    @overload
    def array(self, role: str, required: bool, sole: bool = False,
              expect: tuple[Any, ...] | None = None) -> np.ndarray | None: ...

    def array(self, role: str, required: bool = True, sole: bool = False,
              expect: tuple[Any, ...] | None = None) -> np.ndarray | None:
        """The weight's data; FileFormatError if ``required`` and the file lacks it, or if its shape is not
        ``expect`` (None in ``expect`` matches any size)."""
        tensor = self.tensor(role, sole)
        if tensor is None:
            if required:
                have = ", ".join(self.weights.tensors) if self.weights and self.weights.tensors else "none"
                raise FileFormatError(f"layer {self.path!r} ({self.layer.class_name}) has no {role!r} weight "
                                      f"in the file (it has: {have})",
                                      hint="the weights do not belong to this architecture")
            return None
        if expect is not None and not _fits(tensor.shape, expect):
            wanted = "(" + ", ".join("?" if d is None else str(d) for d in expect) + ")"
            raise FileFormatError(f"layer {self.path!r} ({self.layer.class_name}): its {role!r} weight has shape "
                                  f"{tuple(tensor.shape)}, the architecture needs {wanted}",
                                  hint="the weights do not belong to this architecture")
        return np.asarray(tensor.read())

    def output_shape(self) -> tuple[Any, ...] | None:
        """The Keras output shape from `weightkit.formats.keras` shape rules (None where unknown)."""
        return layer_output_shape(self.layer, [v.shape for v in self.inputs])

    def output(self, name: str, like: Value) -> Value:
        """The call's output: tensor ``name`` in ``like``'s layout with the Keras output shape."""
        return Value(name, self.output_shape(), like.perm)


def _fits(shape: tuple[int, ...], expect: tuple[Any, ...]) -> bool:
    return len(shape) == len(expect) and all(e is None or not isinstance(e, int) or s == e
                                             for s, e in zip(shape, expect))


Emit = Callable[[GraphBuilder, LayerCall], list[Value]]
Check = Callable[[ConfigLayer], str | None]


@dataclass
class Emitter:
    """An emitter and, optionally, the check that says which configs it cannot convert."""

    emit: Emit
    check: Check | None = None

    def problem(self, layer: ConfigLayer) -> str | None:
        return self.check(layer) if self.check else None


#: Keras layer class name → emitter.
LAYERS: dict[str, Emitter] = {}
#: Keras 3 operation class name (``keras.src.ops...``) → emitter.
OPS: dict[str, Emitter] = {}


def emits(*class_names: str, check: Check | None = None) -> Callable[[Emit], Emit]:
    """Register the decorated function as the emitter of ``class_names``."""
    return _registering(LAYERS, class_names, check)


def emits_op(*class_names: str, check: Check | None = None) -> Callable[[Emit], Emit]:
    """Register the decorated function as the emitter of Keras 3 operations ``class_names``."""
    return _registering(OPS, class_names, check)


def _registering(table: dict[str, Emitter], class_names: tuple[str, ...],
                 check: Check | None) -> Callable[[Emit], Emit]:
    def register(function: Emit) -> Emit:
        for name in class_names:
            table[name] = Emitter(function, check)
        return function
    return register


def option(config: dict[str, Any], *names: str, default: Any = None) -> Any:
    """The first of ``names`` present and not None in ``config`` (Keras 2 and 3 spell a few options differently)."""
    for name in names:
        if name in config and config[name] is not None:
            return config[name]
    return default
