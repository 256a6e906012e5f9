"""Cutting a model into a backbone and a head, and finding where to cut.

Where a model can be cut is its architecture's business (`weightkit.arch`: Keras graphs,
ONNX graphs, files without a graph). The rules every cut shares are written once here:
a cut never leaves an empty side (not after the last layer, not at an input), the
parameter counts come from the parts actually cut, and the head records the fingerprint
of the backbone it was cut from. Nothing is read here: the parts' tensors read from the
source when written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..arch import Cut, architecture_of, is_input
from ..arch.flat import cut_by_prefix, output_shape, reprefixed
from ..errors import UsageError
from ..model import Dim, Model
from ..records import PROVENANCE_KEY, STRIPPED_PREFIX_KEY
from .fingerprint import fingerprint
from .inspect import layer_params, totals

__all__ = ["Boundary", "SplitResult", "boundaries", "propose_boundary", "split_model", "reprefixed"]


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
    """The two parts and where they were cut. The parts hold their source's files open until closed
    (``close()``, or use the result in a ``with`` block)."""

    backbone: Model
    head: Model
    boundary: Boundary

    def close(self) -> None:
        self.backbone.close()
        self.head.close()

    def __enter__(self) -> SplitResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def boundaries(model: Model) -> list[Boundary]:
    """Every place the model can be cut, in order, with the tensor shape there.

    A cut after the last layer (an empty head) or at an input (an empty backbone) is none.
    """
    _check_layer_order_known(model)
    cuts = architecture_of(model).boundaries(model)
    return [_boundary(model, cut) for cut in cuts if not _empty_side(model, cut)]


def propose_boundary(model: Model) -> Boundary:
    """Where the backbone most likely ends, and why.

    Raises:
        UsageError: the model shows no head (a no-top backbone, a single block).
    """
    _check_layer_order_known(model)
    proposal = architecture_of(model).propose(model)
    if proposal is None or _empty_side(model, proposal):
        raise UsageError("found no head to cut off: the model looks like a backbone alone",
                         hint="name the cut with --at LAYER (see --list-boundaries)")
    return _boundary(model, proposal)


def split_model(model: Model, at: str | None = None, *, head_prefixes: list[str] | None = None,
                strip_prefixes: bool = False, head_input_shape: tuple[int, ...] | None = None) -> SplitResult:
    """Cut ``model`` after layer ``at`` (or at ``head_prefixes``, or where `propose_boundary` says).

    The head's metadata records the backbone's fingerprint, which reads the backbone's tensors once;
    the parts' own tensors are read from the source only when they are written.

    Raises:
        UsageError: no such layer; a cut the architecture cannot make; a cut after the last
            layer (the head would be empty) or at an input (the backbone would be empty).
    """
    _check_layer_order_known(model)
    if at is None and not head_prefixes:
        proposal = propose_boundary(model)
        at, head_prefixes = proposal.at, proposal.head_prefixes
    if head_prefixes or at is None:
        backbone, head = cut_by_prefix(model, head_prefixes or [])
        boundary = Boundary(None, head_prefixes=list(head_prefixes or []))
    else:
        _check_not_an_output(model, at)
        backbone, head = _cut(model, at, head_input_shape)
        _check_sides(at, backbone, head)
        boundary = Boundary(at, _junction_shape(backbone, head))
    if strip_prefixes:
        _strip_common_prefix(backbone)
        _strip_common_prefix(head)
    boundary.backbone_params, boundary.head_params = totals(backbone).params, totals(head).params
    _record_provenance(backbone, head)
    return SplitResult(backbone, head, boundary)


# ---- the rules every cut shares ---------------------------------------------------------------


def _cut(model: Model, at: str, head_input_shape: tuple[int, ...] | None) -> tuple[Model, Model]:
    """The architecture's cut; a head input shape is given to Keras graphs, the one kind that can lack it."""
    architecture = architecture_of(model)
    if head_input_shape is None:
        return architecture.cut(model, at)
    from ..arch.keras import KerasGraph

    if not isinstance(architecture, KerasGraph):
        raise UsageError("a head input shape is for Keras models with an architecture; this model's parts "
                         "need none")
    return architecture.cut(model, at, head_input_shape=head_input_shape)


def _check_layer_order_known(model: Model) -> None:
    """A Keras 3 ``.weights.h5`` without its config keeps layers by class name: no order, no graph to cut."""
    if model.format == "keras-v3-weights" and model.config is None:
        raise UsageError("a Keras 3 .weights.h5 names its groups after layer classes and records no layer order "
                         "or graph, so weightkit cannot tell where the backbone ends or which layers are the head",
                         hint="give the model's architecture: --arch MODEL.keras (or its config.json, or a "
                         "full-model .h5)")


def _empty_side(model: Model, cut: Cut) -> bool:
    """The cut leaves no layer in the head, or nothing but inputs in the backbone."""
    if cut.backbone is None or cut.head is None:
        return False  # the architecture knows its sides only once cut; `_check_sides` refuses then
    inputs = {layer.name for layer in model.layers if is_input(layer)}
    return not cut.head or all(name in inputs for name in cut.backbone)


def _check_not_an_output(model: Model, at: str) -> None:
    if at in {output.name for output in model.outputs}:
        raise UsageError(f"{at!r} is the last layer: the head would be empty")


def _check_sides(at: str, backbone: Model, head: Model) -> None:
    """The parts as cut: a head with layers, a backbone with more than its inputs."""
    if all(is_input(layer) for layer in head.layers):
        raise UsageError(f"{at!r} is the last layer: the head would be empty")
    if all(is_input(layer) for layer in backbone.layers):
        raise UsageError(f"{at!r} is an input: the backbone would be empty",
                         hint="`weightkit split --list-boundaries` lists the places it can be cut")


def _boundary(model: Model, cut: Cut) -> Boundary:
    """The cut as the user sees it, with each side's parameters counted over the layers it takes."""
    return Boundary(cut.at, cut.shape, _params(model, cut.backbone), _params(model, cut.head),
                    list(cut.head_prefixes), cut.reason)


def _params(model: Model, names: list[str] | None) -> int:
    if names is None:
        return 0
    taken = set(names)
    return sum(layer_params(model, layer) for layer in model.layers if layer.name in taken)


def _junction_shape(backbone: Model, head: Model) -> tuple[Dim, ...] | None:
    """The shape where the parts meet: the head's input in a graph, the backbone's last layer's width without."""
    if head.has_graph:
        return head.inputs[0].shape if head.inputs else None
    return output_shape(backbone.layers[-1])


# ---- parts ------------------------------------------------------------------------------------


def _strip_common_prefix(part: Model) -> None:
    """Drop the first key component when every tensor of the part shares it (``backbone.``)."""
    tensors = part.tensors()
    firsts = {t.name.split(".", 1)[0] for t in tensors if "." in t.name}
    if len(firsts) != 1 or any("." not in t.name for t in tensors):
        return
    prefix = f"{firsts.pop()}."
    part.layers = [reprefixed(layer, prefix, "") for layer in part.layers]
    part.metadata[STRIPPED_PREFIX_KEY] = prefix


def _record_provenance(backbone: Model, head: Model) -> None:
    head.metadata[PROVENANCE_KEY] = fingerprint(backbone)
