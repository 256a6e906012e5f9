"""Keras HDF5 files of every generation: full models and weights-only files.

Covers ``model.save("x.h5")`` and ``save_weights("x.h5")`` from Keras 1, Keras 2,
tf.keras 2.x and Keras 3, plus the pre-1.0 ``nb_layers`` layout. Keras 3's own
``.weights.h5`` layout is an HDF5 file too: it is recognised here and read by
`weightkit.formats.keras.store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ... import kinds, limits
from ...errors import FileFormatError
from ...model import Layer, Model, Tensor
from .._owned import owned_by_model
from .._parsers.hdf5 import HDF5_SIGNATURE, Group, H5Source, attr_json, attr_text, name_list
from .._probe import Probe
from . import store
from ._tensors import dataset_tensor
from .config import ConfigLayer, parse_config, remember_architecture
from .shapes import output_specs

__all__ = ["sniff", "read", "read_source", "write"]

LABEL = "Keras .h5 files (full models and weights, Keras 1 to 3, .weights.h5)"


def sniff(probe: Probe) -> bool:
    """HDF5 files start with the HDF5 signature (weightkit reads no user blocks)."""
    return probe.head.startswith(HDF5_SIGNATURE)


def read(probe: Probe) -> Model:
    """Read a Keras HDF5 file of any generation into a `Model` (no tensor data is read)."""
    return owned_by_model(H5Source(probe.path), read_source)


def read_source(source: H5Source, config: Any = None, root: ConfigLayer | None = None) -> Model:
    """Read an open HDF5 source: legacy Keras layout or Keras 3 ``.weights.h5`` layout.

    ``config`` (with ``root``, its parsed tree) is an architecture given apart from the file
    (``--arch``): it replaces the file's own and orders the layers.
    """
    file = source.file
    if store.is_weights_store(file):
        return store.read_weights_file(source, config, root)
    if name_list(file, "layer_names") is not None or "model_weights" in file or "nb_layers" in file.attrs:
        return _read_legacy(source, config, root)
    raise FileFormatError(f"an HDF5 file, but not a Keras weight file: {_describe(file)}", path=source.path)


@dataclass
class _Context:
    """What every layer of one legacy file is read with."""

    source: H5Source
    keras1: bool
    has_config: bool


def _read_legacy(source: H5Source, given: Any = None, given_root: ConfigLayer | None = None) -> Model:
    file = source.file
    config_data = given if given is not None else attr_json(file, "model_config", source.path)
    weights = file if name_list(file, "layer_names") is not None or "nb_layers" in file.attrs else file["model_weights"]
    if not isinstance(weights, Group):
        raise FileFormatError("'model_weights' is a dataset, not the group of layers Keras writes", path=source.path)
    version = attr_text(file, "keras_version") or attr_text(weights, "keras_version")
    backend = attr_text(file, "backend") or attr_text(weights, "backend")
    root = given_root or (_parse(config_data, source.path) if config_data is not None else None)
    context = _Context(source, keras1=version is None, has_config=root is not None)
    if "nb_layers" in file.attrs and name_list(weights, "layer_names") is None:
        layers = _read_pre_1_0(weights, context)
    else:
        layers = _read_layers(weights, root, context)
    model = Model(
        layers=layers,
        format="keras-h5" if root is not None else "keras-weights-h5",
        framework="keras",
        framework_version=version,
        has_graph=root is not None,
        metadata=_metadata(file, version, backend, source.path),
        config=config_data,
        source=str(source.path),
    )
    if root is not None:
        remember_architecture(model, root)
        model.inputs = root.input_specs()
        model.outputs = output_specs(root)
    model.extras = _extras(file, source)
    return model


def _parse(config_data: Any, path: Path) -> ConfigLayer:
    try:
        return parse_config(config_data)
    except ValueError as exc:
        raise FileFormatError(f"model_config is not a Keras config: {exc}", path=path) from None


def _read_layers(group: Any, root: ConfigLayer | None, context: _Context) -> list[Layer]:
    names = name_list(group, "layer_names") or []
    configs = root.by_name() if root else {}
    layers = []
    for name in names:
        if not isinstance(group.get(name), Group):
            raise FileFormatError(f"layer {name!r} is listed in layer_names but has no group", path=context.source.path,
                                  hint="the file is corrupted or was edited by hand")
        layers.append(_read_layer(group[name], name, configs.get(name), context))
    return layers


def _read_layer(group: Any, name: str, config: ConfigLayer | None, context: _Context) -> Layer:
    weight_names = name_list(group, "weight_names") or []
    weights = [(weight_name, _dataset(group, weight_name, context)) for weight_name in weight_names]
    layer = Layer(name, type_name=config.class_name if config else None,
                  config=config.raw if config else None, inbound=list(config.inbound) if config else [])
    if config is not None and config.is_model:
        layer.kind = "model"
        frozen = not config.config.get("trainable", True)
        _fill_nested(layer, config, _strip_prefix(weights, name), context, frozen=frozen)
    elif config is None and _looks_nested(name, weight_names):
        layer.kind = "model"
        _fill_nested_by_path(layer, weights, context)
    else:
        _fill_tensors(layer, weights, config, context, frozen=False)
    return layer


def _dataset(group: Any, weight_name: str, context: _Context) -> Any:
    try:
        dataset = group[weight_name]
    except (KeyError, ValueError):
        raise FileFormatError(f"layer {group.name.rsplit('/', 1)[-1]!r} lists weight {weight_name!r} "
                              "but the file has no such dataset", path=context.source.path,
                              hint="the file is corrupted or truncated") from None
    if not hasattr(dataset, "shape"):
        raise FileFormatError(f"weight {weight_name!r} is a group, not a dataset", path=context.source.path)
    return dataset


def _fill_tensors(layer: Layer, weights: list[tuple[str, Any]], config: ConfigLayer | None,
                  context: _Context, frozen: bool) -> None:
    """Give ``layer`` its own tensors: roles, kind and layouts from names, config and shapes."""
    roles = [kinds.canonical_role(weight_name, layer.name) for weight_name, _ in weights]
    if config is not None:
        layer.kind = kinds.kind_of_keras_class(config.class_name)
    if layer.kind == "unknown" and weights:
        layer.kind = kinds.infer_kind({role: tuple(ds.shape) for role, (_, ds) in zip(roles, weights)})
    trainable = None
    if context.has_config:
        trainable = not frozen and bool(config.config.get("trainable", True)) if config else not frozen
    for role, (weight_name, dataset) in zip(roles, weights):
        role = kinds.role_in_kind(layer.kind, role)
        key = role if role not in layer.tensors else weight_name
        layer.tensors[key] = dataset_tensor(
            dataset, context.source, weight_name, role=role,
            layout=_layout(layer.kind, role, dataset.shape, config, context),
            trainable=None if trainable is None else trainable and role not in kinds.NON_TRAINABLE_ROLES,
        )


def _layout(kind: str, role: str, shape: tuple[int, ...], config: ConfigLayer | None, context: _Context) -> str | None:
    layout = kinds.keras_layout(kind, role)
    if not context.keras1 or layout != "HWIO" or len(shape) != 4:
        return layout
    if config is not None:  # Keras 1 says it: dim_ordering 'th' (channels_first) stores kernels (out, in, h, w)
        return "OIHW" if config.config.get("data_format") == "channels_first" else "HWIO"
    return "OIHW" if _looks_channels_first(shape) else "HWIO"


def _looks_channels_first(shape: tuple[int, ...]) -> bool:
    """Keras 1 weights-only files record no dim_ordering: square trailing dims mean (out, in, h, w)."""
    out_or_h, in_or_w, h_or_in, w_or_out = shape
    trailing_square = h_or_in == w_or_out and h_or_in <= 11
    leading_square = out_or_h == in_or_w and out_or_h <= 11
    return trailing_square and not leading_square


def _strip_prefix(weights: list[tuple[str, Any]], name: str) -> list[tuple[str, Any]]:
    """Keras 3 prefixes a nested model's weights with its name (``inner/conv/kernel``); tf.keras does not."""
    prefix = name + "/"
    return [(w[len(prefix):] if w.startswith(prefix) and "/" in w[len(prefix):] else w, ds) for w, ds in weights]


def _fill_nested(layer: Layer, config: ConfigLayer, weights: list[tuple[str, Any]], context: _Context,
                 frozen: bool) -> None:
    """Distribute a nested model's weights to its sublayers, following its config."""
    owned: dict[str, list[tuple[str, Any]]] = {sub.name: [] for sub in config.layers}
    leftover = []
    for weight_name, dataset in weights:
        owner, rest = _owner(config, weight_name)
        if owner is None:
            leftover.append((weight_name, dataset))
        else:
            owned[owner].append((rest, dataset))
    for sub in config.layers:
        if config.class_name == "Sequential" and sub.class_name == "InputLayer":
            continue  # Keras leaves it out of Sequential.layers
        child = Layer(sub.name, type_name=sub.class_name, config=sub.raw, inbound=list(sub.inbound))
        sub_frozen = frozen or not sub.config.get("trainable", True)
        if sub.is_model:
            child.kind = "model"
            _fill_nested(child, sub, owned[sub.name], context, sub_frozen)
        else:
            _fill_tensors(child, owned[sub.name], sub, context, frozen=frozen)
        layer.layers.append(child)
    _fill_tensors(layer, leftover, None, context, frozen)
    layer.kind = "model"


def _owner(config: ConfigLayer, weight_name: str) -> tuple[str | None, str]:
    """Which direct sublayer of ``config`` owns ``weight_name``, and the name relative to it."""
    parts = weight_name.split("/")[:-1]
    subs = config.by_name()
    for start in range(len(parts)):
        for stop in range(len(parts), start, -1):
            candidate = "/".join(parts[start:stop])
            if candidate in subs:
                return candidate, "/".join(weight_name.split("/")[stop:]) if subs[candidate].is_model else weight_name
    for sub in config.layers:  # tf.keras names nested weights by the innermost layer only
        if sub.is_model and _owner(sub, weight_name)[0] is not None:
            return sub.name, weight_name
    return None, weight_name


def _looks_nested(name: str, weight_names: list[str]) -> bool:
    folders = {w.rsplit("/", 1)[0] for w in weight_names if "/" in w} - {name}
    return len(folders) >= 2


def _fill_nested_by_path(layer: Layer, weights: list[tuple[str, Any]], context: _Context) -> None:
    """Without a config, a nested model's sublayers are the folders of its weight names."""
    groups: dict[str, list[tuple[str, Any]]] = {}
    for weight_name, dataset in _strip_prefix(weights, layer.name):
        folder = weight_name.rsplit("/", 1)[0] if "/" in weight_name else ""
        groups.setdefault(folder, []).append((weight_name, dataset))
    for folder, owned in groups.items():
        if not folder:
            _fill_tensors(layer, owned, None, context, frozen=False)
            continue
        child = Layer(folder)
        _fill_tensors(child, owned, None, context, frozen=False)
        layer.layers.append(child)


def _read_pre_1_0(group: Any, context: _Context) -> list[Layer]:
    """The layout before Keras 1.0: ``layer_{k}`` groups holding ``param_{p}`` datasets."""
    layers = []
    count = _count(group, "nb_layers", context)
    for index in range(count):
        sub = group.get(f"layer_{index}")
        if not isinstance(sub, Group):
            raise FileFormatError(f"nb_layers is {count} but group 'layer_{index}' is missing",
                                  path=context.source.path)
        params = _count(sub, "nb_params", context) if "nb_params" in sub.attrs else 0
        weights = [(f"layer_{index}/param_{p}", _dataset(sub, f"param_{p}", context)) for p in range(params)]
        layer = Layer(f"layer_{index}")
        for weight_name, dataset in weights:
            param = weight_name.rsplit("/", 1)[-1]
            layer.tensors[param] = dataset_tensor(dataset, context.source, weight_name, role=param)
        layers.append(layer)
    return layers


def _count(group: Any, name: str, context: _Context) -> int:
    """A count attribute of the pre-1.0 layout (``nb_layers``, ``nb_params``): one whole number, bounded."""
    value = group.attrs[name]
    if isinstance(value, np.ndarray) and value.shape in ((), (1,)):
        value = value.reshape(())[()]
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 0:
        raise FileFormatError(f"attribute {name!r} of {group.name!r} is {_shown(value)}, not a count",
                              path=context.source.path, hint="the file is corrupted or was edited by hand")
    limits.ENTRIES.check(int(value), f"attribute {name!r} of {group.name!r}", path=context.source.path)
    return int(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _extras(file: Any, source: H5Source) -> dict[str, list[Tensor]]:
    extras: dict[str, list[Tensor]] = {}
    for group_name, label in (("optimizer_weights", "optimizer"), ("top_level_model_weights", "top_level")):
        group = file.get(group_name)
        if not isinstance(group, Group):
            continue
        tensors = _datasets_under(group, source)
        order = name_list(group, "weight_names")
        if order:
            rank = {n: i for i, n in enumerate(order)}
            tensors.sort(key=lambda t: rank.get(t.name, len(rank)))
        if tensors:
            extras[label] = tensors
    return extras


def _datasets_under(group: Any, source: H5Source) -> list[Tensor]:
    """A tensor for every dataset below ``group``, named by its path relative to ``group``."""
    tensors: list[Tensor] = []

    def collect(name: str, obj: Any) -> None:
        if hasattr(obj, "shape"):
            tensors.append(dataset_tensor(obj, source, name))

    group.visititems(collect)
    return tensors


def _metadata(file: Any, version: str | None, backend: str | None, path: Path) -> dict[str, Any]:
    metadata: dict[str, Any] = {"writer": _writer(version), "backend": backend}
    metadata.update({key: attr_text(file, key) for key in file.attrs if key.startswith("weightkit.")})
    training = attr_json(file, "training_config", path)
    if isinstance(training, dict):
        optimizer = training.get("optimizer_config", {})
        metadata["training_config"] = {
            "optimizer": optimizer.get("class_name") if isinstance(optimizer, dict) else None,
            "loss": training.get("loss"),
        }
    return {key: value for key, value in metadata.items() if value is not None}


def _writer(version: str | None) -> str:
    """Which Keras wrote the file, as precisely as its attributes allow."""
    if version is None:
        return "Keras 1.x (the file records no version)"
    if version.startswith("3."):
        return f"Keras {version}"
    major_minor = tuple(int(p) for p in version.split("-")[0].split(".")[:2] if p.isascii() and p.isdigit())
    if version.endswith("-tf") or major_minor >= (2, 4):
        return f"tf.keras {version}"
    return f"Keras {version}"


def _describe(file: Any) -> str:
    """A short account of what a non-Keras HDF5 file holds."""
    groups: list[str] = []
    datasets: list[str] = []
    file.visititems(lambda name, obj: (datasets if hasattr(obj, "shape") else groups).append(name))
    top = ", ".join(sorted(file.keys())[:6]) or "nothing"
    return f"{len(groups)} groups and {len(datasets)} datasets, top level: {top}"


def write(model: Model, path: Any, *, force: bool = False) -> None:
    """Write ``model`` as a legacy Keras ``.h5``: a full model when it has a Keras config, else weights only.

    Keras loads the result with ``keras.models.load_model`` (full model) or
    ``model.load_weights`` (either). Tensors are copied one at a time.
    """
    import h5py

    from ..._atomic import atomic_output
    from .write import write_legacy

    with atomic_output(path, force=force, named=True) as temporary:  # h5py needs a real path
        with h5py.File(temporary, "w") as file:
            write_legacy(file, model)
