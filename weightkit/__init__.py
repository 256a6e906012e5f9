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

from .errors import FileFormatError, UnsafeFileError, UnsupportedError, UsageError, WeightkitError
from .model import Layer, Model, Tensor, TensorSpec

if TYPE_CHECKING:
    from .ops.check import CheckReport
    from .ops.diff import Diff

__all__ = [
    "load",
    "save",
    "diff",
    "check",
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
    "__version__",
]

__version__ = "0.1.0"


def load(path: str | os.PathLike[str]) -> Model:
    """Read a weight file of any supported format into a `Model`.

    The format is found from the file's content, not its name. Tensor data is not
    read until `Tensor.read` is called; close the model (or use it in a ``with``
    block) to release the file.

    Raises:
        FileFormatError: the file is missing, broken, or in no format weightkit reads.
        UnsafeFileError: the file asks for something weightkit refuses (links out, code).

    Example:
        >>> with weightkit.load("model.h5") as model:
        ...     kernel = model.layer("conv1").tensors["weight"].read()
    """
    from .formats import read

    return read(path)


def save(model: Model, path: str | os.PathLike[str], format: str | None = None, *, force: bool = False) -> None:
    """Write ``model`` to ``path``; the format comes from ``format`` or the file suffix.

    The file is written to a temporary name and renamed into place, so a failed
    write leaves nothing behind; an existing ``path`` is replaced only with ``force``.
    """
    from .formats import write

    write(model, path, format, force=force)


def diff(a: Model | str | os.PathLike[str], b: Model | str | os.PathLike[str], *, values: bool = False) -> Diff:
    """Align two architectures layer by layer (any formats); returns a `weightkit.ops.diff.Diff`.

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
    """
    from .errors import UsageError
    from .ops.check import check_into, check_junction

    if (head is None) == (into is None):
        raise UsageError("call check(backbone, head) or check(checkpoint, into=model)")
    with _opened(first) as a, _opened(into if into is not None else head) as b:
        return check_into(a, b) if into is not None else check_junction(a, b, input_shape=input_shape)


def convert(path: str | os.PathLike[str], output: str | os.PathLike[str] | None = None, **options: object):  # noqa: ANN201
    """Convert a Keras model to ONNX: returns `weightkit.convert.Conversion` (ModelProto and report),
    or with ``output`` writes the file and returns the `weightkit.convert.ConversionReport`.

    Options: ``arch`` (architecture for a weights-only file), ``opset``, ``nchw``, ``batch_size``,
    and with ``output``, ``force``. See `weightkit.convert.convert_keras`.

    Example:
        >>> weightkit.convert("mobilenet_v2.h5", "mobilenet_v2.onnx").outputs[0].shape
        ['batch', 1000]
    """
    import importlib

    # Importing the package weightkit.convert rebinds this name to it; the package is callable alike.
    return importlib.import_module(".convert", __name__)(path, output, **options)


def _opened(value: Model | str | os.PathLike[str]) -> AbstractContextManager[Model]:
    """A model as given (left open), or loaded from a path (closed when the ``with`` ends)."""
    if isinstance(value, Model):
        return nullcontext(value)
    return load(value)
