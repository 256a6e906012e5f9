"""Cutting a Keras architecture in two at a layer, and joining two back into one.

Works on the config as the file stores it (any generation), so the parts are
written back in the same dialect and load in the Keras that wrote the original.
The head starts with a new input named after the cut layer, so its layers keep
referring to the name they referred to before. `KerasGraph` is this module's
`weightkit.arch.Architecture`: the config-level functions below, over `Model`s.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import UsageError
from ..formats.keras.config import ConfigLayer, architecture, parse_config
from ..formats.keras.shapes import infer_shapes, output_specs
from ..model import Dim, Layer, Model
from . import Cut, joined_metadata, make_part, over_parts

__all__ = ["KerasGraph", "cut_points", "cut_config", "join_configs"]

_HEAD_KINDS = ("pool", "reshape", "dropout", "dense", "activation")


class KerasGraph:
    """The `Architecture` of a Keras file with its config: each part stays a model Keras loads."""

    def boundaries(self, model: Model) -> list[Cut]:
        """After every layer that all paths from the inputs to the outputs pass."""
        root = _model_root(model)
        shapes = infer_shapes(root)
        return [_cut(model, root, name, shapes.get(name)) for name in _cut_points(root)]

    def propose(self, model: Model) -> Cut | None:
        """The last layer before the classifier: a global pooling or flatten followed only by head layers."""
        root = _model_root(model)
        points = _cut_points(root)
        layers = {layer.name: layer for layer in model.layers}
        for index, name in enumerate(points[:-1]):
            after = [layers[n] for n in points[index + 1:] if n in layers]
            following = after[0] if after else None
            if following is None or following.kind not in ("pool", "reshape"):
                continue
            if following.kind == "pool" and not (following.type_name or "").startswith("Global"):
                continue
            if all(layer.kind in _HEAD_KINDS for layer in after) and any(layer.all_tensors() for layer in after):
                cut = _cut(model, root, name, infer_shapes(root).get(name))
                cut.reason = (f"{following.name} ({following.type_name}) starts the classifier: "
                              f"{', '.join(layer.name for layer in after)}")
                return cut
        return _after_nested_extractor(model, root, points)

    def cut(self, model: Model, at: str) -> tuple[Model, Model]:
        """The graph up to ``at`` and the graph after it; the head starts with an input named ``at``.

        Raises:
            UsageError: see `cut_config`.
        """
        back_config, head_config = cut_config(_config(model), at)
        back_names = {layer.name for layer in _root(back_config).layers}
        head_input = Layer(at, kind="input", type_name="InputLayer")
        backbone = make_part(model, [layer for layer in model.layers if layer.name in back_names], back_config)
        head = make_part(model, [head_input] + [layer for layer in model.layers if layer.name not in back_names],
                         head_config)
        for part in (backbone, head):
            root = _model_root(part)
            part.inputs, part.outputs = root.input_specs(), output_specs(root)
        return backbone, head

    def join(self, backbone: Model, head: Model) -> Model:
        """One Keras model: the head's input replaced by the backbone's output.

        Raises:
            UsageError: a part has no Keras architecture, or see `join_configs`.
        """
        if not (backbone.has_graph and head.has_graph) or backbone.framework != "keras":
            raise UsageError("both parts need a Keras architecture to be joined into one model",
                             hint="merge weights-only parts, or split the full model again")
        config = join_configs(_config(backbone), _config(head))
        head_layers = [layer for layer in head.layers if layer.type_name != "InputLayer"]
        root = _root(config)
        joined = Model(layers=backbone.layers + head_layers, format=backbone.format, framework="keras",
                       framework_version=backbone.framework_version, has_graph=True, config=config,
                       inputs=root.input_specs(), outputs=output_specs(root), metadata=joined_metadata(backbone))
        return over_parts(joined, backbone, head)


def _after_nested_extractor(model: Model, root: ConfigLayer, points: list[str]) -> Cut | None:
    """After the last nested model that a few weighted layers follow (a detector around its feature extractor)."""
    layers = {layer.name: layer for layer in model.layers}
    for index in range(len(points) - 2, -1, -1):
        nested = layers.get(points[index])
        if nested is None or nested.kind != "model":
            continue
        after = [layers[n] for n in points[index + 1:] if n in layers]
        if after and any(layer.all_tensors() for layer in after) and nested.num_params > sum(
                layer.num_params for layer in after):
            cut = _cut(model, root, nested.name, infer_shapes(root).get(nested.name))
            cut.reason = (f"{nested.name} is a nested model (the feature extractor); after it: "
                          f"{', '.join(layer.name for layer in after)}")
            return cut
    return None


def _cut(model: Model, root: ConfigLayer, at: str, shape: tuple[Dim, ...] | None) -> Cut:
    """A cut after ``at`` with the model's layers on each side (the partition `cut_config` makes)."""
    backbone = _ancestors(root, at) | {at}
    names = [layer.name for layer in model.layers]
    return Cut(at, shape, [n for n in names if n in backbone], [n for n in names if n not in backbone])


def cut_points(config: dict[str, Any]) -> list[str]:
    """Layers after which the graph can be cut: every path from the inputs to the outputs passes them."""
    return _cut_points(_root(config))


def cut_config(config: dict[str, Any], at: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a model config after layer ``at`` into a backbone config and a head config.

    Raises:
        UsageError: no such layer, or the graph cannot be cut there (a branch crosses the cut,
            a second input feeds the head), or the shape at the cut is unknown.
    """
    root = _root(config)
    problem = _cut_error(root, at)
    if problem:
        raise UsageError(f"cannot cut at {at!r}: {problem}",
                         hint="`weightkit split --list-boundaries` shows where it can")
    shape = infer_shapes(root).get(at)
    if shape is None or shape[-1] is None:
        raise UsageError(f"cannot tell the shape of {at!r}'s output from the config, so the head has no input shape")
    backbone_names = _ancestors(root, at) | {at}
    body = config["config"]
    entries = body["layers"] if isinstance(body, dict) else body
    before = [e for e in entries if _name(e) in backbone_names]
    after = [e for e in entries if _name(e) not in backbone_names]
    return _backbone(config, before, at), _head(config, after, at, shape)


def join_configs(backbone: dict[str, Any], head: dict[str, Any]) -> dict[str, Any]:
    """One config: the head's input replaced by the backbone's output.

    Raises:
        UsageError: the head has more than one input, or layer names collide.
    """
    back_root, head_root = _root(backbone), _root(head)
    inputs = [layer for layer in head_root.layers if layer.class_name == "InputLayer"]
    output = (back_root.output_names or [back_root.layers[-1].name])[-1]
    if len(inputs) > 1:
        raise UsageError("the head has several inputs; weightkit joins heads with one input")
    clash = {layer.name for layer in back_root.layers} & {layer.name for layer in head_root.layers
                                                          if layer.class_name != "InputLayer"}
    if clash:
        raise UsageError(f"backbone and head both have layers named {', '.join(sorted(clash))}")
    head_entries = _entries(head)
    if inputs:
        head_entries = [e for e in head_entries if _name(e) != inputs[0].name]
    renamed = [_rename_inbound(e, inputs[0].name, output) for e in head_entries] if inputs else head_entries
    joined = copy.deepcopy(backbone)
    if _is_sequential(backbone) and _is_sequential(head):
        _set_entries(joined, _entries(backbone) + _without_input_shapes(renamed))
        return joined
    if _is_sequential(joined):
        raise UsageError("joining a Sequential backbone with a functional head is not supported",
                         hint="save the backbone as a functional model")
    _set_entries(joined, _entries(backbone) + renamed)
    outputs = copy.deepcopy(head["config"].get("output_layers")) or [[_name(renamed[-1]), 0, 0]]
    joined["config"]["output_layers"] = outputs
    joined["config"]["name"] = str(joined["config"].get("name", "model")).removesuffix("_backbone")
    return joined


# ---- cutting ----------------------------------------------------------------------------------


def _root(config: dict[str, Any]) -> ConfigLayer:
    """A config dict this module made or was given, parsed."""
    return parse_config(config)


def _model_root(model: Model) -> ConfigLayer:
    """A model's own config, parsed once for every consumer (`weightkit.formats.keras.architecture`)."""
    _config(model)  # refuses a model without a Keras architecture
    root = architecture(model)
    assert root is not None  # _config checked there is one
    return root


def _config(model: Model) -> dict[str, Any]:
    if not isinstance(model.config, dict):
        raise UsageError("the model has no Keras architecture to cut or join")
    return model.config


def _cut_points(root: ConfigLayer) -> list[str]:
    return [layer.name for layer in root.layers if _cut_error(root, layer.name) is None]


def _cut_error(root: ConfigLayer, at: str) -> str | None:
    names = {layer.name for layer in root.layers}
    if at not in names:
        return "the model has no such top-level layer"
    backbone = _ancestors(root, at) | {at}
    outputs = set(root.output_names or [root.layers[-1].name])
    if outputs <= backbone and at not in outputs:
        return "the model's outputs come before it"
    for layer in root.layers:
        if layer.name in backbone:
            continue
        if layer.class_name == "InputLayer":
            return f"input {layer.name!r} feeds the head directly"
        crossing = [name for name in layer.inbound if name in backbone and name != at]
        if crossing:
            return f"head layer {layer.name!r} also takes {crossing[0]!r}, which comes before the cut"
    return None


def _ancestors(root: ConfigLayer, name: str) -> set[str]:
    by_name = root.by_name()
    seen: set[str] = set()
    stack = list(by_name[name].inbound)
    while stack:
        current = stack.pop()
        if current in seen or current not in by_name:
            continue
        seen.add(current)
        stack.extend(by_name[current].inbound)
    return seen


def _backbone(config: dict[str, Any], entries: list[dict[str, Any]], at: str) -> dict[str, Any]:
    part = copy.deepcopy(config)
    _set_entries(part, copy.deepcopy(entries))
    if not _is_sequential(part):
        part["config"]["output_layers"] = [[at, 0, 0]]
        part["config"]["name"] = f"{part['config'].get('name', 'model')}_backbone"
    part.pop("compile_config", None)
    return part


def _head(config: dict[str, Any], entries: list[dict[str, Any]], at: str, shape: tuple[Dim, ...]) -> dict[str, Any]:
    part = copy.deepcopy(config)
    new_input = _input_entry(config, at, shape)
    body = [new_input] + copy.deepcopy(entries)
    _set_entries(part, body)
    if _is_sequential(part):
        if isinstance(part["config"], dict):
            part["config"].pop("build_input_shape", None)
    else:
        part["config"]["input_layers"] = [[at, 0, 0]]
        part["config"]["name"] = f"{part['config'].get('name', 'model')}_head"
    if "build_config" in part:
        part["build_config"] = {"input_shape": list(shape)}
    part.pop("compile_config", None)
    return part


def _input_entry(config: dict[str, Any], name: str, shape: tuple[Dim, ...]) -> dict[str, Any]:
    """An InputLayer in the same dialect as the model's own inputs (batch_shape or batch_input_shape)."""
    template = next((e for e in _entries(config) if e.get("class_name") == "InputLayer"), None)
    entry: dict[str, Any] = (copy.deepcopy(template) if template
                             else {"class_name": "InputLayer", "config": {"dtype": "float32"}})
    layer_config: dict[str, Any] = entry.setdefault("config", {})
    key = "batch_shape" if "batch_shape" in layer_config or "module" in config else "batch_input_shape"
    layer_config.pop("batch_shape", None)
    layer_config.pop("batch_input_shape", None)
    layer_config[key] = list(shape)
    layer_config["name"] = name
    entry["name"] = name
    entry["inbound_nodes"] = []
    return entry


# ---- joining ----------------------------------------------------------------------------------


def _rename_inbound(entry: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    entry = copy.deepcopy(entry)

    def visit(item: Any) -> Any:
        if isinstance(item, dict):
            history = item.get("keras_history")
            if isinstance(history, list) and history and history[0] == old:
                history[0] = new
            return {key: visit(value) for key, value in item.items()}
        if isinstance(item, list):
            if len(item) >= 3 and item[0] == old and isinstance(item[1], int):
                item = [new, *item[1:]]
            return [visit(value) for value in item]
        return item

    entry["inbound_nodes"] = visit(entry.get("inbound_nodes", []))
    return entry


def _without_input_shapes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sequential layers after the join take their input from the backbone, not a declared shape."""
    for entry in entries:
        entry.get("config", {}).pop("batch_input_shape", None)
    return entries


# ---- config dialects --------------------------------------------------------------------------


def _entries(config: dict[str, Any]) -> list[dict[str, Any]]:
    body = config["config"]
    return body["layers"] if isinstance(body, dict) else body


def _set_entries(config: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    if isinstance(config["config"], dict):
        config["config"]["layers"] = entries
    else:
        config["config"] = entries


def _is_sequential(config: dict[str, Any]) -> bool:
    return config.get("class_name") == "Sequential"


def _name(entry: dict[str, Any]) -> str:
    return str(entry.get("name") or entry.get("config", {}).get("name"))
