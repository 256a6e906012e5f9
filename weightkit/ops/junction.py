"""Does a head fit the features a backbone puts out? The layer that produces them and the one that takes them.

`check_junction` is what `weightkit check BACKBONE HEAD` and `merge` ask before the
two parts are joined.
"""

from __future__ import annotations

from ..formats.keras import architecture, infer_shapes
from ..model import Dim, Model
from ..records import recorded_backbone
from .canonical import Unit, in_channels, out_channels, units
from .check import CheckReport, Finding
from .fingerprint import fingerprint

__all__ = ["check_junction"]


def check_junction(backbone: Model, head: Model, *, input_shape: tuple[int, ...] | None = None) -> CheckReport:
    """Does ``head`` take what ``backbone`` puts out? Names both layers and both numbers."""
    report = CheckReport("junction", "junction")
    produced, producer, feature_map = _backbone_output(backbone, input_shape)
    expected, consumer = _head_input(head)
    if produced is None or expected is None:
        report.findings.append(Finding("junction", "warning", "cannot tell the channels at the junction: "
                                       f"backbone {producer or '?'} puts out {produced or '?'}, head {consumer or '?'} "
                                       f"takes {expected or '?'}"))
    elif produced != expected:
        report.findings.append(Finding(
            "junction", "error", f"backbone layer {producer!r} puts out {produced} channels"
            + (f" (feature map {list(feature_map)})" if feature_map else "")
            + f"; head layer {consumer!r} expects {expected}", [n for n in (producer, consumer) if n is not None],
            fix=f"use a head made for a {produced}-channel backbone, or a backbone that puts out {expected} channels"))
    else:
        report.findings.append(Finding("fits", "info", f"backbone layer {producer!r} puts out {produced} channels"
                                       + (f" (feature map {list(feature_map)})" if feature_map else "")
                                       + f", head layer {consumer!r} takes {expected}"))
    _provenance(backbone, head, report)
    return report


def _backbone_output(backbone: Model,
                     input_shape: tuple[int, ...] | None) -> tuple[int | None, str | None, tuple | None]:
    keras_output = _keras_graph_output(backbone, input_shape)
    if keras_output is not None:
        return keras_output
    last = _weighted_units(backbone)[-1:] if _weighted_units(backbone) else []
    for unit in last:
        return out_channels(unit), unit.path, None
    return None, None, None


def _keras_graph_output(backbone: Model,
                        input_shape: tuple[int, ...] | None) -> tuple[int, str, tuple[Dim, ...]] | None:
    """Channels, name and shape of a Keras graph's output, from its config; None when they are unknown."""
    if not (backbone.has_graph and backbone.framework == "keras" and backbone.config is not None):
        return None

    root = architecture(backbone)
    if root is None:
        return None
    inputs: list[tuple[Dim, ...] | None] | None = [(None, *input_shape)] if input_shape else None
    shapes = infer_shapes(root, inputs)
    name = (root.output_names or [root.layers[-1].name])[0]
    shape = shapes.get(name)
    if shape is not None and isinstance(shape[-1], int):
        return shape[-1], name, shape
    return None


def _head_input(head: Model) -> tuple[int | None, str | None]:
    for unit in _weighted_units(head)[:1]:
        return in_channels(unit), unit.path
    return None, None


def _weighted_units(model: Model) -> list[Unit]:
    return [unit for unit in units(model) if "weight" in unit.tensors or "running_mean" in unit.tensors]


def _provenance(backbone: Model, head: Model, report: CheckReport) -> None:
    recorded = recorded_backbone(head)
    if recorded is None:
        return
    actual = fingerprint(backbone)
    if actual != recorded:
        report.findings.append(Finding(
            "provenance", "warning", "the head was trained on another backbone (its recorded fingerprint "
            f"{recorded[:19]}… differs from this backbone's {actual[:19]}…): loading will succeed, "
            "accuracy will not", fix="pair the head with the backbone it was cut from, or fine-tune it on this one"))
    else:
        report.findings.append(Finding("provenance", "info", "the head was cut from this very backbone"))
