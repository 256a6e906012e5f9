"""Keras → ONNX without TensorFlow or Keras: the architecture from the file's config, the weights from the file.

    from weightkit.keras2onnx import convert_keras
    result = convert_keras("mobilenet_v2.h5")
    onnx.save_model(result.model, "mobilenet_v2.onnx")
    print(result.report.layers[0])

`convert_keras` builds the ModelProto in memory; `convert_file` also writes it (and is
`weightkit.convert`). Every
layer the converter cannot handle is reported in one `UnsupportedError`, before
any tensor is read or anything is written. Weights of the file that the architecture
does not use are listed in the report (``unused_weights``) and its warnings. See docs/convert.md.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import UnsupportedError, UsageError
from ..formats.keras import ConfigLayer
from .report import ConversionReport, LayerReport, PortReport, UnusedWeights

__all__ = ["convert_keras", "convert_file", "Conversion", "ConversionReport", "LayerReport", "PortReport",
           "UnusedWeights", "unsupported_layers", "DEFAULT_OPSET", "MIN_OPSET"]

#: Gelu and every op used here are native at 20; ONNX Runtime 1.17 (the oldest weightkit allows) runs it.
DEFAULT_OPSET = 20
#: Softmax on any axis, Split/Squeeze with tensor inputs and Resize as used here need 13.
MIN_OPSET = 13


class Conversion:
    """A converted model: ``model`` (an ``onnx.ModelProto``, made when first asked for), ``graph``
    (the same as plain records, which `convert` writes without onnx) and ``report``."""

    def __init__(self, graph: Any, report: ConversionReport):
        self.graph = graph
        self.report = report
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The ``onnx.ModelProto``."""
        if self._model is None:
            self._model = self.graph.to_proto()
        return self._model

    def __repr__(self) -> str:
        return f"<Conversion {self.report.source!r} nodes={self.report.nodes} opset={self.report.opset}>"


def convert_keras(path: str | os.PathLike[str], *, arch: str | os.PathLike[str] | None = None,
                  opset: int = DEFAULT_OPSET, nchw: bool = False, batch_size: int | None = None) -> Conversion:
    """Convert a Keras model file to an ONNX ModelProto.

    Args:
        path: a full-model ``.h5``/``.keras``, or a weights-only file together with ``arch``.
        arch: where the architecture comes from: a Keras JSON config, or a full-model file.
        opset: the ONNX opset to target (13 to 28; ONNX Runtime must support it).
        nchw: take and give image tensors channels-first instead of Keras's channels-last.
        batch_size: a fixed batch size; None leaves it symbolic (``batch``).

    Returns:
        `Conversion` with ``model`` (onnx.ModelProto), ``graph`` (the same as records) and ``report``
        (whose ``unused_weights`` lists the file's layers that the architecture does not use).

    Raises:
        UnsupportedError: layers without a converter (all of them listed), or not a Keras file.
        UsageError: a weights-only file without ``arch``, a bad opset, or a batch size below 1.
        FileFormatError: an unreadable file, or weights that do not fit the architecture.

    Example:
        >>> result = convert_keras("model.h5")
        >>> result.report.outputs[0].shape
        ['batch', 10]
    """
    from .source import open_source

    _check_options(opset, batch_size)
    source = open_source(path, arch)
    try:
        problems = unsupported_layers(source.root)
        if problems:
            raise UnsupportedError(f"{len(problems)} layer(s) cannot be converted: " + "; ".join(problems),
                                   path=os.fspath(path), hint="nothing was written")
        return _build(source, os.fspath(path), opset, nchw, batch_size)
    finally:
        source.close()


def convert_file(path: str | os.PathLike[str], output: str | os.PathLike[str], *,
                 arch: str | os.PathLike[str] | None = None, opset: int = DEFAULT_OPSET, nchw: bool = False,
                 batch_size: int | None = None, force: bool = False) -> ConversionReport:
    """Convert ``path`` like `convert_keras` and write the ONNX file ``output`` atomically.

    Raises:
        UsageError: ``output`` exists and ``force`` is False, or its folder does not exist (both checked
            before any work), or ``output`` is an input.
    """
    from .._atomic import check_not_an_input, protecting
    from .onnx_model import save_model

    inputs = tuple(os.fspath(i) for i in (path, arch) if i is not None)
    _check_options(opset, batch_size)
    check_not_an_input(output, inputs)
    _check_output(output, force)
    result = convert_keras(path, arch=arch, opset=opset, nchw=nchw, batch_size=batch_size)
    with protecting(inputs):  # the weights data file beside a big model is checked too
        save_model(result.graph, output, force=force, inputs=inputs)
    result.report.output_path = os.fspath(output)
    return result.report


def unsupported_layers(root: ConfigLayer) -> list[str]:
    """Every layer of ``root`` (nested models included) that has no converter, as ``path (Class): why``."""
    from .layers import problem

    found = []
    for path, layer, parent in _leaves(root, ""):
        reason = problem(layer)
        if parent.class_name == "Sequential" and layer.class_name == "Merge":
            reason = "a Keras 1 Merge of Sequential branches (rebuild it as a functional Model)"
        if reason:
            found.append(f"{path} ({layer.class_name}): {reason}")
    return found


def _leaves(model: ConfigLayer, prefix: str) -> list[tuple[str, ConfigLayer, ConfigLayer]]:
    """(path, layer, the model holding it) for every layer that is not itself a model."""
    leaves = []
    for layer in model.layers:
        path = f"{prefix}/{layer.name}" if prefix else layer.name
        leaves.extend(_leaves(layer, path) if layer.is_model else [(path, layer, model)])
    return leaves


def _check_options(opset: int, batch_size: int | None) -> None:
    from .proto import MAX_OPSET

    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UsageError(f"opset {opset} is not available", hint=f"choose one from {MIN_OPSET} to {MAX_OPSET}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise UsageError(f"batch size {batch_size!r} is not a positive integer",
                         hint="give 1 or more, or leave --batch-size out for a symbolic batch dimension")


def _check_output(output: str | os.PathLike[str], force: bool) -> None:
    """The output may be replaced only with ``force``, and goes into a folder that exists (none is created)."""
    if os.path.exists(output) and not force:
        raise UsageError(f"{os.fspath(output)} already exists", hint="pass --force to replace it")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        what = f"{folder} is a file, not a folder" if os.path.exists(folder) else f"the folder {folder} does not exist"
        raise UsageError(f"cannot write {os.fspath(output)}: {what}",
                         hint="create the folder first, or choose another output path")


def _build(source: Any, path: str, opset: int, nchw: bool, batch_size: int | None) -> Conversion:
    from .builder import GraphBuilder
    from .graph import ModelWalker
    from .onnx_model import graph_inputs, graph_outputs, make_model

    builder = GraphBuilder(opset, source.keras_major)
    input_infos, input_values, input_reports = graph_inputs(builder, source.root, nchw, batch_size)
    outputs = ModelWalker(builder, source.weights).run(source.root, source.record, input_values)
    output_infos, output_reports = graph_outputs(builder, source.root, outputs, nchw, {v.name for v in input_values})
    unused = [UnusedWeights(p, [t.name for t in tensors], sum(t.size for t in tensors))
              for p, tensors in source.weights.unused()]
    metadata = {"source": os.path.basename(path), "keras_layout": "NCHW inputs" if nchw else "Keras (NHWC)",
                "converter": "weightkit.convert"}
    graph = make_model(builder, input_infos, output_infos, source.root.name, metadata)
    report = ConversionReport(
        source=path, arch=source.arch_path, opset=opset, nchw=nchw, keras_major=source.keras_major,
        inputs=input_reports, outputs=output_reports, warnings=[*builder.warnings, *_unused_warning(unused)],
        unused_weights=unused,
        layers=[LayerReport(p, builder.layer_classes[p], nodes) for p, nodes in builder.layer_nodes.items()],
        nodes=len(builder.nodes), initializers=len(builder.initializers),
        initializer_bytes=graph.weight_bytes,
    )
    return Conversion(graph, report)


def _unused_warning(unused: list[UnusedWeights]) -> list[str]:
    """One warning naming the file's layers whose weights the architecture does not use (none: no warning)."""
    if not unused:
        return []
    tensors, parameters = sum(len(u.tensors) for u in unused), sum(u.params for u in unused)
    names = ", ".join(u.path for u in unused[:6]) + (f" and {len(unused) - 6} more" if len(unused) > 6 else "")
    return [f"{tensors} tensor(s) ({parameters:,} parameters) of {len(unused)} layer(s) in the weights file are not "
            f"used by the architecture and are not in the ONNX file: {names} (if the model should have them, "
            "convert with the architecture the weights were saved from)"]
