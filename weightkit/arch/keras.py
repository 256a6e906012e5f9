"""Cutting a Keras architecture in two at a layer, and joining two back into one.

Works on the config as the file stores it (any generation), so the parts are
written back in the same dialect and load in the Keras that wrote the original.
The head starts with a new input named after the cut layer, so its layers keep
referring to the name they referred to before. `KerasGraph` is this module's
`weightkit.arch.Architecture`: the config-level functions below, over `Model`s.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..formats.keras.config import MODEL_CLASSES, ConfigLayer, architecture, parse_config
from ..formats.keras.shapes import infer_shapes, output_specs
from ..model import Dim, Layer, Model
from . import Cut, joined_metadata, make_part, over_parts

__all__ = ["KerasGraph", "cut_points", "cut_config", "join_configs", "graph_problems"]

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

    def cut(self, model: Model, at: str, *, head_input_shape: tuple[int, ...] | None = None) -> tuple[Model, Model]:
        """The graph up to ``at`` and the graph after it; the head starts with an input named ``at``.

        ``head_input_shape`` (no batch dim) is the shape at the cut where the config cannot tell it.

        Raises:
            UsageError: see `cut_config`.
        """
        back_config, head_config = cut_config(_config(model), at, head_input_shape)
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


def cut_config(config: dict[str, Any], at: str,
               head_input_shape: tuple[int, ...] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
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
    shape = _shape_at_cut(infer_shapes(root).get(at), at, head_input_shape)
    backbone_names = _ancestors(root, at) | {at}
    body = config["config"]
    entries = body["layers"] if isinstance(body, dict) else body
    before = [e for e in entries if _name(e) in backbone_names]
    after = [_rename_inbound(e, at, at, call=0) for e in entries if _name(e) not in backbone_names]  # now an Input
    output_call = _Dialect.of(config).call_index(root.by_name()[at], output=True)
    return _backbone(config, before, at, output_call), _head(config, after, at, shape)


def join_configs(backbone: dict[str, Any], head: dict[str, Any]) -> dict[str, Any]:
    """One config: the head's input replaced by the backbone's output, a complete graph whatever the parts' classes.

    Two Sequential parts stay one Sequential. Otherwise the result is functional: a Sequential
    head's layers get the names and inbound nodes a functional config needs, spelled as the
    backbone spells its own (Keras 3 ``keras_history`` tensors or Keras 1/2 lists), and a
    Sequential backbone is written in functional form first.

    Raises:
        UsageError: the head has more than one input, layer names collide, or a Sequential
            backbone states no input shape.
    """
    back_root, head_root = _root(backbone), _root(head)
    head_input = _single_input(head_root)
    _refuse_clashes(back_root, head_root)
    if _is_sequential(backbone) and _is_sequential(head):
        return _join_sequentials(backbone, head, head_input)
    dialect = _Dialect.of(backbone, head)
    if _is_sequential(backbone):
        backbone = _as_functional(backbone, back_root, head, dialect)
        back_root = _root(backbone)
    output = (back_root.output_names or [back_root.layers[-1].name])[-1]
    if _is_sequential(head):
        head_entries, outputs = _chained_head(head, head_root, output, infer_shapes(back_root).get(output), dialect)
    else:
        call = dialect.call_index(back_root.by_name()[output])
        head_entries = [_rename_inbound(e, head_input, output, call=call) if head_input else copy.deepcopy(e)
                        for e in _entries(head) if _name(e) != head_input]
        outputs = copy.deepcopy(head["config"].get("output_layers")) or [[_name(head_entries[-1]), 0, 0]]
    joined = copy.deepcopy(backbone)
    _set_entries(joined, _entries(backbone) + head_entries)
    joined["config"]["output_layers"] = _spelled_like(backbone["config"].get("output_layers"), outputs)
    joined["config"]["name"] = str(joined["config"].get("name", "model")).removesuffix("_backbone")
    return joined


def graph_problems(config: dict[str, Any]) -> list[str]:
    """What keeps ``config`` from loading as a complete graph; [] when nothing does.

    A layer without a name, a functional layer that nothing calls (no inbound nodes), a call
    or an input/output naming no layer of the model, two layers of one name; nested models too.
    """
    return _graph_problems(config, "")


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


def _shape_at_cut(inferred: tuple[Dim, ...] | None, at: str, given: tuple[int, ...] | None) -> tuple[Dim, ...]:
    """The head's input shape: what the config implies, or what the user gives where it implies nothing."""
    known = inferred is not None and all(isinstance(d, int) for d in inferred[1:])
    if given is None:
        if inferred is None or inferred[-1] is None:
            raise UsageError(f"cannot tell the shape of {at!r}'s output from the config, so the head has no input "
                             "shape (a layer before it has no shape rule in weightkit, e.g. a custom layer or Lambda)",
                             hint="give it without the batch dim: --head-input-shape H,W,C")
        return inferred
    if known and inferred is not None and tuple(inferred[1:]) != tuple(given):
        raise UsageError(f"{at!r} puts out {list(inferred)} by the config; the head input shape given is "
                         f"{[None, *given]}", hint="leave --head-input-shape out: the config tells the shape")
    return (None, *given)


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


def _backbone(config: dict[str, Any], entries: list[dict[str, Any]], at: str, call: int) -> dict[str, Any]:
    """The layers up to ``at``; its output names ``at``'s ``call`` (a nested model's own node counts)."""
    part = copy.deepcopy(config)
    _set_entries(part, copy.deepcopy(entries))
    if not _is_sequential(part):
        part["config"]["output_layers"] = [[at, call, 0]]
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


def _single_input(head: ConfigLayer) -> str | None:
    """The name of the head's InputLayer (None for a Sequential head without one)."""
    inputs = [layer.name for layer in head.layers if layer.class_name == "InputLayer"]
    if len(inputs) > 1:
        raise UsageError("the head has several inputs; weightkit joins heads with one input")
    return inputs[0] if inputs else None


def _refuse_clashes(backbone: ConfigLayer, head: ConfigLayer) -> None:
    clash = {layer.name for layer in backbone.layers} & {layer.name for layer in head.layers
                                                         if layer.class_name != "InputLayer"}
    if clash:
        raise UsageError(f"backbone and head both have layers named {', '.join(sorted(clash))}",
                         hint="rename the head's layers (name=...) and save it again")


def _join_sequentials(backbone: dict[str, Any], head: dict[str, Any], head_input: str | None) -> dict[str, Any]:
    """One Sequential: the backbone's layers, then the head's without its input."""
    joined = copy.deepcopy(backbone)
    head_entries = [copy.deepcopy(e) for e in _entries(head) if head_input is None or _name(e) != head_input]
    _set_entries(joined, _entries(backbone) + _without_input_shapes(head_entries))
    return joined


@dataclass(frozen=True)
class _Dialect:
    """How a functional config spells a call: a Keras 3 ``keras_history`` tensor, or a Keras 1/2 reference list.

    ``reference_length`` is 4 for Keras 2's ``[name, node, tensor, kwargs]``, 3 for Keras 1's.
    """

    keras3: bool
    reference_length: int = 4
    dtype: str = "float32"

    @classmethod
    def of(cls, *configs: dict[str, Any]) -> _Dialect:
        """The spelling of the first call found in ``configs`` (in order), else the Keras generation's."""
        for config in configs:
            for entry in _entries(config):
                for node in entry.get("inbound_nodes") or []:
                    if isinstance(node, dict):
                        return cls(True, dtype=_tensor_dtype(node))
                    if isinstance(node, list) and node and isinstance(node[0], list):
                        return cls(False, reference_length=min(len(node[0]), 4))
        return cls(any(_looks_keras3(config) for config in configs))

    def node(self, source: str, index: int, shape: tuple[Dim, ...] | None) -> Any:
        """One call on the output of layer ``source`` (call ``index``) whose shape is ``shape``.

        Keras 3 also reads the list spelling, so a tensor whose shape is unknown is written that way.
        """
        if self.keras3 and shape is not None:
            tensor = {"class_name": "__keras_tensor__",
                      "config": {"shape": list(shape), "dtype": self.dtype, "keras_history": [source, index, 0]}}
            return {"args": [tensor], "kwargs": {}}
        return [[source, index, 0, {}][:self.reference_length]]

    def call_index(self, source: ConfigLayer, *, output: bool = False) -> int:
        """Which call of ``source`` a reference to its first call names (see keras2onnx's `_node_offsets`).

        A layer: 0. A nested model built on an Input has a node of its own first: Keras 1/2 count it
        everywhere, Keras 3 only in ``output_layers`` and only for Functional models.
        """
        if not source.is_model:
            return 0
        sequential = source.class_name == "Sequential"
        if self.keras3:
            return 1 if output and not sequential else 0
        starts_with_input = bool(source.layers) and source.layers[0].class_name == "InputLayer"
        return 0 if sequential and not starts_with_input else 1


def _tensor_dtype(node: dict[str, Any]) -> str:
    for arg in node.get("args") or []:
        tensor = arg.get("config") if isinstance(arg, dict) else None
        dtype = tensor.get("dtype") if isinstance(tensor, dict) else None
        if isinstance(dtype, str):
            return dtype
    return "float32"


def _looks_keras3(config: dict[str, Any]) -> bool:
    """A Keras 3 config: a ``.keras`` record, or InputLayers with ``batch_shape`` (Keras 2: ``batch_input_shape``)."""
    return "module" in config or any(e.get("class_name") == "InputLayer" and "batch_shape" in e.get("config", {})
                                     for e in _entries(config))


def _chained(entries: list[dict[str, Any]], source: str | None, by_name: dict[str, ConfigLayer],
             shapes: dict[str, tuple[Dim, ...] | None], dialect: _Dialect) -> list[dict[str, Any]]:
    """Sequential layers as functional entries: each named, each calling the one before (the first, ``source``)."""
    chained = []
    previous = source
    for entry in copy.deepcopy(entries):
        name = _name(entry)
        entry["name"] = name
        entry["inbound_nodes"] = [] if previous is None else [
            dialect.node(previous, dialect.call_index(by_name[previous]), shapes.get(previous))]
        chained.append(entry)
        previous = name
    return chained


def _chained_head(head: dict[str, Any], root: ConfigLayer, source: str, shape: tuple[Dim, ...] | None,
                  dialect: _Dialect) -> tuple[list[dict[str, Any]], list[Any]]:
    """A Sequential head's layers as functional entries after ``source``, and the output that names its last."""
    entries = [e for e in _entries(head) if e.get("class_name") != "InputLayer"]
    if not entries:
        raise UsageError("the head has no layers besides its input")
    shapes = {**infer_shapes(root, [shape]), source: shape}
    by_name = {**root.by_name(), source: ConfigLayer(source, "Layer", {})}
    chained = _chained(_without_input_shapes(copy.deepcopy(entries)), source, by_name, shapes, dialect)
    last = by_name[_name(chained[-1])]
    return chained, [[last.name, dialect.call_index(last, output=True), 0]]


def _as_functional(backbone: dict[str, Any], root: ConfigLayer, head: dict[str, Any],
                   dialect: _Dialect) -> dict[str, Any]:
    """A Sequential backbone as the functional model it stands for (it is about to take a functional head)."""
    entries = _entries(backbone)
    if entries and entries[0].get("class_name") == "InputLayer":
        input_entry, layers = entries[0], entries[1:]
    else:
        taken = {layer.name for layer in root.layers} | {_name(entry) for entry in _entries(head)}
        input_entry, layers = _new_input(backbone, root, taken), _without_input_shapes(copy.deepcopy(entries))
    name = _name(input_entry)
    by_name = {**root.by_name(), name: ConfigLayer(name, "InputLayer", {})}
    shapes = {**infer_shapes(root), name: root.input_specs()[0].shape}
    chained = _chained([input_entry, *layers], None, by_name, shapes, dialect)
    body = backbone["config"] if isinstance(backbone["config"], dict) else {}
    record = _functional_record(backbone, head)
    record["config"] = {"name": body.get("name", root.name), "trainable": body.get("trainable", True),
                        "layers": chained,
                        "input_layers": _spelled_like(head["config"].get("input_layers"), [[name, 0, 0]]),
                        "output_layers": [[_name(chained[-1]), 0, 0]]}
    return record


def _functional_record(backbone: dict[str, Any], head: dict[str, Any]) -> dict[str, Any]:
    """The class record of a functional model in the backbone's format: the head's, or Keras 3's for a ``.keras``."""
    if "module" in backbone and "module" not in head:
        return {"module": "keras.src.models.functional", "class_name": "Functional",
                "registered_name": "Functional", "build_config": {"input_shape": None}}
    return {key: copy.deepcopy(value) for key, value in head.items() if key not in ("config", "compile_config")}


def _new_input(backbone: dict[str, Any], root: ConfigLayer, taken: set[str]) -> dict[str, Any]:
    """An InputLayer, named unlike ``taken``, for a Sequential backbone that states its input shape elsewhere."""
    specs = root.input_specs()
    if not specs or specs[0].shape is None:
        raise UsageError("the Sequential backbone states no input shape, so it cannot take a functional head",
                         hint="build the backbone (model.build(shape)) or give it a keras.Input, and save it again")
    name = next(n for n in ("input_layer", *(f"input_layer_{i}" for i in range(1, len(taken) + 2))) if n not in taken)
    return _input_entry(backbone, name, specs[0].shape)


def _spelled_like(template: Any, references: list[Any]) -> list[Any]:
    """``[[name, node, tensor]]`` references as ``template`` spells them: Keras 3 writes one as a bare triple."""
    is_triple = isinstance(template, list) and bool(template) and isinstance(template[0], str)
    if is_triple and len(references) == 1 and isinstance(references[0], list):
        return list(references[0])
    return references


def _rename_inbound(entry: dict[str, Any], old: str, new: str, *, call: int | None = None) -> dict[str, Any]:
    """``entry`` with its references to ``old`` naming ``new`` (and its call ``call``, where given)."""
    entry = copy.deepcopy(entry)

    def visit(item: Any) -> Any:
        if isinstance(item, dict):
            history = item.get("keras_history")
            if isinstance(history, list) and len(history) >= 2 and history[0] == old:
                history[0] = new
                if call is not None:
                    history[1] = call
            return {key: visit(value) for key, value in item.items()}
        if isinstance(item, list):
            if len(item) >= 3 and item[0] == old and isinstance(item[1], int):
                item = [new, item[1] if call is None else call, *item[2:]]
            return [visit(value) for value in item]
        return item

    entry["inbound_nodes"] = visit(entry.get("inbound_nodes", []))
    return entry


def _without_input_shapes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Layers after the join take their input from the backbone, not a declared shape (changes ``entries``)."""
    for entry in entries:
        entry.get("config", {}).pop("batch_input_shape", None)
    return entries


def _graph_problems(config: dict[str, Any], where: str) -> list[str]:
    entries = _entries(config)
    functional = _is_functional(config)
    problems = [f"{where}layer {index} ({entry.get('class_name')}) has no name" for index, entry in enumerate(entries)
                if not _declared_name(entry, functional)]
    if problems:
        return problems
    root = _root(config)
    names = [layer.name for layer in root.layers]
    problems += [f"{where}two layers are named {name!r}" for name in sorted({n for n in names if names.count(n) > 1})]
    if functional:
        problems += _call_problems(root, where)
    for entry, layer in zip(entries, root.layers):
        if layer.class_name in MODEL_CLASSES:
            problems += _graph_problems(entry, f"{where}{layer.name}/")
    return problems


def _is_functional(config: dict[str, Any]) -> bool:
    """A graph of calls (Functional, Model, or a subclass that keeps one), not a Sequential list or a custom model."""
    body = config.get("config")
    return (not _is_sequential(config) and isinstance(body, dict)
            and (config.get("class_name") in MODEL_CLASSES or "output_layers" in body))


def _declared_name(entry: dict[str, Any], functional: bool) -> bool:
    """Whether ``entry`` names its layer where Keras looks: the entry itself in a functional config."""
    name = entry.get("name") if functional else entry.get("name") or entry.get("config", {}).get("name")
    return isinstance(name, str) and bool(name)


def _call_problems(root: ConfigLayer, where: str) -> list[str]:
    """Functional calls that cannot be made: a layer never called, a source, input or output not in the model."""
    layers = root.by_name()
    problems = []
    for layer in root.layers:
        if layer.class_name != "InputLayer" and not layer.inbound:
            problems.append(f"{where}layer {layer.name!r} has no inbound nodes: nothing calls it")
        problems += [f"{where}layer {layer.name!r} takes {source!r}, which is not in the model"
                     for source in layer.inbound if source not in layers]
    if not root.output_names:
        problems.append(f"{where}the model names no outputs")
    for kind, names in (("input", root.input_names), ("output", root.output_names)):
        problems += [f"{where}the model's {kind} {name!r} is not one of its layers" for name in names
                     if name not in layers]
    return problems


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
