"""Lazy `Tensor`s over the datasets of a Keras HDF5 file (legacy ``.h5`` and Keras 3 stores)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import dtypes
from ...errors import ModelClosedError
from ...model import Tensor
from .._parsers.hdf5 import H5Source, attr_text

__all__ = ["dataset_tensor"]


def dataset_tensor(dataset: Any, source: H5Source, name: str, **fields: Any) -> Tensor:
    """A lazy tensor over an HDF5 dataset: shape and dtype from metadata, data read on demand.

    Reading after the model that owns ``source`` was closed raises `ModelClosedError`.
    """
    if attr_text(dataset, "dtype") == "bfloat16":
        dtype = "bfloat16"
    else:
        dtype = dtypes.from_numpy(dataset.dtype)
    dataset_path = dataset.name

    def load() -> np.ndarray:
        if source.closed:
            raise ModelClosedError(source.path)
        return source.read(dataset_path)

    return Tensor(name, tuple(int(d) for d in dataset.shape), dtype, loader=load, **fields)
