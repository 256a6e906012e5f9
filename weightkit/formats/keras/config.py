"""Keras architecture configs (every generation) as one tree of `ConfigLayer`s.

Keras 1, Keras 2, tf.keras and Keras 3 write `model_config` / `config.json`
differently: Sequential configs as a bare list or as ``{"layers": [...]}``, inbound
nodes as ``[name, node, tensor, kwargs]`` lists or as ``keras_history`` records, and
Keras 1 arguments by their old names (``nb_filter``, ``border_mode``, ``dim_ordering``,
``output_dim``, ``p``...). This module hides those differences: a parsed layer's
``config`` speaks Keras 2/3, its ``raw`` is the file's own dict, untouched. It never
deserializes code: a ``Lambda`` layer's function stays an opaque config value.

`architecture` parses a `Model`'s config once and keeps the tree for every later caller.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from ...errors import FileFormatError
from ...model import Dim, Model, TensorSpec
from ._spelling import modern_config

__all__ = ["ConfigLayer", "parse_config", "architecture", "remember_architecture", "MODEL_CLASSES"]

MODEL_CLASSES = frozenset({"Model", "Functional", "Sequential"})


@dataclass
class ConfigLayer:
    """One layer of a Keras config; models used as layers carry their own ``layers``.

    ``config`` uses Keras 2/3 argument names whatever Keras wrote the file; ``raw`` is
    the file's own dict (the same as ``config`` when nothing needed translating).
    Trees are shared (see `architecture`): read them, never change them.
    """

    name: str
    class_name: str
    config: dict[str, Any]
    inbound: list[str] = field(default_factory=list)
    layers: list[ConfigLayer] = field(default_factory=list)
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    module: str | None = None
    raw: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.raw is None:
            self.raw = self.config

    @property
    def is_operation(self) -> bool:
        """A Keras 3 op called in a functional graph (``x + 3``): a graph node, not a layer."""
        return (self.module or "").startswith(("keras.src.ops", "keras.ops"))

    @property
    def is_model(self) -> bool:
        return self.class_name in MODEL_CLASSES or bool(self.layers)

    def by_name(self) -> dict[str, ConfigLayer]:
        return {layer.name: layer for layer in self.layers}

    def input_specs(self) -> list[TensorSpec]:
        """The model's inputs with their batch shapes, as the config states them."""
        if self.class_name == "Sequential" or not self.input_names:
            return _sequential_input(self)
        layers = self.by_name()
        specs = []
        for name in self.input_names:
            layer = layers.get(name)
            shape = _batch_shape(layer.config) if layer else None
            dtype = _dtype_name(layer.config.get("dtype")) if layer else None
            specs.append(TensorSpec(name, shape, dtype))
        return specs


def parse_config(data: Any, build_config: dict[str, Any] | None = None) -> ConfigLayer:
    """Parse a ``{"class_name", "config"}`` record (or a Keras 1/2 layer list) into a tree."""
    if isinstance(data, list):
        data = {"class_name": "Sequential", "config": data}
    if not isinstance(data, dict):
        raise ValueError("a Keras config is a JSON object with 'class_name' and 'config'")
    layer = _parse_layer(data)
    if build_config and not layer.config.get("build_input_shape"):
        shape = build_config.get("input_shape")
        if isinstance(shape, list):
            layer.config = {**layer.config, "build_input_shape": shape}
    return layer


# Model → (the config dict it was parsed from, the tree); a replaced ``Model.config`` is parsed again.
_PARSED: weakref.WeakKeyDictionary[Model, tuple[Any, ConfigLayer]] = weakref.WeakKeyDictionary()


def architecture(model: Model) -> ConfigLayer | None:
    """``model``'s Keras config as a tree, parsed once per config and then shared (None without a config).

    Raises:
        FileFormatError: the config is not a Keras config.

    Example:
        >>> root = architecture(weightkit.load("model.h5"))
        >>> [layer.class_name for layer in root.layers][:2]
        ['InputLayer', 'Conv2D']
    """
    config = model.config
    if config is None:
        return None
    cached = _PARSED.get(model)
    if cached is not None and cached[0] is config:
        return cached[1]
    try:
        root = parse_config(config, config.get("build_config") if isinstance(config, dict) else None)
    except ValueError as exc:
        raise FileFormatError(f"the model's config is not a Keras config: {exc}", path=model.source) from None
    return remember_architecture(model, root)


def remember_architecture(model: Model, root: ConfigLayer) -> ConfigLayer:
    """Record ``root`` as the parsed form of ``model.config`` (readers that parsed it already)."""
    _PARSED[model] = (model.config, root)
    return root


def _parse_layer(data: dict[str, Any]) -> ConfigLayer:
    class_name = str(data.get("class_name", "unknown"))
    config = data.get("config")
    if isinstance(config, list):  # Keras 1 / 2.0 / 2.1 Sequential
        config = {"layers": config}
    if not isinstance(config, dict):
        config = {}
    name = data.get("name") or config.get("name") or class_name.lower()
    module = data.get("module") if isinstance(data.get("module"), str) else None
    sublayers = _sublayers(class_name, config)
    modern = config if sublayers is not None else modern_config(class_name, config)
    layer = ConfigLayer(str(name), class_name, modern, inbound=_inbound_names(data.get("inbound_nodes")),
                        module=module, raw=config)
    if sublayers is not None:
        layer.layers = [_parse_layer(item) for item in sublayers if isinstance(item, dict)]
        layer.input_names = _endpoint_names(config.get("input_layers"))
        layer.output_names = _endpoint_names(config.get("output_layers"))
        if class_name == "Sequential":
            _chain_sequential(layer.layers)
    return layer


def _sublayers(class_name: str, config: dict[str, Any]) -> list[Any] | None:
    """The layer configs of a nested model (Sequential, Functional, ...); None for a plain layer."""
    sublayers = config.get("layers")
    if isinstance(sublayers, list) and (class_name in MODEL_CLASSES or class_name not in {"Merge"}):
        return sublayers
    return None


def _inbound_names(nodes: Any) -> list[str]:
    """Names of the layers feeding a layer, from any generation's inbound_nodes."""
    names: list[str] = []

    def visit(item: Any) -> None:
        if isinstance(item, dict):
            history = item.get("keras_history")
            if isinstance(history, list) and history and isinstance(history[0], str):
                names.append(history[0])
                return
            for value in item.values():
                visit(value)
        elif isinstance(item, list):
            if len(item) >= 3 and isinstance(item[0], str) and isinstance(item[1], int):
                names.append(item[0])
                if len(item) > 3:
                    visit(item[3])
                return
            for value in item:
                visit(value)

    visit(nodes or [])
    return list(dict.fromkeys(names))


def _endpoint_names(endpoints: Any) -> list[str]:
    if not isinstance(endpoints, list):
        return []
    if endpoints and isinstance(endpoints[0], str):  # a single [name, node, tensor]
        return [endpoints[0]]
    return [item[0] for item in endpoints if isinstance(item, list) and item and isinstance(item[0], str)]


def _chain_sequential(layers: list[ConfigLayer]) -> None:
    previous = None
    for layer in layers:
        if previous is not None and not layer.inbound:
            layer.inbound = [previous.name]
        previous = layer


def _sequential_input(model: ConfigLayer) -> list[TensorSpec]:
    shape = model.config.get("build_input_shape")
    dtype = None
    name = "input"
    for layer in model.layers[:1]:
        found = _batch_shape(layer.config)
        if found is not None:
            shape = found
            dtype = _dtype_name(layer.config.get("dtype"))
            name = layer.name if layer.class_name == "InputLayer" else name
    if not isinstance(shape, (list, tuple)):
        return []
    return [TensorSpec(name, tuple(_dim(d) for d in shape), dtype)]


def _batch_shape(config: dict[str, Any]) -> tuple[Dim, ...] | None:
    for key in ("batch_shape", "batch_input_shape"):
        shape = config.get(key)
        if isinstance(shape, list):
            return tuple(_dim(d) for d in shape)
    shape = config.get("input_shape")
    if isinstance(shape, list):
        return (None, *(_dim(d) for d in shape))
    return None


def _dim(value: Any) -> Dim:
    return value if isinstance(value, (int, str)) else None


def _dtype_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # Keras 3 DTypePolicy record
        inner = value.get("config", {})
        return inner.get("name") if isinstance(inner, dict) else None
    return None
