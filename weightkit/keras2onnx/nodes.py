"""The calls recorded in a Keras functional config: which tensors (and constants) feed each call.

Keras 1/2 and tf.keras write a call as ``[[layer, node, tensor, kwargs], ...]``;
Keras 3 as ``{"args": [...], "kwargs": {...}}`` where tensors are
``__keras_tensor__`` records and anything else (``x + 3``'s 3) is a constant.
`weightkit.formats.keras` keeps only the names of inbound layers; the converter needs
the node and tensor indices and the constants, so it reads the records here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TensorRef", "Call", "layer_calls", "endpoints", "raw_layers"]


@dataclass(frozen=True)
class TensorRef:
    """Output ``tensor`` of call ``node`` of layer ``layer`` (indices as the config numbers them)."""

    layer: str
    node: int = 0
    tensor: int = 0


@dataclass
class Call:
    """One call of a layer: positional arguments (TensorRefs, lists, constants) and keyword arguments."""

    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    legacy: bool = False  # written by Keras 1/2 or tf.keras (list records)

    def tensors(self) -> list[TensorRef]:
        """The tensors passed as positional arguments, in order (nested lists flattened)."""
        found: list[TensorRef] = []
        _collect(self.args, found)
        return found

    def keyword_tensors(self) -> list[TensorRef]:
        """Tensors passed as keyword arguments (a TFOpLambda's ``y``; masks)."""
        found: list[TensorRef] = []
        _collect(self.kwargs, found)
        return found

    @property
    def positional(self) -> int:
        """How many positional arguments: 1 for ``layer(x)`` and ``layer([a, b])``, 2 for ``ops.add(a, b)``."""
        return len(self.args)


def raw_layers(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A model record's layer records, in the order `weightkit.formats.keras.parse_config` keeps them."""
    config = record.get("config")
    layers = config if isinstance(config, list) else (config or {}).get("layers", [])
    return [item for item in layers if isinstance(item, dict)] if isinstance(layers, list) else []


def layer_calls(record: dict[str, Any]) -> list[Call]:
    """The calls recorded for one layer, in node order."""
    nodes = record.get("inbound_nodes")
    if not isinstance(nodes, list):
        return []
    calls = []
    for node in nodes:
        if isinstance(node, dict):
            calls.append(Call([_value(a) for a in node.get("args", [])],
                              {k: _value(v) for k, v in (node.get("kwargs") or {}).items()}))
        elif isinstance(node, list):
            calls.append(_legacy_call(node))
    return calls


def endpoints(config: dict[str, Any], key: str) -> list[TensorRef]:
    """``input_layers`` / ``output_layers`` of a functional config as TensorRefs."""
    items = config.get(key)
    if not isinstance(items, list) or not items:
        return []
    if isinstance(items[0], str):  # a single [name, node, tensor]
        items = [items]
    refs = []
    for item in items:
        if isinstance(item, list) and item and isinstance(item[0], str):
            refs.append(TensorRef(item[0], _int(item, 1), _int(item, 2)))
        elif isinstance(item, dict) and isinstance(item.get("config"), dict):  # Keras 3 keras_tensor record
            ref = _value(item)
            if isinstance(ref, TensorRef):
                refs.append(ref)
    return refs


def _legacy_call(node: list[Any]) -> Call:
    """``[[layer, node, tensor, kwargs], ...]``; tf.keras writes a TFOpLambda's call as one such entry,
    unwrapped, with tensors among its kwargs as ``[layer, node, tensor]`` (``{"y": ["conv", 0, 0]}``)."""
    if node and isinstance(node[0], str):
        node = [node]
    refs: list[TensorRef] = []
    kwargs: dict[str, Any] = {}
    for entry in node:
        if isinstance(entry, list) and entry and isinstance(entry[0], str):
            refs.append(TensorRef(entry[0], _int(entry, 1), _int(entry, 2)))
            if len(entry) > 3 and isinstance(entry[3], dict):
                kwargs.update({key: _legacy_value(value) for key, value in entry[3].items()})
    args: list[Any] = [refs[0]] if len(refs) == 1 else [refs]
    return Call(args, kwargs, legacy=True)


def _legacy_value(value: Any) -> Any:
    if (isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str)
            and isinstance(value[1], int) and isinstance(value[2], int)):
        return TensorRef(value[0], value[1], value[2])
    return value


def _value(item: Any) -> Any:
    if isinstance(item, list):
        return [_value(v) for v in item]
    if isinstance(item, dict):
        inner = item.get("config")
        if item.get("class_name") == "__keras_tensor__" and isinstance(inner, dict):
            history = inner.get("keras_history")
            if isinstance(history, list) and history and isinstance(history[0], str):
                return TensorRef(history[0], _int(history, 1), _int(history, 2))
        if item.get("class_name") == "__numpy__" and isinstance(inner, dict):
            return np.asarray(inner.get("value"), dtype=inner.get("dtype") or None)
        return {k: _value(v) for k, v in item.items()}
    return item


def _int(items: list[Any], index: int) -> int:
    value = items[index] if len(items) > index else 0
    return value if isinstance(value, int) else 0


def _collect(item: Any, found: list[TensorRef]) -> None:
    if isinstance(item, TensorRef):
        found.append(item)
    elif isinstance(item, (list, tuple)):
        for sub in item:
            _collect(sub, found)
    elif isinstance(item, dict):
        for sub in item.values():
            _collect(sub, found)
