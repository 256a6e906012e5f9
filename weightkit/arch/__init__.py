"""Where a model can be cut and how parts join: one protocol, three implementations.

`architecture_of(model)` picks the implementation: Keras graphs (`weightkit.arch.keras`,
config surgery), ONNX graphs (`weightkit.arch.onnx`, graph extraction) and files
without a graph (`weightkit.arch.flat`: layer order and key prefixes). Each answers
the same four questions — `boundaries`, `propose`, `cut`, `join` — and knows nothing
of the rules every cut shares (no empty side, counts from the parts, provenance):
those live once in `weightkit.ops.split`, which applies them to all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..model import Dim, Layer, Model

__all__ = ["Cut", "Architecture", "architecture_of", "make_part", "over_parts", "joined_metadata", "is_input"]


@dataclass
class Cut:
    """A place an architecture can cut a model.

    Attributes:
        at: the cut goes after this layer (ONNX: this tensor); with ``head_prefixes``, the
            backbone's last layer.
        shape: the tensor shape there, where known.
        backbone, head: names of the model's layers on each side, in order, where the
            implementation knows them without cutting (None: known only once cut).
        head_prefixes: key prefixes that make up the head (flat checkpoints).
        reason: why a proposal thinks the backbone ends here.
    """

    at: str
    shape: tuple[Dim, ...] | None = None
    backbone: list[str] | None = None
    head: list[str] | None = None
    head_prefixes: list[str] = field(default_factory=list)
    reason: str = ""


class Architecture(Protocol):
    """What every implementation answers for the models it handles."""

    def boundaries(self, model: Model) -> list[Cut]:
        """Every place ``model`` can be cut, in graph/layer order, with the shape there."""
        ...

    def propose(self, model: Model) -> Cut | None:
        """Where the backbone most likely ends, and why; None if the model shows no head."""
        ...

    def cut(self, model: Model, at: str) -> tuple[Model, Model]:
        """The backbone up to ``at`` and the head after it, each a Model over ``model``'s files."""
        ...

    def join(self, backbone: Model, head: Model) -> Model:
        """One model: the backbone's output feeds the head."""
        ...


def architecture_of(model: Model) -> Architecture:
    """The implementation for ``model``: its Keras graph, its ONNX graph, or its layer order."""
    if model.format == "onnx" and model.graph is not None:
        from .onnx import OnnxGraph

        return OnnxGraph()
    if model.framework == "keras" and model.has_graph and isinstance(model.config, dict):
        from .keras import KerasGraph

        return KerasGraph()
    from .flat import FlatLayers

    return FlatLayers()


def make_part(model: Model, layers: list[Layer], config: dict | None = None) -> Model:
    """A model of some of ``model``'s layers (and a config, if it has a graph), reading from its files.

    The part holds those files open too: it stays readable after ``model`` is closed, and is
    closed itself when done with.
    """
    metadata = {k: v for k, v in model.metadata.items() if isinstance(v, (str, int, float, bool))}
    part = Model(layers=list(layers), format=model.format, framework=model.framework,
                 framework_version=model.framework_version, has_graph=config is not None,
                 metadata=metadata, config=config, source=model.source)
    part.share_resources(model)
    return part


def over_parts(joined: Model, backbone: Model, head: Model) -> Model:
    """``joined``, holding the files of both parts open: it reads its tensors from them."""
    joined.share_resources(backbone)
    joined.share_resources(head)
    return joined


def joined_metadata(backbone: Model) -> dict:
    """The backbone's metadata without weightkit's records (a joined model has none of its parts')."""
    return {k: v for k, v in backbone.metadata.items() if not k.startswith("weightkit.")}


def is_input(layer: Layer) -> bool:
    """A graph input (it holds no computation: it belongs to the backbone side of any cut)."""
    return layer.kind == "input" or layer.type_name == "InputLayer"
