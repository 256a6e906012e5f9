"""Walking a Keras config in graph order and emitting each call of each layer.

Functional models are run node by node: a call is emitted once every tensor it
reads exists (Keras's own deserializer works the same way, so shared layers and
configs listed out of order work). Sequential models chain their layers. A model
used as a layer is walked recursively under its name, so its layers' weights are
found at ``outer/inner`` and a model called twice shares its initializers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import FileFormatError, UnsupportedError
from ..keras_arch import ConfigLayer
from ..model import Layer
from .builder import GraphBuilder, Value
from .layers import LayerCall, emitter_for
from .nodes import Call, TensorRef, endpoints, layer_calls, raw_layers

__all__ = ["ModelWalker"]

Key = tuple[str, int, int]


@dataclass
class _Pending:
    layer: ConfigLayer
    record: dict[str, Any]
    node: int  # the node index other calls use to refer to this call
    call: Call


class ModelWalker:
    """Emits a whole Keras model (and the models nested in it) into one `GraphBuilder`.

    Args:
        builder: where nodes and initializers go.
        weights: the file's layers by path (``conv1``, ``outer/inner``).
    """

    def __init__(self, builder: GraphBuilder, weights: dict[str, Layer]):
        self.builder = builder
        self.weights = weights

    def run(self, model: ConfigLayer, record: dict[str, Any], inputs: list[Value], prefix: str = "") -> list[Value]:
        """Emit ``model`` applied to ``inputs``; returns its output values in order."""
        if model.class_name == "Sequential" or not (model.input_names or model.output_names):
            return self._run_sequential(model, record, inputs, prefix)
        return self._run_functional(model, record, inputs, prefix)

    # -- Sequential ------------------------------------------------------------------------
    def _run_sequential(self, model: ConfigLayer, record: dict[str, Any], inputs: list[Value],
                        prefix: str) -> list[Value]:
        if len(inputs) != 1:
            raise UnsupportedError(f"Sequential model {model.name!r} called with {len(inputs)} inputs")
        current = inputs[0]
        for layer, layer_record in zip(model.layers, raw_layers(record)):
            if layer.class_name == "InputLayer":
                continue
            call = Call([TensorRef("<previous>")])
            outputs = self._emit(layer, layer_record, call, [current], [current], _join(prefix, layer.name))
            if len(outputs) != 1:
                raise UnsupportedError(f"layer {layer.name!r} in a Sequential model gives {len(outputs)} outputs")
            current = outputs[0]
        return [current]

    # -- Functional ------------------------------------------------------------------------
    def _run_functional(self, model: ConfigLayer, record: dict[str, Any], inputs: list[Value],
                        prefix: str) -> list[Value]:
        values: dict[Key, Value] = {}
        input_refs = endpoints(model.config, "input_layers")
        if len(input_refs) != len(inputs):
            raise FileFormatError(f"model {model.name!r} declares {len(input_refs)} inputs but is called "
                                  f"with {len(inputs)}")
        for ref, value in zip(input_refs, inputs):
            values[(ref.layer, ref.node, ref.tensor)] = value
        pending = self._pending(model, record, {ref.layer for ref in input_refs})
        while pending:
            remaining = [item for item in pending if not self._try(item, values, prefix)]
            if len(remaining) == len(pending):
                raise FileFormatError(_stuck(model, remaining, values))
            pending = remaining
        outputs = []
        for ref in endpoints(model.config, "output_layers"):
            key = (ref.layer, ref.node, ref.tensor)
            if key not in values:
                raise FileFormatError(f"model {model.name!r} names output {list(key)}, which no layer produces")
            outputs.append(values[key])
        return outputs

    def _pending(self, model: ConfigLayer, record: dict[str, Any], inputs: set[str]) -> list[_Pending]:
        items: list[tuple[ConfigLayer, dict[str, Any], list[Call]]] = []
        referenced: dict[str, list[int]] = {}
        for layer, layer_record in zip(model.layers, raw_layers(record)):
            calls = layer_calls(layer_record)
            if layer.class_name == "InputLayer" and layer.name in inputs:
                continue
            items.append((layer, layer_record, calls))
            for call in calls:
                for ref in call.tensors():
                    referenced.setdefault(ref.layer, []).append(ref.node)
        for ref in endpoints(model.config, "output_layers"):
            referenced.setdefault(ref.layer, []).append(ref.node)
        pending = []
        for layer, layer_record, calls in items:
            offset = _node_offset(layer, calls, referenced.get(layer.name, []))
            pending.extend(_Pending(layer, layer_record, offset + i, call) for i, call in enumerate(calls))
        return pending

    def _try(self, item: _Pending, values: dict[Key, Value], prefix: str) -> bool:
        refs = item.call.tensors()
        keys = [(r.layer, r.node, r.tensor) for r in refs]
        if any(key not in values for key in keys):
            return False
        args = _substitute(item.call.args, values)
        outputs = self._emit(item.layer, item.record, item.call, [values[k] for k in keys], args,
                             _join(prefix, item.layer.name))
        for index, value in enumerate(outputs):
            values[(item.layer.name, item.node, index)] = value
        return True

    # -- one call --------------------------------------------------------------------------
    def _emit(self, layer: ConfigLayer, record: dict[str, Any], call: Call, inputs: list[Value], args: list[Any],
              path: str) -> list[Value]:
        if layer.is_model:
            return self.run(layer, record, inputs, path)
        emitter = emitter_for(layer, call)
        if emitter is None:
            raise UnsupportedError(f"no converter for layer {path!r} ({layer.class_name})")
        if not inputs:
            raise FileFormatError(f"layer {path!r} ({layer.class_name}) is called without inputs")
        self.builder.begin_layer(path, layer.class_name)
        context = LayerCall(layer, path, call, inputs, args, self.weights.get(path))
        try:
            return emitter.emit(self.builder, context)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UnsupportedError(f"layer {path!r} ({layer.class_name}) cannot be converted: "
                                   f"{type(exc).__name__}: {exc}") from exc


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _node_offset(layer: ConfigLayer, calls: list[Call], referenced: list[int]) -> int:
    """How the config numbers a nested model's calls: from 1 where its node 0 is its own construction.

    Keras 3 counts from 1 for Functional models and from 0 for Sequential ones;
    tf.keras and Keras 2 count from 1 for models built on an Input. References past
    the last recorded call settle it either way.
    """
    if not layer.is_model or not calls:
        return 0
    if referenced and max(referenced) >= len(calls):
        return 1
    if referenced and min(referenced) == 0:
        return 0
    legacy = calls[0].legacy
    if layer.class_name == "Sequential":
        first = layer.layers[0].class_name if layer.layers else ""
        return 1 if legacy and first == "InputLayer" else 0
    return 1


def _substitute(item: Any, values: dict[Key, Value]) -> Any:
    if isinstance(item, TensorRef):
        return values[(item.layer, item.node, item.tensor)]
    if isinstance(item, list):
        return [_substitute(sub, values) for sub in item]
    return item


def _stuck(model: ConfigLayer, remaining: list[_Pending], values: dict[Key, Value]) -> str:
    missing = []
    for item in remaining[:3]:
        for ref in item.call.tensors():
            if (ref.layer, ref.node, ref.tensor) not in values:
                missing.append(f"{item.layer.name} needs {ref.layer}[node {ref.node}, tensor {ref.tensor}]")
                break
    return (f"the graph of model {model.name!r} cannot be completed: " + "; ".join(missing)
            + " (a missing layer, or a cycle)")
