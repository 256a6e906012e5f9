"""Keras architecture configs (every generation) as one tree of `ConfigLayer`s.

Keras 1, Keras 2, tf.keras and Keras 3 write `model_config` / `config.json`
differently: Sequential configs as a bare list or as ``{"layers": [...]}``, inbound
nodes as ``[name, node, tensor, kwargs]`` lists or as ``keras_history`` records, and
Keras 1 arguments by their old names (``nb_filter``, ``border_mode``, ``dim_ordering``,
``output_dim``, ``p``...). This module hides those differences: a parsed layer's
``config`` speaks Keras 2/3, its ``raw`` is the file's own dict, untouched. It never
deserializes code: a ``Lambda`` layer's function stays an opaque config value.

`architecture` parses a `Model`'s config once and keeps the tree for every later caller.
A config is a file's data: the parser checks the JSON type of every field it or a later
reader relies on (`ConfigError` names the field), so nothing downstream meets a list
where it expects a dict, a number for a name, or a shape of strings.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from ... import limits
from ...errors import FileFormatError
from ...model import Dim, Model, TensorSpec
from ._spelling import modern_config

__all__ = ["ConfigLayer", "ConfigError", "parse_config", "architecture", "remember_architecture",
           "MODEL_CLASSES"]

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
    """Parse a ``{"class_name", "config"}`` record (or a Keras 1/2 layer list) into a tree.

    Raises:
        ConfigError: a field has the wrong JSON type (or the whole is not a config); a `ValueError`.
        UnsafeFileError: the config nests deeper than ``limits.NESTING``.
    """
    if isinstance(data, list):
        data = {"class_name": "Sequential", "config": data}
    if not isinstance(data, dict):
        raise ConfigError("a Keras config is a JSON object with 'class_name' and 'config'")
    _check_records(data)
    layer = _parse_layer(data, "")
    if isinstance(build_config, dict) and not layer.config.get("build_input_shape"):
        shape = build_config.get("input_shape")
        if isinstance(shape, list):
            check_shape(shape, "build_config.input_shape")
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
        raise FileFormatError(f"the model's config is not a Keras config: {exc}", path=model.source) from exc
    return remember_architecture(model, root)


def remember_architecture(model: Model, root: ConfigLayer) -> ConfigLayer:
    """Record ``root`` as the parsed form of ``model.config`` (readers that parsed it already)."""
    _PARSED[model] = (model.config, root)
    return root


def _parse_layer(data: Any, where: str) -> ConfigLayer:
    """One layer record, its fields' types checked; ``where`` locates it (``layers[3].``) in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'the config'} is a {_kind(data)}, not a layer record (a JSON object)")
    class_name = _text(data.get("class_name"), f"{where}class_name") or "unknown"
    config = data.get("config", {})
    if isinstance(config, list) and class_name == "Sequential":  # Keras 1 / 2.0 / 2.1 Sequential
        config = {"layers": config}
    elif not isinstance(config, dict):
        raise ConfigError(f"{where}config is a {_kind(config)} ({_shown(config)}), not an object")
    name = _text(data.get("name"), f"{where}name") or _text(config.get("name"), f"{where}config.name") \
        or class_name.lower()
    module = _text(data.get("module"), f"{where}module")
    inbound = data.get("inbound_nodes")
    _check_nodes(inbound, f"{where}inbound_nodes")
    sublayers = _sublayers(class_name, config, where)
    modern = config if sublayers is not None else modern_config(class_name, config)
    check_fields(class_name, modern, f"{where}config.")
    layer = ConfigLayer(name, class_name, modern, inbound=_inbound_names(inbound), module=module, raw=config)
    if sublayers is not None:
        layer.layers = [_parse_layer(item, f"{where}config.layers[{index}].")
                        for index, item in enumerate(sublayers)]
        layer.input_names = _endpoint_names(config.get("input_layers"), f"{where}config.input_layers")
        layer.output_names = _endpoint_names(config.get("output_layers"), f"{where}config.output_layers")
        if class_name == "Sequential":
            _chain_sequential(layer.layers)
    return layer


class ConfigError(ValueError):
    """Not a Keras config: a field of the wrong JSON type, named by its place (``config.layers[3].name``)."""


# The JSON type of the fields that weightkit's readers, shape rules, cutter and converter rely on
# (after `modern_config`): what a Keras of any generation writes there.
_POSITIVE_INTS = ("kernel_size", "strides", "dilation_rate", "pool_size")
_COUNTS = ("units", "filters", "depth_multiplier")
_FLAGS = ("trainable", "use_bias", "keepdims", "rms_scaling", "return_sequences")
_TEXTS = ("data_format", "function_type", "dim_ordering", "consume_less")  # the last two: Keras 1, left untranslated
_SHAPES = ("batch_shape", "batch_input_shape", "input_shape")
_MAX_DIM = 2**63 - 1  # an int64: what every tensor library stores a size in


def check_fields(class_name: str, config: dict[str, Any], where: str) -> None:
    """Raise `ConfigError` for a known field of one layer's (modern) ``config`` whose value has the wrong type."""
    for key in _POSITIVE_INTS + (("size",) if class_name.startswith("UpSampling") else ()):
        if config.get(key) is not None:
            _ints_or_int(config[key], f"{where}{key}", least=1, nesting=1)
    for key in _COUNTS:
        if config.get(key) is not None:
            _int(config[key], f"{where}{key}", least=0)
    for key in _FLAGS:
        if key in config and not isinstance(config[key], (bool, type(None))):
            raise ConfigError(f"{where}{key} is a {_kind(config[key])} ({_shown(config[key])}), not true or false")
    for key in _TEXTS:
        _text(config.get(key), f"{where}{key}")
    for key in ("padding", "cropping"):
        if not isinstance(config.get(key), (str, type(None), dict)):
            _ints_or_int(config[key], f"{where}{key}", least=0, nesting=2)
    for key in ("axis", "dims"):
        if config.get(key) is not None:
            _ints_or_int(config[key], f"{where}{key}", least=-_MAX_DIM, nesting=1)
    if config.get("target_shape") is not None:
        check_shape(config["target_shape"], f"{where}target_shape", least=-1, nulls=False)
    for key in _SHAPES:
        if config.get(key) is not None:
            check_shape(config[key], f"{where}{key}")
    _dtype(config.get("dtype"), f"{where}dtype")
    for key in ("name", "layer"):
        if key == "name":
            _text(config.get(key), f"{where}name")
        elif key in config and not isinstance(config[key], (dict, type(None))):
            raise ConfigError(f"{where}layer is a {_kind(config[key])}, not a layer record")


def _check_records(data: Any) -> None:
    """Bound the config's nesting, and check that every serialized object in it (layers, initializers, dtype
    policies, functions) names its class and module with strings, as every reader of them (Keras too) assumes."""
    most = limits.NESTING.value
    stack: list[tuple[Any, int, Any]] = [(data, 1, None)]
    while stack:  # one pass over the tree, without recursion; `where` is spelled out only for an error
        item, level, where = stack.pop()
        if level > most:
            raise limits.NESTING.refusal(f"over {most}", "the Keras config")
        if isinstance(item, dict):
            for key in ("class_name", "module", "registered_name"):
                value = item.get(key)
                if value is not None and not isinstance(value, str):
                    _text(value, _spelled((key, where)))
            children: Any = item.items()
        else:
            children = enumerate(item)
        stack.extend((value, level + 1, (key, where)) for key, value in children if isinstance(value, (dict, list)))


def _spelled(where: Any) -> str:
    """``("name", (1, ("layers", ("config", None))))`` as ``config.layers[1].name``."""
    parts: list[str] = []
    while where is not None:
        key, where = where
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(reversed(parts)).lstrip(".")


def check_shape(shape: Any, where: str, *, least: int = 0, nulls: bool = True) -> None:
    """A declared shape: a list of sizes (whole numbers from ``least`` to an int64's largest), or nulls if ``nulls``."""
    if not isinstance(shape, list):
        raise ConfigError(f"{where} is a {_kind(shape)} ({_shown(shape)}), not a list of sizes")
    limits.ENTRIES.check(len(shape), f"the Keras config's {where}")
    for index, size in enumerate(shape):
        if size is not None or not nulls:
            _int(size, f"{where}[{index}]", least=least)


def _int(value: Any, where: str, *, least: int) -> None:
    if type(value) is not int:
        raise ConfigError(f"{where} is a {_kind(value)} ({_shown(value)}), not a whole number")
    if not least <= value <= _MAX_DIM:
        raise ConfigError(f"{where} is {_shown(value)}, outside {least:,} to {_MAX_DIM:,}")


def _ints_or_int(value: Any, where: str, *, least: int, nesting: int) -> None:
    """A number, or a list of them (lists of lists too, up to ``nesting`` levels: paddings' (before, after) pairs)."""
    if isinstance(value, list) and nesting > 0:
        limits.ENTRIES.check(len(value), f"the Keras config's {where}")
        for index, item in enumerate(value):
            _ints_or_int(item, f"{where}[{index}]", least=least, nesting=nesting - 1)
    else:
        _int(value, where, least=least)


def _dtype(value: Any, where: str) -> None:
    """A dtype name, or a Keras 3 DTypePolicy record ``{"config": {"name": ...}}``."""
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, dict):
        raise ConfigError(f"{where} is a {_kind(value)} ({_shown(value)}), not a dtype name")
    inner = value.get("config")
    if inner is not None and not isinstance(inner, dict):
        raise ConfigError(f"{where}.config is a {_kind(inner)}, not an object")
    _text((inner or {}).get("name"), f"{where}.config.name")


def _check_nodes(nodes: Any, where: str) -> None:
    """``inbound_nodes``: Keras 3 calls ``{"args": [...], "kwargs": {...}}``, or Keras 1/2 lists of references."""
    if nodes is None:
        return
    if not isinstance(nodes, list):
        raise ConfigError(f"{where} is a {_kind(nodes)} ({_shown(nodes)}), not a list")
    for index, node in enumerate(nodes):
        if isinstance(node, dict):
            for key, kind in (("args", list), ("kwargs", dict)):
                if node.get(key) is not None and not isinstance(node[key], kind):
                    raise ConfigError(f"{where}[{index}].{key} is a {_kind(node[key])} ({_shown(node[key])}), "
                                      f"not a {_kind(kind())}")
        elif not isinstance(node, list):  # Keras 1/2: references [[layer, node, tensor, kwargs], ...], or one
            raise ConfigError(f"{where}[{index}] is {_shown(node)}, not a call (an object or a list of references)")


def _text(value: Any, where: str) -> str | None:
    """A field that must be a string (or absent)."""
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"{where} is a {_kind(value)} ({_shown(value)}), not a string")


def _kind(value: Any) -> str:
    names = {dict: "JSON object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _sublayers(class_name: str, config: dict[str, Any], where: str) -> list[Any] | None:
    """The layer configs of a nested model (Sequential, Functional, ...); None for a plain layer."""
    sublayers = config.get("layers")
    if isinstance(sublayers, list) and (class_name in MODEL_CLASSES or class_name not in {"Merge"}):
        limits.ENTRIES.check(len(sublayers), f"the Keras config's {where or 'model'} layers")
        return sublayers
    if class_name in MODEL_CLASSES:
        found = "no 'layers'" if sublayers is None else f"'layers' as a {_kind(sublayers)}"
        raise ConfigError(f"{where}config of the {class_name} has {found}, not a list of layers")
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


def _endpoint_names(endpoints: Any, where: str) -> list[str]:
    """The layer names of ``input_layers``/``output_layers``: ``[name, node, tensor]``, or lists or dicts of them."""
    if endpoints is None:
        return []
    if not isinstance(endpoints, (list, dict)):
        raise ConfigError(f"{where} is a {_kind(endpoints)}, not a list of [layer, node, tensor]")
    names: list[str] = []
    stack: list[Any] = [endpoints]
    while stack:  # a JSON tree, its depth already bounded
        item = stack.pop()
        if isinstance(item, list) and item and isinstance(item[0], str):
            names.append(item[0])
        elif isinstance(item, (list, dict)):
            stack.extend(reversed(list(item.values() if isinstance(item, dict) else item)))
        else:
            raise ConfigError(f"{where} holds {_shown(item)}, not [layer name, node, tensor]")
    return names


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
    if not isinstance(shape, (list, tuple)) or not all(d is None or type(d) is int for d in shape):
        return []  # no shape, or a multi-input build_input_shape: not one input's
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
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dtype_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # Keras 3 DTypePolicy record
        inner = value.get("config", {})
        return inner.get("name") if isinstance(inner, dict) else None
    return None
