"""Putting a backbone and a head back together, after checking that they fit.

The joining itself is the parts' architecture's (`weightkit.arch`): the ONNX graphs
merged, the Keras configs joined, or the layers of weights-only parts concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..arch import Architecture
from ..arch.flat import FlatLayers
from ..errors import UsageError
from ..model import Model
from .check import CheckReport
from .junction import check_junction

__all__ = ["MergeResult", "merge_models"]


@dataclass
class MergeResult:
    """The joined model (it holds the parts' files open until closed) and the junction check."""

    model: Model
    report: CheckReport

    def close(self) -> None:
        self.model.close()

    def __enter__(self) -> MergeResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_models(backbone: Model, head: Model, *, force: bool = False, backbone_prefix: str | None = None,
                 head_prefix: str | None = None) -> MergeResult:
    """One model from ``backbone`` then ``head``; the junction is checked first.

    Key prefixes that `split_model` stripped come back (from the parts' records, or
    ``backbone_prefix`` / ``head_prefix``).

    Raises:
        UsageError: the head does not fit the backbone (unless ``force``), or the two
            cannot be joined (different frameworks, a Keras head without an architecture
            on a backbone with one).
    """
    report = check_junction(backbone, head)
    errors = report.errors()
    if errors and not force:
        raise UsageError(f"the head does not fit the backbone: {errors[0].message}",
                         hint="pass --force to merge anyway")
    if backbone.framework != head.framework:
        raise UsageError(f"cannot join a {backbone.framework or backbone.format} backbone and a "
                         f"{head.framework or head.format} head", hint="convert one of them first")
    architecture = _joining(backbone, head)
    if isinstance(architecture, FlatLayers):
        merged = architecture.join(backbone, head, backbone_prefix=backbone_prefix, head_prefix=head_prefix)
    else:
        merged = architecture.join(backbone, head)
    return MergeResult(merged, report)


def _joining(backbone: Model, head: Model) -> Architecture:
    """The architecture that joins the two: the graph's where either part has one, else the layer order's."""
    if backbone.format == "onnx" and head.format == "onnx":
        from ..arch.onnx import OnnxGraph

        return OnnxGraph()
    if backbone.has_graph or head.has_graph:
        from ..arch.keras import KerasGraph

        return KerasGraph()  # joins Keras graphs; refuses a part without one
    return FlatLayers()
