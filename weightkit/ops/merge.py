"""Putting a backbone and a head back together, after checking that they fit.

The joining itself is the parts' architecture's (`weightkit.arch`): the ONNX graphs
merged, the Keras configs joined, or the layers of weights-only parts concatenated.
`save_merged` writes the result and reads it back, so a merge never leaves a file
that does not hold the model it reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..arch import Architecture
from ..arch.flat import FlatLayers
from ..arch.keras import graph_problems
from ..errors import UsageError, WeightkitError
from ..formats import read, write
from ..model import Model
from .check import CheckReport
from .junction import check_junction

__all__ = ["MergeResult", "merge_models", "save_merged", "merge_document"]


@dataclass
class MergeResult:
    """The joined model (it holds the parts' files open until closed) and the junction check; once
    written, the file (``output``) and its format as read back (``output_format``)."""

    model: Model
    report: CheckReport
    output: str | None = None
    output_format: str | None = None

    def close(self) -> None:
        self.model.close()

    def __enter__(self) -> MergeResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_models(backbone: Model, head: Model, *, ignore_junction: bool = False, backbone_prefix: str | None = None,
                 head_prefix: str | None = None) -> MergeResult:
    """One model from ``backbone`` then ``head``; the junction is checked first.

    Key prefixes that `split_model` stripped come back (from the parts' records, or
    ``backbone_prefix`` / ``head_prefix``). ``ignore_junction`` joins a head that does not
    fit (the report still lists why it does not).

    Raises:
        UsageError: the head does not fit the backbone (unless ``ignore_junction``), or the two
            cannot be joined (different frameworks, a Keras head without an architecture
            on a backbone with one).
    """
    report = check_junction(backbone, head)
    errors = report.errors()
    if errors and not ignore_junction:
        raise UsageError(f"the head does not fit the backbone: {errors[0].message}",
                         hint="pass --ignore-junction, or ignore_junction=True, to merge it anyway")
    if backbone.framework != head.framework:
        raise UsageError(f"cannot join a {backbone.framework or backbone.format} backbone and a "
                         f"{head.framework or head.format} head", hint="convert one of them first")
    architecture = _joining(backbone, head)
    if isinstance(architecture, FlatLayers):
        merged = architecture.join(backbone, head, backbone_prefix=backbone_prefix, head_prefix=head_prefix)
    else:
        merged = architecture.join(backbone, head)
    return MergeResult(merged, report)


def merge_document(result: MergeResult) -> dict[str, Any]:
    """The merge as JSON-ready data (``weightkit merge --json``; see docs/json.md): the file written and its
    format (null before it is), whether a head that does not fit was joined anyway, and the junction check."""
    from .check import check_document
    from .inspect import SCHEMA_VERSION

    return {
        "schema_version": SCHEMA_VERSION,
        "output": result.output,
        "format": result.output_format,
        "junction_ignored": bool(result.report.errors()),
        "check": check_document(result.report),
    }


def _joining(backbone: Model, head: Model) -> Architecture:
    """The architecture that joins the two: the graph's where either part has one, else the layer order's."""
    if backbone.format == "onnx" and head.format == "onnx":
        from ..arch.onnx import OnnxGraph

        return OnnxGraph()
    if backbone.has_graph or head.has_graph:
        from ..arch.keras import KerasGraph

        return KerasGraph()  # joins Keras graphs; refuses a part without one
    return FlatLayers()


def save_merged(merged: Model, path: str | os.PathLike[str], format: str | None = None, *,
                force: bool = False) -> str:
    """Write ``merged`` to ``path`` (as `weightkit.formats.write` does), then read the file back to vouch for it;
    returns the format the file reads back as (``keras-zip``, ``torch-zip``, ...).

    The file must hold every tensor of ``merged`` (by layer and role, with its shape) and, for a
    Keras model, a complete graph (`weightkit.arch.keras.graph_problems`).

    Raises:
        UsageError: see `weightkit.formats.write`.
        WeightkitError: the file does not read back as ``merged``: a bug in weightkit. The file is removed.
    """
    write(merged, path, format, force=force)
    try:
        problems, written, written_format = _read_back(merged, Path(path))
    except Exception:
        Path(path).unlink(missing_ok=True)
        raise
    if not problems:
        return written_format
    for file in written:
        file.unlink(missing_ok=True)
    others = len(problems) - 1
    more = f", and {others} more difference{'s' if others > 1 else ''}" if others else ""
    raise WeightkitError(f"the merged file does not read back as the merged model: {problems[0]}{more}",
                         hint="this is a bug in weightkit, not in your files; the file was removed, "
                              "please report it with the two parts", path=Path(path))


def _read_back(merged: Model, path: Path) -> tuple[list[str], list[Path], str]:
    """What differs between ``merged`` and the file ``path`` it was written to, the files that make it up,
    and the format it reads back as."""
    try:
        written = read(path)
    except WeightkitError as error:
        return [f"weightkit cannot read it ({error})"], [path], ""
    with written:
        return _differences(merged, written), written.input_files() or [path], written.format


def _differences(merged: Model, written: Model) -> list[str]:
    expected, found = _tensor_shapes(merged), _tensor_shapes(written)
    problems = [f"tensor {role!r} of layer {layer!r} is missing" for layer, role in expected
                if (layer, role) not in found]
    problems += [f"tensor {role!r} of layer {layer!r} has shape {list(found[layer, role])}, not "
                 f"{list(shape)}" for (layer, role), shape in expected.items()
                 if (layer, role) in found and found[layer, role] != shape]
    problems += [f"it has a tensor {role!r} of layer {layer!r} that the merged model lacks"
                 for layer, role in found if (layer, role) not in expected]
    if merged.has_graph and not written.has_graph:
        problems.append("it lost the model's architecture")
    if written.framework == "keras" and isinstance(written.config, dict):
        problems += graph_problems(written.config)
    return problems


def _tensor_shapes(model: Model) -> dict[tuple[str, str], tuple[int, ...]]:
    """Every tensor's shape by (layer path, role): what any format keeps of a model's weights."""
    return {(path, role): tensor.shape for path, layer in model.walk() for role, tensor in layer.tensors.items()}
