"""Putting a backbone and a head back together, after checking that they fit."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..errors import UsageError
from ..model import Model
from .check import CheckReport, check_junction
from ..records import STRIPPED_PREFIX_KEY, recorded
from .split import reprefixed

__all__ = ["MergeResult", "merge_models"]


@dataclass
class MergeResult:
    model: Model
    report: CheckReport


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
    if backbone.format == "onnx" and head.format == "onnx":
        from ..arch.onnx import join_models

        merged = join_models(backbone, head)
    elif backbone.has_graph or head.has_graph:
        merged = _merge_graphs(backbone, head)
    else:
        merged = _merge_layers(backbone, head, backbone_prefix, head_prefix)
    return MergeResult(merged, report)


def _merge_layers(backbone: Model, head: Model, backbone_prefix: str | None, head_prefix: str | None) -> Model:
    prefixes = [given if given is not None else recorded(part, STRIPPED_PREFIX_KEY) or ""
                for part, given in ((backbone, backbone_prefix), (head, head_prefix))]
    layers = []
    for part, prefix in zip((backbone, head), prefixes):
        layers.extend(reprefixed(layer, "", prefix) for layer in part.layers)
    names = [t.name for layer in layers for t in layer.tensors.values()]
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise UsageError(f"backbone and head both hold {', '.join(duplicates[:3])}")
    return Model(layers=layers, format=backbone.format, framework=backbone.framework,
                 framework_version=backbone.framework_version, metadata=_metadata(backbone))


def _merge_graphs(backbone: Model, head: Model) -> Model:
    if not (backbone.has_graph and head.has_graph) or backbone.framework != "keras":
        raise UsageError("both parts need a Keras architecture to be joined into one model",
                         hint="merge weights-only parts, or split the full model again")
    from ..formats.keras import output_specs, parse_config
    from ..arch.keras import join_configs

    config = join_configs(backbone.config, head.config)
    head_layers = [layer for layer in head.layers if layer.type_name != "InputLayer"]
    root = parse_config(config)
    return Model(layers=backbone.layers + head_layers, format=backbone.format, framework="keras",
                 framework_version=backbone.framework_version, has_graph=True, config=config,
                 inputs=root.input_specs(), outputs=output_specs(root), metadata=_metadata(backbone))


def _metadata(backbone: Model) -> dict:
    return {k: v for k, v in backbone.metadata.items() if not k.startswith("weightkit.")}
