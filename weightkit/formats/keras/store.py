"""Keras 3 weight stores: ``.weights.h5`` files and the ``model.weights.h5`` inside ``.keras``.

Keras 3 names groups after the layer *class* (``layers/conv2d_1/vars/0``), not the
layer, and stores variables by index only. With a config (a ``.keras`` file) the
layers are matched by the ``name`` attribute Keras 3.6+ writes on each ``vars``
group, or else by replaying Keras's naming; roles come from each class's variable
order. Without a config, names and classes are recovered from the groups.
"""

from __future__ import annotations

import re
from typing import Any

from ... import kinds
from ...model import Layer, Model, Tensor
from .._parsers.hdf5 import Group, H5Source, attr_text
from ._tensors import dataset_tensor
from .config import ConfigLayer, remember_architecture
from .layout import replay_names, saved_layers, snake_case
from .shapes import output_specs

__all__ = ["is_weights_store", "read_weights_file", "read_store", "write"]

_LAYERS = ("layers", "_layer_checkpoint_dependencies")

# Variable order per class, as each class's build() creates them; (name, config flag) is optional.
_CONV = ("kernel", "bias")
_NORM = (("gamma", "scale"), ("beta", "center"))
_VARIABLES: dict[str, tuple[Any, ...]] = {
    **{cls: _CONV for cls in ("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
                              "Conv3DTranspose", "Dense", "EinsumDense", "DepthwiseConv1D", "DepthwiseConv2D")},
    "SeparableConv1D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "BatchNormalization": (*_NORM, "moving_mean", "moving_variance"),
    "LayerNormalization": _NORM,
    "GroupNormalization": _NORM,
    "Embedding": ("embeddings",),
    "PReLU": ("alpha",),
    "LayerScale": ("gamma",),
    "Normalization": ("mean", "variance", "count"),
    "LSTMCell": ("kernel", "recurrent_kernel", "bias"),
    "GRUCell": ("kernel", "recurrent_kernel", "bias"),
    "SimpleRNNCell": ("kernel", "recurrent_kernel", "bias"),
}
_CLASS_BY_SNAKE: dict[str, str] = {}
_RECURRENT = ("LSTM", "GRU", "SimpleRNN")


def is_weights_store(file: Any) -> bool:
    """A Keras 3 store has ``layers``/``vars`` groups and no legacy ``layer_names``."""
    has_layers = any(name in file for name in (*_LAYERS, "vars"))
    return has_layers and "layer_names" not in file.attrs and "model_weights" not in file


def read_weights_file(source: H5Source, config: Any = None, root: ConfigLayer | None = None) -> Model:
    """A standalone ``.weights.h5``: weights only, layer classes guessed from group names.

    With an architecture given apart (``config`` and its parsed ``root``), the layers
    follow it as in a ``.keras`` file, and the model has that graph.
    """
    layers, extras = read_store(source, root)
    model = Model(layers=layers, format="keras-v3-weights", framework="keras", has_graph=root is not None,
                  metadata={"writer": "Keras 3 (.weights.h5 records no version)"}, config=config,
                  extras=extras, source=str(source.path))
    if root is not None:
        remember_architecture(model, root)
        model.inputs, model.outputs = root.input_specs(), output_specs(root)
    return model


def read_store(source: H5Source, root: ConfigLayer | None) -> tuple[list[Layer], dict[str, list[Tensor]]]:
    """The layers of a Keras 3 store (following ``root`` when there is a config) and its extras."""
    file = source.file
    layers = _container_layers(file, root, source, frozen=False)
    extras: dict[str, list[Tensor]] = {}
    optimizer = _group_tensors(_subgroup(file, "optimizer"), source)
    if optimizer:
        extras["optimizer"] = optimizer
    own = _vars_tensors(_subgroup(file, "vars"), source)
    if own:
        extras["top_level"] = own
    return layers, extras


def _container_layers(group: Any, config: ConfigLayer | None, source: H5Source, frozen: bool) -> list[Layer]:
    container = next((group[name] for name in _LAYERS if isinstance(group.get(name), Group)), None)
    if container is None:
        return []
    members = {key: value for key, value in container.items() if isinstance(value, Group)}
    if config is None:
        return [_layer_from_group(members[key], None, source, frozen) for key in sorted(members, key=_natural)]
    by_name = {attr_text(g["vars"], "name"): g for g in members.values() if "vars" in g}
    replayed = replay_names(config)
    layers = []
    for sub in saved_layers(config):
        found = by_name.get(sub.name)
        if found is None:
            found = members.get(replayed.get(sub.name, ""))
        layers.append(_layer_from_group(found, sub, source, frozen))
    return layers


def _layer_from_group(group: Any, config: ConfigLayer | None, source: H5Source, frozen: bool) -> Layer:
    vars_group = _subgroup(group, "vars") if group is not None else None
    if config is not None:
        layer = Layer(config.name, type_name=config.class_name, config=config.raw, inbound=list(config.inbound),
                      stored_as=group.name.rsplit("/", 1)[-1] if group is not None else None)
    else:
        key = group.name.rsplit("/", 1)[-1]
        saved_name = attr_text(vars_group, "name") if vars_group is not None else None
        layer = Layer(saved_name or key, type_name=_class_from_group(key), stored_as=key)
    layer.kind = "model" if (config is not None and config.is_model) else kinds.kind_of_keras_class(layer.type_name)
    frozen = frozen or (config is not None and not config.config.get("trainable", True))
    if group is None:
        return layer
    tensors = _vars_tensors(vars_group, source)
    _assign_roles(layer, tensors, config, frozen)
    if layer.kind == "model" or any(name in group for name in _LAYERS):
        layer.kind = "model"
        layer.layers = _container_layers(group, config, source, frozen)
    for name in sorted(group, key=_natural):  # sublayers held as attributes: an RNN's cell, ...
        if name not in ("vars", *_LAYERS) and isinstance(group[name], Group):
            child = _layer_from_group(group[name], None, source, frozen)
            child.name = name
            if name == "cell" and layer.type_name in _RECURRENT:  # named from the cell's variable order
                tensors, child.tensors = list(child.tensors.values()), {}
                child.type_name, child.kind = f"{layer.type_name}Cell", layer.kind
                _assign_roles(child, tensors, None, frozen)
            if child.all_tensors():
                layer.layers.append(child)
    return layer


def _assign_roles(layer: Layer, tensors: list[Tensor], config: ConfigLayer | None, frozen: bool) -> None:
    names = _variable_names(layer.type_name, config, len(tensors))
    if layer.kind == "unknown" and tensors:
        shapes = {kinds.canonical_role(n): t.shape for n, t in zip(names, tensors)}
        layer.kind = kinds.infer_kind(shapes)
    for variable, tensor in zip(names, tensors):
        role = kinds.role_in_kind(layer.kind, kinds.canonical_role(variable))
        tensor.name = f"{layer.name}/{variable}"
        tensor.role = role
        tensor.layout = kinds.keras_layout(layer.kind, role)
        if config is not None:
            tensor.trainable = not frozen and role not in kinds.NON_TRAINABLE_ROLES
        layer.tensors[role if role not in layer.tensors else variable] = tensor


def _variable_names(class_name: str | None, config: ConfigLayer | None, count: int) -> list[str]:
    """Names of a layer's ``count`` variables, from its class's variable order."""
    spec = _VARIABLES.get(class_name or "") or _VARIABLES.get(_base_class(class_name))
    if class_name == "LayerNormalization" and config is not None and config.config.get("rms_scaling"):
        spec = ("gamma",)  # RMS scaling keeps the scale only, whatever center says
    if spec is None:
        return [f"var_{i}" for i in range(count)]
    names = []
    optional = []
    for entry in spec:
        if isinstance(entry, tuple):
            name, flag = entry
            if config is not None and not config.config.get(flag, True):
                continue
            optional.append(name)
        names.append(entry[0] if isinstance(entry, tuple) else entry)
    while len(names) > count and optional:  # no config: drop optional variables first
        names.remove(optional.pop(0))
    names = names[:count]
    return names + [f"var_{i}" for i in range(len(names), count)]


def _base_class(class_name: str | None) -> str:
    """Subclasses of known layers (QKeras QDense, ...) keep the variables of their kind's first class."""
    classes = kinds.keras_classes(kinds.kind_of_keras_class(class_name))
    return classes[0] if classes else ""


def _subgroup(group: Any, name: str) -> Group | None:
    """The group ``name`` in ``group``; None when absent or a dataset (a crafted file's confusion)."""
    found = group.get(name)
    return found if isinstance(found, Group) else None


def _vars_tensors(vars_group: Any, source: H5Source) -> list[Tensor]:
    if vars_group is None:
        return []
    return [dataset_tensor(vars_group[key], source, f"{vars_group.name.lstrip('/')}/{key}")
            for key in sorted(vars_group, key=_natural) if hasattr(vars_group[key], "shape")]


def _group_tensors(group: Any, source: H5Source) -> list[Tensor]:
    if group is None:
        return []
    tensors: list[Tensor] = []
    group.visititems(lambda name, obj: tensors.append(dataset_tensor(obj, source, f"{group.name.lstrip('/')}/{name}"))
                     if hasattr(obj, "shape") else None)
    return tensors


def _class_from_group(key: str) -> str | None:
    if not _CLASS_BY_SNAKE:
        for cls in (*kinds.KERAS_CLASSES, *_VARIABLES):
            _CLASS_BY_SNAKE.setdefault(snake_case(cls), cls)
    base = re.sub(r"_\d+$", "", key)
    return _CLASS_BY_SNAKE.get(base) or _CLASS_BY_SNAKE.get(key)


def _natural(key: str) -> tuple[Any, ...]:
    """Sort ``vars/10`` after ``vars/2``, ``conv2d_10`` after ``conv2d_2``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key))


def write(model: Model, path: Any, *, force: bool = False) -> None:
    """Write ``model`` as a Keras 3 ``.weights.h5`` (needs its Keras config to name the groups as Keras does).

    weightkit's records go into the root's attributes, which Keras does not read.
    """
    import h5py

    from ..._atomic import atomic_output
    from ...records import records
    from .write import write_store

    with atomic_output(path, force=force, named=True) as temporary:  # h5py needs a real path
        with h5py.File(temporary, "w") as file:
            write_store(file, model)
            file.attrs.update(records(model))
