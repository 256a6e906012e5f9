"""weightkit: read, inspect, compare, cut and convert neural-network weight files.

Every reader turns a file into the same `Model` of layers and lazily read
tensors; every operation works on Models::

    import weightkit
    model = weightkit.load("mobilenet_v2_no_top.h5")
    print(model.format, model.num_params)
"""

from __future__ import annotations

import os

from .errors import FileFormatError, UnsafeFileError, UnsupportedError, UsageError, WeightkitError
from .model import Layer, Model, Tensor, TensorSpec

__all__ = [
    "load",
    "save",
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
