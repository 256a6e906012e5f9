"""Cutting an ONNX graph at a tensor into two models, and joining two back into one.

A cut point is an activation that every path from the graph's inputs to its
outputs passes through. The parts are extracted with onnx's own `Extractor`
(constants each part needs are kept in it), read back as `Model`s over the same
source file, and so written without materializing more than one tensor at a time.
`OnnxGraph` is this module's `weightkit.arch.Architecture`.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from ..model import Dim, Model
from . import Cut, over_parts

__all__ = ["OnnxGraph", "cut_points", "cut_model", "join_models", "propose_cut"]

_HEAD_OPS = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "Flatten", "Reshape", "Squeeze", "Gemm", "MatMul",
             "Add", "Relu", "Dropout", "Softmax", "LogSoftmax", "Sigmoid", "Identity"}
_POOLING = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "Flatten"}


class OnnxGraph:
    """The `Architecture` of an ONNX graph: cuts are tensors, parts are extracted subgraphs.

    Its boundaries do not name the layers on each side (an extraction per tensor would
    cost more than the listing is worth), so their parameter counts are left at 0.
    """

    def boundaries(self, model: Model) -> list[Cut]:
        """The tensors (in node order) that are the only activation alive at their point."""
        shapes = _value_shapes(model.graph)
        return [Cut(name, shapes.get(name)) for name in cut_points(model.graph.graph)]

    def propose(self, model: Model) -> Cut | None:
        """The tensor entering the classifier (see `propose_cut`)."""
        found = propose_cut(model.graph.graph)
        if found is None:
            return None
        tensor, reason = found
        return Cut(tensor, _value_shapes(model.graph).get(tensor), reason=reason)

    def cut(self, model: Model, at: str) -> tuple[Model, Model]:
        """See `cut_model`."""
        return cut_model(model, at)

    def join(self, backbone: Model, head: Model) -> Model:
        """See `join_models`."""
        return join_models(backbone, head)


def cut_points(graph: Any) -> list[str]:
    """Tensors (in node order) where the graph can be cut: the only activation alive there.

    One pass, in time linear in the graph: an activation is alive from the node making it
    to its last use, so each node adds its outputs and retires what it used last.
    """
    constants = _constant_names(graph)
    nodes = list(graph.node)
    last_use = _last_uses(graph, nodes, constants)
    retiring: dict[int, list[str]] = {}
    for name, index in last_use.items():
        retiring.setdefault(index, []).append(name)
    alive = {i.name for i in graph.input if i.name not in constants and last_use.get(i.name, -1) >= 0}
    points = []
    produced: set[str] = set()
    for index, node in enumerate(nodes):
        outputs = {name for name in node.output if name and name not in constants}
        produced |= outputs
        alive.update(name for name in outputs if last_use.get(name, -1) > index)
        alive.difference_update(retiring.get(index, ()))
        if len(alive) == 1 and index < len(nodes) - 1 and next(iter(alive)) in produced:
            points.append(next(iter(alive)))
    return list(dict.fromkeys(points))


def propose_cut(graph: Any) -> tuple[str, str] | None:
    """The tensor entering the classifier (a global pooling or flatten, then only head ops), and why."""
    producers = {name: node for node in graph.node for name in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    points = cut_points(graph)
    head_after = _only_head_ops_after(points, producers)
    for index, tensor in enumerate(points):
        following = consumers.get(tensor, [])
        if len(following) != 1 or following[0].op_type not in _POOLING:
            continue
        if head_after[index]:
            return tensor, f"{following[0].op_type} node {following[0].name or '(unnamed)'} starts the classifier"
    return None


def _only_head_ops_after(points: list[str], producers: dict[str, Any]) -> list[bool]:
    """For each cut point: whether every later cut point is made by a classifier-head op (one backward pass)."""
    result = [True] * len(points)
    for index in range(len(points) - 2, -1, -1):
        later = producers.get(points[index + 1])
        result[index] = result[index + 1] and (later is None or later.op_type in _HEAD_OPS)
    return result


def cut_model(model: Model, at: str) -> tuple[Model, Model]:
    """The part of ``model`` up to tensor ``at`` and the part from it, each a Model with its own graph.

    Raises:
        UsageError: ``at`` is no tensor of the graph, or not a cut point.
    """
    from onnx import shape_inference
    from onnx.utils import Extractor

    proto = model.graph
    at = _tensor_name(proto.graph, at)
    if at not in cut_points(proto.graph):
        raise UsageError(f"cannot cut at {at!r}: other activations cross that point",
                         hint="`weightkit split --list-boundaries` lists the tensors where it can be cut")
    constants = _constant_names(proto.graph)
    inputs = [i.name for i in proto.graph.input if i.name not in constants]
    outputs = [o.name for o in proto.graph.output]
    extractor = Extractor(shape_inference.infer_shapes(proto))
    if at not in extractor.value_infos:
        raise UsageError(f"ONNX shape inference cannot tell the type and shape of {at!r}, so the head has no input")
    parts = (extractor.extract_model(inputs, [at]), extractor.extract_model([at], outputs))
    return _part(model, parts[0]), _part(model, parts[1])


def join_models(backbone: Model, head: Model) -> Model:
    """One model: the backbone's output feeds the head's input (both read from ONNX files)."""
    import onnx
    from onnx import compose

    back, front = _without_records(backbone.graph), _without_records(head.graph)
    if len(back.graph.output) != 1 or len(front.graph.input) < 1:
        raise UsageError("the backbone must have one output to feed the head")
    head_proto = _without_duplicates(front, back)
    link = (back.graph.output[0].name, _real_inputs(head_proto)[0])
    _check_opsets(back, head_proto)
    shared = _shared_constants(head_proto.graph, back.graph)
    clashing = _clashing_names(head_proto.graph, back.graph, keep={link[1], *shared})
    placeholders = _fresh_names(shared, back.graph, head_proto.graph, prefix="weightkit_shared_")
    _rename(head_proto.graph, {**_fresh_names(clashing, back.graph, head_proto.graph, prefix="head_"),
                               **placeholders})
    # merge_graphs, not merge_models: the latter runs onnx.checker, which resolves the parts'
    # external data against the working directory, not the parts' folders.
    graph = compose.merge_graphs(back.graph, head_proto.graph, io_map=[link],
                                 name=back.graph.name.removesuffix("_backbone"))
    _rename(graph, {new: old for old, new in placeholders.items()})
    merged = onnx.ModelProto()
    merged.CopyFrom(back)
    merged.graph.CopyFrom(graph)
    merged.functions.extend(f for f in head_proto.functions if (f.domain, f.name) not in
                            {(g.domain, g.name) for g in back.functions})
    known = {op.domain for op in back.opset_import}
    merged.opset_import.extend(op for op in head_proto.opset_import if op.domain not in known)
    return _model_over(merged, backbone, head)


# ---- steps ------------------------------------------------------------------------------------


def _value_shapes(proto: Any) -> dict[str, tuple[Dim, ...]]:
    """Shapes of the graph's tensors from ONNX shape inference (symbolic dims as names)."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(proto)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {v.name: tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                          for d in v.type.tensor_type.shape.dim) for v in values}


def _constant_names(graph: Any) -> set[str]:
    """Initializers, Constant outputs, and what nodes compute from constants alone (an Identity of a weight)."""
    names = {init.name for init in graph.initializer}
    for node in graph.node:
        inputs = [name for name in node.input if name]
        from_constants = node.op_type == "Constant" or (inputs and all(name in names for name in inputs)
                                                         and not any(a.type in (5, 10) for a in node.attribute))
        if from_constants:
            names.update(name for name in node.output if name)
    return names


def _last_uses(graph: Any, nodes: list[Any], constants: set[str]) -> dict[str, int]:
    last: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in _inputs_of(node):
            if name not in constants:
                last[name] = index
    for output in graph.output:
        last[output.name] = len(nodes)
    return last


def _inputs_of(node: Any) -> list[str]:
    """A node's inputs, including what its subgraphs read from the outer scope."""
    names = [name for name in node.input if name]
    for attribute in node.attribute:
        for graph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
            for inner in graph.node:
                names.extend(_inputs_of(inner))
    return names


def _tensor_name(graph: Any, at: str) -> str:
    """``at`` as a tensor name; a node's name stands for its only output."""
    for node in graph.node:
        if node.name == at and len(node.output) == 1:
            return node.output[0]
    return at


def _part(model: Model, proto: Any) -> Model:
    from ..formats.onnx.read import model_from_proto
    from ..formats.onnx.source import OnnxSource

    part = model_from_proto(proto, model.resources(OnnxSource)[0])
    part.source = model.source
    part.share_resources(model)  # the file closes with the last of the model and its parts
    return part


def _real_inputs(proto: Any) -> list[str]:
    constants = _constant_names(proto.graph)
    return [i.name for i in proto.graph.input if i.name not in constants]


def _check_opsets(backbone: Any, head: Any) -> None:
    versions = {op.domain: op.version for op in backbone.opset_import}
    for op in head.opset_import:
        if versions.get(op.domain, op.version) != op.version:
            raise UsageError(f"backbone and head use different versions of opset {op.domain or 'ai.onnx'}: "
                             f"{versions[op.domain]} and {op.version}", hint="convert one with onnx.version_converter")


def _without_records(proto: Any) -> Any:
    """A copy without weightkit's own metadata entries (the parts' records differ; the join's are new)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    kept = [(e.key, e.value) for e in copy.metadata_props if not e.key.startswith("weightkit.")]
    del copy.metadata_props[:]
    for key, value in kept:
        copy.metadata_props.add(key=key, value=value)
    return copy


def _without_duplicates(head: Any, backbone: Any) -> Any:
    """The head without what both parts carry: constants used on both sides of the cut, and the
    shape records of the junction."""
    import onnx

    trimmed = onnx.ModelProto()
    trimmed.CopyFrom(head)
    shared = {init.name for init in backbone.graph.initializer}
    known = {v.name for v in (*backbone.graph.value_info, *backbone.graph.output)}
    for field, taken in (("initializer", shared), ("value_info", known)):
        kept = [item for item in getattr(trimmed.graph, field) if item.name not in taken]
        del getattr(trimmed.graph, field)[:]
        getattr(trimmed.graph, field).extend(kept)
    return trimmed


def _shared_constants(head: Any, backbone: Any) -> set[str]:
    """Names the head reads but does not define that are the backbone's initializers (constants used on
    both sides of the cut, kept once by `_without_duplicates`)."""
    defined = _defined_names(head)
    initializers = {init.name for init in backbone.initializer}
    return {name for node in head.node for name in _inputs_of(node) if name in initializers and name not in defined}


def _clashing_names(head: Any, backbone: Any, keep: set[str]) -> set[str]:
    """Names the head defines (edges, inputs, outputs, constants, nodes) that the backbone uses too: a
    graph joined with itself, or parts exported from one graph, would repeat them."""
    taken = _defined_names(backbone) | {name for node in backbone.node for name in _inputs_of(node)}
    taken |= {node.name for node in backbone.node if node.name}
    ours = _defined_names(head) | {node.name for node in head.node if node.name}
    return (ours & taken) - keep


def _defined_names(graph: Any) -> set[str]:
    names = {name for node in graph.node for name in node.output if name}
    names |= {v.name for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer)}
    names |= {s.values.name for s in graph.sparse_initializer} | {s.indices.name for s in graph.sparse_initializer}
    return names


def _fresh_names(names: set[str], *graphs: Any, prefix: str) -> dict[str, str]:
    """``name -> prefix + name``, with the prefix grown until no new name is already in use."""
    if not names:
        return {}
    used = set().union(*(_defined_names(g) | {n for node in g.node for n in _inputs_of(node)} for g in graphs))
    while any(prefix + name in used for name in names):
        prefix += "_"
    return {name: prefix + name for name in sorted(names)}


def _rename(graph: Any, mapping: dict[str, str]) -> None:
    """Rename edges, constants and nodes of ``graph`` and its subgraphs in place (an explicit stack:
    subgraphs nest as deep as the file says)."""
    if not mapping:
        return
    stack = [graph]
    while stack:
        current = stack.pop()
        for node in current.node:
            node.input[:] = [mapping.get(name, name) for name in node.input]
            node.output[:] = [mapping.get(name, name) for name in node.output]
            node.name = mapping.get(node.name, node.name)
            for attribute in node.attribute:
                stack.extend([attribute.g] if attribute.HasField("g") else attribute.graphs)
        for value in (*current.input, *current.output, *current.value_info, *current.initializer):
            value.name = mapping.get(value.name, value.name)
        for sparse in current.sparse_initializer:
            sparse.values.name = mapping.get(sparse.values.name, sparse.values.name)
            sparse.indices.name = mapping.get(sparse.indices.name, sparse.indices.name)


def _model_over(proto: Any, backbone: Model, head: Model) -> Model:
    from ..formats.onnx.read import model_from_proto
    from ..formats.onnx.source import OnnxSource

    sources = [*backbone.resources(OnnxSource), *head.resources(OnnxSource)]
    if not sources:
        raise UsageError("ONNX parts must be read from files to be joined")
    return over_parts(model_from_proto(proto, _SourceChain(sources)), backbone, head)


class _SourceChain:
    """Several sources seen as one by the reader: each tensor is read from the source that owns it."""

    def __init__(self, sources: list[Any]):
        self.sources = sources
        self.path = sources[0].path
        self.external = sources[0].external

    def tensor(self, proto: Any, name: str, **fields: Any) -> Any:
        owner = next((s for s in self.sources if proto.data_location != 1 or s.owns(proto)), self.sources[0])
        return owner.tensor(proto, name, **fields)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sources[0], name)
