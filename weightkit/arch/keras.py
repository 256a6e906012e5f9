"""Cutting a Keras architecture in two at a layer, and joining two back into one.

Works on the config as the file stores it (any generation), so the parts are
written back in the same dialect and load in the Keras that wrote the original.
The head starts with a new input named after the cut layer, so its layers keep
referring to the name they referred to before.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import UsageError
from ..model import Dim
from ..formats.keras.config import ConfigLayer, parse_config
from ..formats.keras.shapes import infer_shapes

__all__ = ["cut_points", "cut_config", "join_configs"]


def cut_points(config: dict[str, Any]) -> list[str]:
    """Layers after which the graph can be cut: every path from the inputs to the outputs passes them."""
    root = parse_config(config)
    return [layer.name for layer in root.layers if _cut_error(root, layer.name) is None]


def cut_config(config: dict[str, Any], at: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a model config after layer ``at`` into a backbone config and a head config.

    Raises:
        UsageError: no such layer, or the graph cannot be cut there (a branch crosses the cut,
            a second input feeds the head), or the shape at the cut is unknown.
    """
    root = parse_config(config)
    problem = _cut_error(root, at)
    if problem:
        raise UsageError(f"cannot cut at {at!r}: {problem}", hint="`weightkit split --list-boundaries` shows where it can")
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
    back_root, head_root = parse_config(backbone), parse_config(head)
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
    joined["config"]["output_layers"] = copy.deepcopy(head["config"].get("output_layers")) or [[_name(renamed[-1]), 0, 0]]
    joined["config"]["name"] = str(joined["config"].get("name", "model")).removesuffix("_backbone")
    return joined


# ---- cutting ----------------------------------------------------------------------------------


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
    entry = copy.deepcopy(template) if template else {"class_name": "InputLayer", "config": {"dtype": "float32"}}
    layer_config = entry.setdefault("config", {})
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
