"""weightkit: read, inspect, compare, cut and convert neural-network weight files.

Every reader turns a file into the same `Model` of layers and lazily read
tensors; every operation works on Models::

    import weightkit
    model = weightkit.load("mobilenet_v2_no_top.h5")
    print(model.format, model.num_params)
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import FileFormatError, ModelClosedError, UnsafeFileError, UnsupportedError, UsageError, WeightkitError
from .model import Layer, Model, Tensor, TensorSpec

if TYPE_CHECKING:
    from .catalog import Entry
    from .keras2onnx import ConversionReport
    from .ops.check import CheckReport
    from .ops.diff import Diff
    from .ops.identify import Identification
    from .ops.merge import MergeResult
    from .ops.split import SplitResult

__all__ = [
    "load",
    "save",
    "diff",
    "check",
    "identify",
    "split",
    "merge",
    "convert",
    "Model",
    "Layer",
    "Tensor",
    "TensorSpec",
    "WeightkitError",
    "FileFormatError",
    "UnsafeFileError",
    "UnsupportedError",
    "UsageError",
    "ModelClosedError",
    "__version__",
]


def load(path: str | os.PathLike[str], *, arch: str | os.PathLike[str] | None = None) -> Model:
    """Read a weight file of any supported format into a `Model`.

    The format is found from the file's content, not its name. Tensor data is not
    read until `Tensor.read` is called; close the model (or use it in a ``with``
    block) to release the file. ``arch`` gives a Keras weights-only file its
    architecture (a JSON config or a full-model file): its layer order and graph.

    Every failure a file's content causes is a `WeightkitError`; so is every failure of
    `Tensor.read` on the returned model (anything else is a bug in weightkit: please report it).

    Raises:
        FileFormatError: the file is missing, broken, or in no format weightkit reads.
        UnsafeFileError: the file asks for something weightkit refuses (links out, code, sizes over
            a limit of `weightkit.limits`).
        UnsupportedError: a format or feature weightkit recognises but does not read.
        UsageError: ``arch`` does not fit ``path`` (not a Keras weights file, no architecture in it).

    Example:
        >>> with weightkit.load("model.h5") as model:
        ...     kernel = model.layer("conv1").tensors["weight"].read()
    """
    if arch is not None:
        from .formats.keras.arch_file import read_with_architecture

        model = read_with_architecture(path, arch)
        model.add_input_file(arch)  # a writer must not replace the architecture file either
        return model
    from .formats import read

    return read(path)


def save(model: Model | MergeResult, path: str | os.PathLike[str], format: str | None = None, *,
         force: bool = False) -> None:
    """Write ``model`` to ``path``; the format comes from ``format`` or the file suffix.

    ``model`` is a `Model`, or what `merge` returns (its joined model is written). The file is
    written to a temporary name and renamed into place, so a failed write leaves nothing behind;
    an existing ``path`` is replaced only with ``force``.

    Raises:
        UsageError: ``model`` is neither (a `split` result holds two models: save each part), the
            format is unknown, ``path`` exists without ``force`` (or appeared while writing), its
            folder cannot be created, or ``path`` is any file the model was read from
            (`Model.input_files`, compared as files on disk), whatever ``force`` says.
        WeightkitError: reading a tensor to write it failed (see `Tensor.read`).
    """
    from .formats import write

    write(_savable(model), path, format, force=force)


def _savable(value: object) -> Model:
    """The model ``save`` writes for ``value``: a Model, or a merge result's joined model."""
    if isinstance(value, Model):
        return value
    from .ops.merge import MergeResult
    from .ops.split import SplitResult

    if isinstance(value, MergeResult):
        return value.model
    if isinstance(value, SplitResult):
        raise UsageError("a split result holds two models, not one",
                         hint="save result.backbone and result.head, each to its own file")
    raise UsageError(f"save takes a weightkit Model, not {type(value).__name__}",
                     hint="load the file with weightkit.load, or pass the Model a weightkit call returned")


def diff(a: Model | str | os.PathLike[str], b: Model | str | os.PathLike[str], *, values: bool = False) -> Diff:
    """Align two architectures layer by layer (any formats); returns a `weightkit.ops.diff.Diff`.

    Raises:
        WeightkitError: a file cannot be read (see `load`; with ``values``, `Tensor.read`).

    Example:
        >>> result = weightkit.diff("resnet.h5", "resnet.onnx")
        >>> result.differs, result.counts()
    """
    from .ops.diff import diff_models

    with _opened(a) as first, _opened(b) as second:
        return diff_models(first, second, values=values)


def check(first: Model | str | os.PathLike[str], head: Model | str | os.PathLike[str] | None = None, *,
          into: Model | str | os.PathLike[str] | None = None,
          input_shape: tuple[int, ...] | None = None) -> CheckReport:
    """``check(backbone, head)``: does the head fit; ``check(checkpoint, into=model)``: would it load.

    Returns a `weightkit.ops.check.CheckReport` whose findings carry the tensors involved and the fix.

    Raises:
        UsageError: neither or both of ``head`` and ``into`` given, or a bad ``input_shape``.
        WeightkitError: a file cannot be read (see `load`).
    """
    from .errors import UsageError
    from .ops.check import check_into
    from .ops.junction import check_junction

    second = into if into is not None else head
    if second is None or (head is not None and into is not None):
        raise UsageError("call check(backbone, head) or check(checkpoint, into=model)")
    with _opened(first) as a, _opened(second) as b:
        return check_into(a, b) if into is not None else check_junction(a, b, input_shape=input_shape)


def convert(path: str | os.PathLike[str], output: str | os.PathLike[str], *,
            arch: str | os.PathLike[str] | None = None, opset: int | None = None, nchw: bool = False,
            batch_size: int | None = None, force: bool = False) -> ConversionReport:
    """Convert a Keras model file to the ONNX file ``output``; returns what was converted.

    ``arch`` gives the architecture of a weights-only file (a Keras JSON config or a full-model
    file); ``opset`` defaults to `weightkit.keras2onnx.DEFAULT_OPSET`; ``nchw`` takes and gives image
    tensors channels-first; ``batch_size`` fixes the batch dimension. For the ``onnx.ModelProto`` in
    memory without writing a file, use `weightkit.keras2onnx.convert_keras`.

    Raises:
        UsageError: bad options, or ``output`` exists (without ``force``), is in a folder that does not
            exist, or is ``path`` or ``arch`` (whatever ``force`` says).
        UnsupportedError: a layer has no converter (nothing is written).
        WeightkitError: a file cannot be read (see `load`).

    Example:
        >>> weightkit.convert("mobilenet_v2.h5", "mobilenet_v2.onnx").outputs[0].shape
        ['batch', 1000]
    """
    from .keras2onnx import DEFAULT_OPSET, convert_file

    return convert_file(path, output, arch=arch, opset=DEFAULT_OPSET if opset is None else opset, nchw=nchw,
                        batch_size=batch_size, force=force)


def identify(model: Model | str | os.PathLike[str], *, top: int = 3, training: bool = True,
             catalog: tuple[Entry, ...] | None = None) -> Identification:
    """Name the architecture of a weight file (any format) from weightkit's catalog, with the ``top`` closest.

    Returns a `weightkit.ops.identify.Identification`: ``named`` (the match, or None when no catalog
    architecture explains the file for sure), ``matches`` (the candidates, best first), ``anatomy``
    (the backbone's end and the head, from the file alone) and ``training`` (whether the weights look
    trained: it reads a bounded sample of them; ``training=False`` reads no tensor data). ``catalog``: the
    entries to compare with (default: all of `weightkit.catalog.entries()`).

    Raises:
        WeightkitError: the file cannot be read (see `load`).

    Example:
        >>> found = weightkit.identify("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5")
        >>> found.summary()
        'MobileNetV2 α=0.35 (keras.applications), no top — a backbone'
    """
    from .ops.identify import identify_model

    with _opened(model) as opened:
        return identify_model(opened, top=top, training=training, catalog=catalog)


def split(model: Model | str | os.PathLike[str], at: str | None = None, *, head_prefixes: list[str] | None = None,
          strip_prefixes: bool = False, head_input_shape: tuple[int, ...] | None = None) -> SplitResult:
    """Cut a model into a backbone and a head (after layer ``at``, at key prefixes, or where it proposes).

    ``head_input_shape`` (no batch dim) gives a Keras head its input shape where the config cannot
    tell it (a custom layer before the cut).

    The parts read their tensors from the same file as ``model``: save them (`save`) and close them
    when done. Returns a `weightkit.ops.split.SplitResult` with ``backbone``, ``head`` and ``boundary``.

    Raises:
        UsageError: no such layer ``at``, a cut that leaves a part empty, or prefixes that match nothing.
        WeightkitError: the file cannot be read (see `load`).

    Example:
        >>> parts = weightkit.split("resnet50.pt")
        >>> weightkit.save(parts.backbone, "backbone.pt"); weightkit.save(parts.head, "head.pt")
    """
    from .ops.split import split_model

    if isinstance(model, Model):
        return split_model(model, at, head_prefixes=head_prefixes, strip_prefixes=strip_prefixes,
                           head_input_shape=head_input_shape)
    with load(model) as loaded:  # the parts keep the file open until they are closed
        return split_model(loaded, at, head_prefixes=head_prefixes, strip_prefixes=strip_prefixes,
                           head_input_shape=head_input_shape)


def merge(backbone: Model | str | os.PathLike[str], head: Model | str | os.PathLike[str],
          output: str | os.PathLike[str] | None = None, *, format: str | None = None,
          force: bool = False, ignore_junction: bool = False) -> MergeResult:
    """Join a backbone and a head into one model, after checking that the head fits.

    With ``output``, the model is written there (``format`` as in `save`) and read back before
    this returns: the file must hold every tensor of the merged model and, for Keras, a complete
    graph. ``force`` replaces an existing ``output``; ``ignore_junction`` joins a head that does
    not fit the backbone (the report still says why).

    Returns a `weightkit.ops.merge.MergeResult` (close it when done), with ``output`` and
    ``output_format`` set once written; without ``output``, ``save(result, path)`` writes it unchecked.

    Raises:
        UsageError: the head does not fit (unless ``ignore_junction``), the parts cannot be joined,
            ``output`` exists (unless ``force``), or ``output`` is a file either part was read from
            (whatever ``force`` says).
        WeightkitError: the written file does not read back as the merged model (a weightkit bug);
            the file is removed.

    Example:
        >>> weightkit.merge("backbone.keras", "head.keras", "model.keras").report.errors()
        []
    """
    from .ops.merge import merge_models, save_merged

    with _opened(backbone) as first, _opened(head) as second:
        result = merge_models(first, second, ignore_junction=ignore_junction)
    if output is not None:
        try:
            result.output_format = save_merged(result.model, output, format, force=force)
        except BaseException:
            result.close()
            raise
        result.output = os.fspath(output)
    return result


def _opened(value: Model | str | os.PathLike[str]) -> AbstractContextManager[Model]:
    """A model as given (left open), or loaded from a path (closed when the ``with`` ends)."""
    if isinstance(value, Model):
        return nullcontext(value)
    return load(value)
