"""Cutting a model into a backbone and a head, and finding where to cut.

Keras files with an architecture are cut in their graph (each part stays a model
Keras loads; the head starts with an input of the junction's shape). Files without
one — Keras weights, PyTorch checkpoints, safetensors — are cut in their layer
order, or by key prefix. The head records the fingerprint of the backbone it was
cut from. Nothing is read here: the parts' tensors read from the source when written.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

from ..errors import UsageError
from ..model import Dim, Layer, Model
from .canonical import canonical_shape
from ..records import PROVENANCE_KEY, STRIPPED_PREFIX_KEY
from .fingerprint import fingerprint

__all__ = ["Boundary", "SplitResult", "boundaries", "propose_boundary", "split_model", "reprefixed"]

#: Module names that hold a classifier or task head in PyTorch models.
HEAD_NAMES = ("fc", "classifier", "head", "heads", "last_linear", "logits", "cls", "top", "decode_head")
_HEAD_KINDS = ("pool", "reshape", "dropout", "dense", "activation")


@dataclass
class Boundary:
    """A place to cut: after layer ``at`` (or everything under ``head_prefixes`` is the head)."""

    at: str | None
    shape: tuple[Dim, ...] | None = None
    backbone_params: int = 0
    head_params: int = 0
    head_prefixes: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass
class SplitResult:
    backbone: Model
    head: Model
    boundary: Boundary


def boundaries(model: Model) -> list[Boundary]:
    """Every place the model can be cut, in order, with the tensor shape there."""
    if _has_onnx_graph(model):
        from ..arch.onnx import cut_points

        shapes = _onnx_value_shapes(model.graph)
        return [Boundary(name, shapes.get(name)) for name in cut_points(model.graph.graph)]
    if _has_keras_graph(model):
        from ..arch.keras import cut_points
        from ..formats.keras.shapes import infer_shapes
        from ..formats.keras import parse_config

        shapes = infer_shapes(parse_config(model.config))
        return [_boundary(model, name, shapes.get(name)) for name in cut_points(model.config)]
    weighted = [layer for layer in model.layers if layer.all_tensors()]
    return [_boundary(model, layer.name, _out_shape(layer)) for layer in weighted[:-1]]  # a head needs a layer


def propose_boundary(model: Model) -> Boundary:
    """Where the backbone most likely ends, and why.

    Raises:
        UsageError: the model shows no head (a no-top backbone, a single block).
    """
    if _has_onnx_graph(model):
        proposal = _propose_onnx(model)
    else:
        proposal = _propose_keras(model) if _has_keras_graph(model) else _propose_by_names(model)
    if proposal is None:
        raise UsageError("found no head to cut off: the model looks like a backbone alone",
                         hint="name the cut with --at LAYER (see --list-boundaries)")
    return proposal


def split_model(model: Model, at: str | None = None, *, head_prefixes: list[str] | None = None,
                strip_prefixes: bool = False) -> SplitResult:
    """Cut ``model`` after layer ``at`` (or at ``head_prefixes``, or where `propose_boundary` says).

    The head's metadata records the backbone's fingerprint, which reads the backbone's tensors once;
    the parts' own tensors are read from the source only when they are written.
    """
    if at is None and not head_prefixes:
        proposal = propose_boundary(model)
        at, head_prefixes = proposal.at, proposal.head_prefixes
    if head_prefixes:
        backbone_layers, head_layers = _by_prefix(model, head_prefixes)
        boundary = Boundary(None, head_prefixes=list(head_prefixes))
        backbone, head = _part(model, backbone_layers), _part(model, head_layers)
    elif _has_keras_graph(model):
        backbone, head, boundary = _split_keras_graph(model, at)
    elif _has_onnx_graph(model):
        from ..arch.onnx import cut_model

        backbone, head = cut_model(model, at)
        boundary = Boundary(at, _onnx_shape(head))
    else:
        if model.format == "keras-v3-weights":
            raise UsageError("a .weights.h5 does not record the order of its layers, so it cannot be cut by order",
                             hint="split the .keras file (or a legacy .h5) of the same model")
        backbone_layers, head_layers = _by_order(model, at)
        boundary = _boundary(model, at, _out_shape(backbone_layers[-1]))
        backbone, head = _part(model, backbone_layers), _part(model, head_layers)
    if strip_prefixes:
        _strip_common_prefix(backbone)
        _strip_common_prefix(head)
    boundary.backbone_params, boundary.head_params = backbone.num_params, head.num_params
    _record_provenance(backbone, head)
    return SplitResult(backbone, head, boundary)


# ---- Keras graphs -----------------------------------------------------------------------------


def _has_keras_graph(model: Model) -> bool:
    return model.framework == "keras" and model.has_graph and isinstance(model.config, dict)


def _split_keras_graph(model: Model, at: str) -> tuple[Model, Model, Boundary]:
    from ..formats.keras import output_specs, parse_config
    from ..arch.keras import cut_config

    back_config, head_config = cut_config(model.config, at)
    back_names = {layer.name for layer in parse_config(back_config).layers}
    head_input = Layer(at, kind="input", type_name="InputLayer")
    backbone = _part(model, [l for l in model.layers if l.name in back_names], back_config)
    head = _part(model, [head_input] + [l for l in model.layers if l.name not in back_names], head_config)
    for part in (backbone, head):
        root = parse_config(part.config)
        part.inputs, part.outputs = root.input_specs(), output_specs(root)
    return backbone, head, _boundary(model, at, head.inputs[0].shape)  # the junction, as cut_config found it


def _propose_keras(model: Model) -> Boundary | None:
    """The last layer before the classifier: a global pooling or flatten followed only by head layers."""
    from ..formats.keras import infer_shapes, parse_config
    from ..arch.keras import cut_points

    points = cut_points(model.config)
    layers = {layer.name: layer for layer in model.layers}
    shapes = infer_shapes(parse_config(model.config))
    for index, name in enumerate(points[:-1]):
        after = [layers[n] for n in points[index + 1:] if n in layers]
        following = after[0] if after else None
        if following is None or following.kind not in ("pool", "reshape"):
            continue
        if following.kind == "pool" and not (following.type_name or "").startswith("Global"):
            continue
        if all(layer.kind in _HEAD_KINDS for layer in after):
            return _boundary(model, name, shapes.get(name),
                             f"{following.name} ({following.type_name}) starts the classifier: "
                             f"{', '.join(l.name for l in after)}")
    return None


# ---- ONNX graphs ------------------------------------------------------------------------------


def _has_onnx_graph(model: Model) -> bool:
    return model.format == "onnx" and model.graph is not None


def _propose_onnx(model: Model) -> Boundary | None:
    from ..arch.onnx import propose_cut

    found = propose_cut(model.graph.graph)
    if found is None:
        return None
    tensor, reason = found
    return Boundary(tensor, _onnx_value_shapes(model.graph).get(tensor), reason=reason)


def _onnx_value_shapes(proto: object) -> dict[str, tuple[Dim, ...]]:
    """Shapes of the graph's tensors from ONNX shape inference (symbolic dims as names)."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(proto)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {v.name: tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                          for d in v.type.tensor_type.shape.dim) for v in values}


def _onnx_shape(head: Model) -> tuple[Dim, ...] | None:
    return head.inputs[0].shape if head.inputs else None


# ---- layer order and key prefixes -------------------------------------------------------------


def _by_order(model: Model, at: str) -> tuple[list[Layer], list[Layer]]:
    names = [layer.name for layer in model.layers]
    last = max((i for i, name in enumerate(names) if name == at or name.startswith(f"{at}.")), default=None)
    if last is None:
        raise UsageError(f"no layer named {at!r}", hint="`weightkit split --list-boundaries` lists them")
    if last == len(names) - 1:
        raise UsageError(f"{at!r} is the last layer: the head would be empty")
    return model.layers[: last + 1], model.layers[last + 1:]


def _by_prefix(model: Model, prefixes: list[str]) -> tuple[list[Layer], list[Layer]]:
    def in_head(layer: Layer) -> bool:
        return any(layer.name == p.rstrip(".") or layer.name.startswith(p.rstrip(".") + ".") for p in prefixes)

    head = [layer for layer in model.layers if in_head(layer)]
    if not head:
        raise UsageError(f"no layer starts with {', '.join(prefixes)}")
    if len(head) == len(model.layers):
        raise UsageError("every layer is in the head: the backbone would be empty")
    return [layer for layer in model.layers if not in_head(layer)], head


def _propose_by_names(model: Model) -> Boundary | None:
    tops = list(dict.fromkeys(layer.name.split(".")[0] for layer in model.layers))
    if {"backbone", "head"} <= set(tops):
        return _prefix_boundary(model, ["head"], "keys are grouped as backbone.* and head.*")
    if {"features", "classifier"} <= set(tops):
        return _prefix_boundary(model, ["classifier"], "keys are grouped as features.* and classifier.*")
    heads = [name for name in tops if name in HEAD_NAMES]
    if heads and len(tops) > len(heads):
        return _prefix_boundary(model, heads, f"{', '.join(heads)} is the usual name of a classifier")
    return None


def _prefix_boundary(model: Model, prefixes: list[str], reason: str) -> Boundary:
    backbone, head = _by_prefix(model, prefixes)
    return Boundary(backbone[-1].name, _out_shape(backbone[-1]), sum(l.num_params for l in backbone),
                    sum(l.num_params for l in head), [f"{p}." for p in prefixes], reason)


# ---- parts ------------------------------------------------------------------------------------


def _part(model: Model, layers: list[Layer], config: dict | None = None) -> Model:
    metadata = {k: v for k, v in model.metadata.items() if isinstance(v, (str, int, float, bool))}
    return Model(layers=list(layers), format=model.format, framework=model.framework,
                 framework_version=model.framework_version, has_graph=config is not None,
                 metadata=metadata, config=config, source=model.source)


def _boundary(model: Model, at: str, shape: tuple[Dim, ...] | None, reason: str = "") -> Boundary:
    names = [layer.name for layer in model.layers]
    cut = names.index(at) + 1 if at in names else len(names)
    return Boundary(at, shape, sum(l.num_params for l in model.layers[:cut]),
                    sum(l.num_params for l in model.layers[cut:]), reason=reason)


def _out_shape(layer: Layer) -> tuple[Dim, ...] | None:
    tensor = layer.tensors.get("weight") or layer.tensors.get("running_mean")
    if tensor is None or not tensor.ndim:
        return None
    return (None, canonical_shape(tensor)[0])


def _strip_common_prefix(part: Model) -> None:
    """Drop the first key component when every tensor of the part shares it (``backbone.``)."""
    tensors = part.tensors()
    firsts = {t.name.split(".", 1)[0] for t in tensors if "." in t.name}
    if len(firsts) != 1 or any("." not in t.name for t in tensors):
        return
    prefix = f"{firsts.pop()}."
    part.layers = [reprefixed(layer, prefix, "") for layer in part.layers]
    part.metadata[STRIPPED_PREFIX_KEY] = prefix


def reprefixed(layer: Layer, old: str, new: str) -> Layer:
    """A copy of ``layer`` whose names start with ``new`` instead of ``old`` (the original stays untouched)."""
    tensors = {}
    for role, tensor in layer.tensors.items():
        tensors[role] = copy.copy(tensor)
        tensors[role].name = new + tensor.name.removeprefix(old)
    return replace(layer, name=new + layer.name.removeprefix(old), tensors=tensors)


def _record_provenance(backbone: Model, head: Model) -> None:
    head.metadata[PROVENANCE_KEY] = fingerprint(backbone)
