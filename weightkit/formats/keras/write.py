"""Writing Models as Keras files that Keras itself loads: legacy HDF5 and Keras 3 stores.

Tensors are copied one at a time (streaming), so writing a part of a large file
never holds the whole file in memory.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ... import kinds
from ...errors import UnsupportedError
from ...model import Layer, Model, Tensor
from ...records import records
from .config import ConfigLayer, architecture
from .layout import replay_names, saved_layers

__all__ = ["write_legacy", "write_store", "keras_version", "ordered_weights"]

_FALLBACK_VERSION = "3.0.0"


def keras_version(model: Model) -> str:
    """The version to record: the source's Keras version, else a Keras 3 one (never "1", which Keras converts)."""
    version = model.framework_version if model.framework == "keras" else None
    return version or _FALLBACK_VERSION


def ordered_weights(layer: Layer) -> list[Tensor]:
    """A layer's weights in Keras's saving order: trainable first, then non-trainable (nested models too)."""
    tensors = layer.all_tensors()
    if not layer.layers:
        return tensors
    return sorted(tensors, key=lambda t: (t.trainable is False or t.role in kinds.NON_TRAINABLE_ROLES,
                                          tensors.index(t)))


def write_legacy(file: Any, model: Model) -> None:
    """Write ``model`` in the layout of Keras's ``model.save("x.h5")`` (or ``save_weights`` without a config).

    The file records the model's Keras version and backend where the model knows them
    (no backend otherwise: Keras reads it only to convert Theano-era kernels).

    Raises:
        UnsupportedError: a Keras 3 ``.weights.h5`` without its config: it records no layer
            order, and Keras loads a legacy file by position.
    """
    if model.format == "keras-v3-weights" and model.config is None:
        raise UnsupportedError("a legacy .h5 is loaded by layer position, and this Keras 3 .weights.h5 records no "
                               "layer order", hint="write a .weights.h5 instead, or start from the model's .keras, "
                               "which has the order")
    file.attrs.update(_versions(model))
    for key, value in records(model).items():
        file.attrs[key] = value
    group = file
    if model.config is not None:
        file.attrs["model_config"] = json.dumps(model.config)
        group = file.create_group("model_weights")
        group.attrs.update(_versions(model))
    group.attrs["layer_names"] = _names([layer.name for layer in model.layers])
    for layer in model.layers:
        weights = ordered_weights(layer)
        layer_group = group.create_group(layer.name)
        layer_group.attrs["weight_names"] = _names([t.name for t in weights])
        for tensor in weights:
            _dataset(layer_group, tensor.name, tensor)


def _versions(model: Model) -> dict[str, str]:
    """The ``keras_version`` and ``backend`` attributes of a legacy file."""
    found = {"keras_version": keras_version(model)}
    backend = model.metadata.get("backend")
    if isinstance(backend, str) and backend:
        found["backend"] = backend
    return found


def write_store(file: Any, model: Model) -> None:
    """Write ``model`` as a Keras 3 weight store (``.weights.h5``, or inside a ``.keras``).

    Needs the model's Keras config to name the groups as Keras does, or layers read from
    a store, which go back to the groups they came from.
    """
    root = architecture(model)
    if root is not None:
        _write_container(file, root, {layer.name: layer for layer in model.layers})
        file.create_group("vars").attrs["name"] = root.name
    elif model.layers and all(layer.stored_as for layer in model.layers):
        _write_as_stored(file, model.layers)
        file.create_group("vars")
    else:
        raise UnsupportedError("a Keras 3 weight store needs the model's Keras config to name its groups",
                               hint="write a legacy .h5 instead")


def _write_container(group: Any, config: ConfigLayer, layers: dict[str, Layer]) -> None:

    container = group.create_group("layers")
    names = replay_names(config)
    for sub in saved_layers(config):
        layer = layers.get(sub.name)
        sub_group = container.create_group(names[sub.name])
        vars_group = sub_group.create_group("vars")
        vars_group.attrs["name"] = sub.name
        if layer is None:
            continue
        if sub.is_model:
            _write_container(sub_group, sub, {child.name: child for child in layer.layers})
        for index, tensor in enumerate(layer.tensors.values()):
            _dataset(vars_group, str(index), tensor)


def _write_as_stored(group: Any, layers: list[Layer]) -> None:
    """Layers back in the groups a store kept them in: nested models under ``layers``, an RNN's cell beside ``vars``."""
    container = group.create_group("layers")
    for layer in layers:
        _write_stored_layer(container.create_group(layer.stored_as or layer.name), layer)


def _write_stored_layer(group: Any, layer: Layer) -> None:
    vars_group = group.create_group("vars")
    vars_group.attrs["name"] = layer.name
    for index, tensor in enumerate(layer.tensors.values()):
        _dataset(vars_group, str(index), tensor)
    if layer.kind == "model":
        _write_as_stored(group, layer.layers)
        return
    for child in layer.layers:
        _write_stored_layer(group.create_group(child.stored_as or child.name), child)


def _dataset(group: Any, name: str, tensor: Tensor) -> None:
    array = np.asarray(tensor.read())
    if tensor.dtype == "bfloat16":
        dataset = group.create_dataset(name, data=array.view(np.uint16))
        dataset.attrs["dtype"] = "bfloat16"
    else:
        group.create_dataset(name, data=array)


def _names(names: list[str]) -> np.ndarray:
    """Name lists as Keras writes them: UTF-8 bytes (empty lists as an empty float array)."""
    if not names:
        return np.zeros(0)
    return np.array([n.encode("utf-8") for n in names])
