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
from ..formats.keras import ConfigLayer
from .builder import GraphBuilder, Value
from .layers import LayerCall, emitter_for
from .nodes import Call, TensorRef, endpoints, layer_calls, raw_layers

__all__ = ["ModelWalker"]

Key = tuple[str, int, int]


@dataclass
class _Pending:
    layer: ConfigLayer
    record: dict[str, Any]
    node: int  # the call's position among the layer's calls in the config
    call: Call


class ModelWalker:
    """Emits a whole Keras model (and the models nested in it) into one `GraphBuilder`.

    Args:
        builder: where nodes and initializers go.
        weights: the file's layers by path (``conv1``, ``outer/inner``): anything with ``get(path)``.
    """

    def __init__(self, builder: GraphBuilder, weights: Any):
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
        values: dict[Key, Value] = {}  # (layer, call index in the config, tensor)
        input_refs = endpoints(model.config, "input_layers")
        if len(input_refs) != len(inputs):
            raise FileFormatError(f"model {model.name!r} declares {len(input_refs)} inputs but is called "
                                  f"with {len(inputs)}")
        for ref, value in zip(input_refs, inputs):
            values[(ref.layer, 0, ref.tensor)] = value
        pending, offsets = self._pending(model, record, {ref.layer for ref in input_refs})
        resolve = _Resolver(offsets)
        while pending:
            remaining = [item for item in pending if not self._try(item, values, resolve, prefix)]
            if len(remaining) == len(pending):
                raise FileFormatError(_stuck(model, remaining, values, resolve))
            pending = remaining
        outputs = []
        for ref in endpoints(model.config, "output_layers"):
            key = resolve.endpoint(ref)
            if key not in values:
                raise FileFormatError(f"model {model.name!r} names output {[ref.layer, ref.node, ref.tensor]}, "
                                      "which no layer produces")
            outputs.append(values[key])
        return outputs

    def _pending(self, model: ConfigLayer, record: dict[str, Any],
                 inputs: set[str]) -> tuple[list[_Pending], dict[str, tuple[int, int]]]:
        items: list[tuple[ConfigLayer, dict[str, Any], list[Call]]] = []
        inbound: dict[str, list[int]] = {}
        for layer, layer_record in zip(model.layers, raw_layers(record)):
            calls = layer_calls(layer_record)
            if layer.class_name == "InputLayer" and layer.name in inputs:
                continue
            items.append((layer, layer_record, calls))
            for call in calls:
                for ref in call.tensors() + call.keyword_tensors():
                    inbound.setdefault(ref.layer, []).append(ref.node)
        outward: dict[str, list[int]] = {}
        for ref in endpoints(model.config, "output_layers"):
            outward.setdefault(ref.layer, []).append(ref.node)
        offsets = {layer.name: _node_offsets(layer, calls, inbound.get(layer.name, []), outward.get(layer.name, []))
                   for layer, _, calls in items}
        pending = [_Pending(layer, layer_record, index, call)
                   for layer, layer_record, calls in items for index, call in enumerate(calls)]
        return pending, offsets

    def _try(self, item: _Pending, values: dict[Key, Value], resolve: _Resolver, prefix: str) -> bool:
        keys = [resolve.inbound(ref) for ref in item.call.tensors()]
        needed = keys + [resolve.inbound(ref) for ref in item.call.keyword_tensors()]
        if any(key not in values for key in needed):
            return False
        args = _substitute(item.call.args, values, resolve)
        kwargs = {name: _substitute(value, values, resolve) for name, value in item.call.kwargs.items()}
        outputs = self._emit(item.layer, item.record, item.call, [values[k] for k in keys], args,
                             _join(prefix, item.layer.name), kwargs)
        for index, value in enumerate(outputs):
            values[(item.layer.name, item.node, index)] = value
        return True

    # -- one call --------------------------------------------------------------------------
    def _emit(self, layer: ConfigLayer, record: dict[str, Any], call: Call, inputs: list[Value], args: list[Any],
              path: str, kwargs: dict[str, Any] | None = None) -> list[Value]:
        if layer.is_model:
            return self.run(layer, record, inputs, path)
        emitter = emitter_for(layer, call)
        if emitter is None:
            raise UnsupportedError(f"no converter for layer {path!r} ({layer.class_name})")
        if not inputs:
            raise FileFormatError(f"layer {path!r} ({layer.class_name}) is called without inputs")
        self.builder.begin_layer(path, layer.class_name)
        context = LayerCall(layer, path, call, inputs, args, self.weights.get(path), kwargs or {})
        try:
            return emitter.emit(self.builder, context)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UnsupportedError(f"layer {path!r} ({layer.class_name}) cannot be converted: "
                                   f"{type(exc).__name__}: {exc}") from exc


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


class _Resolver:
    """Turns a config's (layer, node, tensor) reference into (layer, call index, tensor)."""

    def __init__(self, offsets: dict[str, tuple[int, int]]):
        self.offsets = offsets

    def inbound(self, ref: TensorRef) -> Key:
        return (ref.layer, ref.node - self.offsets.get(ref.layer, (0, 0))[0], ref.tensor)

    def endpoint(self, ref: TensorRef) -> Key:
        return (ref.layer, ref.node - self.offsets.get(ref.layer, (0, 0))[1], ref.tensor)


def _node_offsets(layer: ConfigLayer, calls: list[Call], inbound: list[int], outward: list[int]) -> tuple[int, int]:
    """How a config numbers a nested model's calls, in other layers' inputs and in ``output_layers``.

    A model built on an Input starts with a node of its own. tf.keras and Keras 2 count
    it everywhere (the first call is node 1). Keras 3 has no such node: its layers'
    inputs count calls from 0, but ``output_layers`` still count from 1 for Functional
    models (not Sequential ones). References past the last call, or to node 0, settle it.
    """
    if not layer.is_model or not calls:
        return 0, 0
    sequential = layer.class_name == "Sequential"
    if calls[0].legacy:
        first = layer.layers[0].class_name if layer.layers else ""
        default = 0 if sequential and first != "InputLayer" else 1
        inbound_default = outward_default = default
    else:
        inbound_default, outward_default = 0, 0 if sequential else 1
    return _settled(inbound, len(calls), inbound_default), _settled(outward, len(calls), outward_default)


def _settled(references: list[int], count: int, default: int) -> int:
    if references and max(references) >= count:
        return 1
    if references and min(references) == 0:
        return 0
    return default


def _substitute(item: Any, values: dict[Key, Value], resolve: _Resolver) -> Any:
    if isinstance(item, TensorRef):
        return values[resolve.inbound(item)]
    if isinstance(item, list):
        return [_substitute(sub, values, resolve) for sub in item]
    if isinstance(item, dict):
        return {key: _substitute(sub, values, resolve) for key, sub in item.items()}
    return item


def _stuck(model: ConfigLayer, remaining: list[_Pending], values: dict[Key, Value], resolve: _Resolver) -> str:
    missing = []
    for item in remaining[:3]:
        for ref in item.call.tensors() + item.call.keyword_tensors():
            if resolve.inbound(ref) not in values:
                missing.append(f"{item.layer.name} needs {ref.layer}[node {ref.node}, tensor {ref.tensor}]")
                break
    return (f"the graph of model {model.name!r} cannot be completed: " + "; ".join(missing)
            + " (a missing layer, or a cycle)")
